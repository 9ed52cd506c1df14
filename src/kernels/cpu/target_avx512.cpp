// The avx512 target: AVX-512 F/BW/DQ/VL (Skylake-SP and later, Zen 4 and later), and AVX512_BF16
// dot products for the bf16 mode where the CPU has them (Cooper Lake, Sapphire Rapids, Zen 4), and
// AMX tiles for it where the CPU and OS offer them (Sapphire Rapids and later).
#include "kernels/cpu/target_common.h"

#if QKV_X86
#if !defined(__clang__)
// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
QKV_TARGET_BEGIN(QKV_TARGET_AVX512)
namespace qkv::kernels::cpu::avx512 {
#include "kernels/cpu/simd_avx512.h"
#include "kernels/cpu/transpose8.h"
// The bf16 kernels use instructions only some AVX-512 CPUs have; they run only when cpuid says
// AVX512_BF16 or AMX-BF16 (run_item checks), and GCC 12 never emits them from plain float code.
#define QKV_BF16_DOT_INC "kernels/cpu/bf16_avx512.inc"
// clang-format off
#include "kernels/cpu/flash_impl.inc"
// clang-format on
}  // namespace qkv::kernels::cpu::avx512
QKV_TARGET_END

namespace qkv::kernels::cpu {
const TargetOps& target_avx512() {
  static const TargetOps ops{
      .name = "avx512",
      .run_item = avx512::run_item,
      .probs_rows = avx512::probs_rows,
      .pack_shape = avx512::pack_shape,
      .pack_tile = avx512::pack_tile,
      .bf16_path = avx512::bf16_path,
  };
  return ops;
}
}  // namespace qkv::kernels::cpu
#else
namespace qkv::kernels::cpu {
const TargetOps& target_avx512() {
  return target_generic();
}
}  // namespace qkv::kernels::cpu
#endif
