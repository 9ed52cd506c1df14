// The avx2 target: AVX2 + FMA + F16C (Haswell and later, Zen).
#include "kernels/cpu/target_common.h"

#if QKV_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace qkv::kernels::cpu::avx2 {
#include "kernels/cpu/simd_avx2.h"
#include "kernels/cpu/transpose8.h"
// clang-format off
#include "kernels/cpu/flash_impl.inc"
// clang-format on
}  // namespace qkv::kernels::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace qkv::kernels::cpu {
const TargetOps& target_avx2() {
  static const TargetOps ops{
      .name = "avx2",
      .run_item = avx2::run_item,
      .probs_rows = avx2::probs_rows,
      .pack_shape = avx2::pack_shape,
      .pack_tile = avx2::pack_tile,
      .fma_peak = avx2::fma_peak,
      .read_sum = avx2::read_sum,
      .bf16_path = avx2::bf16_path,
      .softmax_row = avx2::softmax_row,
      .to_f32 = avx2::to_f32,
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
