// The avx2 target: AVX2 + FMA + F16C (Haswell and later, Zen).
#include "kernels/cpu/target_common.h"

#if QKV_X86
QKV_TARGET_BEGIN(QKV_TARGET_AVX2)
namespace qkv::kernels::cpu::avx2 {
#include "kernels/cpu/simd_avx2.h"
#include "kernels/cpu/transpose8.h"
// clang-format off
#include "kernels/cpu/flash_impl.inc"
// clang-format on
}  // namespace qkv::kernels::cpu::avx2
QKV_TARGET_END

namespace qkv::kernels::cpu {
const TargetOps& target_avx2() {
  static const TargetOps ops{
      .name = "avx2",
      .run_item = avx2::run_item,
      .probs_rows = avx2::probs_rows,
      .pack_shape = avx2::pack_shape,
      .pack_tile = avx2::pack_tile,
      .bf16_path = avx2::bf16_path,
  };
  return ops;
}
}  // namespace qkv::kernels::cpu
#else
namespace qkv::kernels::cpu {
const TargetOps& target_avx2() {
  return target_generic();
}
}  // namespace qkv::kernels::cpu
#endif
