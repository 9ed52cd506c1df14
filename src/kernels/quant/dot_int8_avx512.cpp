// The AVX512-VNNI target of the int8 dot-product kernels (dot_int8_impl.inc): vpdpbusd (u8 x i8
// quads accumulated into int32) and vpdpwssd (int16 pairs), on YMM registers, where cpuid reports
// AVX512-VNNI (Ice Lake, Zen 4 and later); other AVX-512 CPUs run the AVX2 kernels.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/cpu_features.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/gemv.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels/cpu/targets.h"

#if !defined(__clang__)
// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

QKV_TARGET_BEGIN("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")

namespace qkv::kernels::quant::avx512 {
namespace {

// 8 rows x 2 accumulators = 16 of the 32 YMM registers that AVX-512VL addresses.
constexpr int kRowsPerPass = 8;
// vpdpwssd adds into its accumulator with a multiply's latency: the K formats' sub-block sums
// go to 4 independent accumulators (Q4_K, Q6_K: +11-12% at m = 1 in L3 on Zen 4).
constexpr int kDotChains = 4;

inline __attribute__((always_inline)) __m256i dot_u8i8(__m256i acc, __m256i u, __m256i s) {
  return _mm256_dpbusd_epi32(acc, u, s);
}
inline __attribute__((always_inline)) __m256i dot_i16(__m256i acc, __m256i p, __m256i c) {
  return _mm256_dpwssd_epi32(acc, p, c);
}

#include "kernels/quant/dot_int8_impl.inc"

}  // namespace

bool gemv_int8(const cpu::GemvInt8Task& t, int64_t o0, int64_t o1) {
  if (!core::cpu_features().avx512_vnni) return false;
  return int8_dispatch(t, o0, o1);
}

}  // namespace qkv::kernels::quant::avx512

QKV_TARGET_END

#else  // not x86

namespace qkv::kernels::quant::avx512 {
bool gemv_int8(const cpu::GemvInt8Task&, int64_t, int64_t) {
  return false;
}
}  // namespace qkv::kernels::quant::avx512

#endif
