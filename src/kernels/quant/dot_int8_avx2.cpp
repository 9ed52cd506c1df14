// The AVX2 target of the int8 dot-product kernels (dot_int8_impl.inc): vpmaddubsw (u8 x i8 pairs
// to int16) and vpmaddwd (int16 pairs to int32). Zen 2 / Zen 3 and every AVX-512 CPU without VNNI.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/quant/dequant.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/gemv.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels/cpu/targets.h"

QKV_TARGET_BEGIN(QKV_TARGET_AVX2)

namespace qkv::kernels::quant::avx2 {
namespace {

// 4 rows x (main + min accumulators) = 8 of the 16 YMM registers; the rest hold a block's codes.
constexpr int kRowsPerPass = 4;

inline __attribute__((always_inline)) __m256i dot_u8i8(__m256i acc, __m256i u, __m256i s) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
inline __attribute__((always_inline)) __m256i dot_i16(__m256i acc, __m256i p, __m256i c) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p, c));
}

#include "kernels/quant/dot_int8_impl.inc"

}  // namespace

void gemv_int8(const cpu::GemvInt8Task& t, int64_t o0, int64_t o1) {
  int8_dispatch(t, o0, o1);
}

}  // namespace qkv::kernels::quant::avx2

QKV_TARGET_END

#else  // not x86: the oracle

namespace qkv::kernels::quant::avx2 {
void gemv_int8(const cpu::GemvInt8Task& t, int64_t o0, int64_t o1) {
  const QuantType q = *weight_quant_type(t.type);
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t i = 0; i < t.m; ++i)
      t.y[i * t.ldy + o] = static_cast<float>(
          dot_int8_reference(q, t.w + o * t.w_stride, t.xq + i * t.ldxq, t.n_in) +
          (t.bias ? t.bias[o] : 0.0f));
}
}  // namespace qkv::kernels::quant::avx2

#endif
