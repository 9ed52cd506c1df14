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
// vpmaddwd + vpaddd: the sub-block sums chain through one-cycle adds, so one accumulator.
constexpr int kDotChains = 1;

inline __attribute__((always_inline)) __m256i dot_u8i8(__m256i acc, __m256i u, __m256i s) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
inline __attribute__((always_inline)) __m256i dot_i16(__m256i acc, __m256i p, __m256i c) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p, c));
}

#include "kernels/quant/dot_int8_impl.inc"

// 32 values rounded as round_block (dot_int8.cpp) does: q = round(x * id) (ties to even), clamped
// to [-127, 127]; returns the 8 lanes' sums of q in `sums` (int32 lanes, exact).
inline __attribute__((always_inline)) __m256i round32(const float* x, __m256 id, int8_t* q) {
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  __m256i v[4];
  for (int j = 0; j < 4; ++j) {
    const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), id),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v[j] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
  }
  // packs interleave the 128-bit lanes: bytes come out as dwords 0 4 1 5 2 6 3 7.
  const __m256i p =
      _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  return _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
}

inline __attribute__((always_inline)) int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// d = max|x| / 127 and its inverse, as round_block computes them.
inline __attribute__((always_inline)) float block_scale(const float* x, int n, float* id) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m = _mm256_setzero_ps();
  for (int k = 0; k < n; k += 8)
    m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  const float d = _mm_cvtss_f32(s) / 127.0f;
  *id = d > 0.0f ? 1.0f / d : 0.0f;
  return d;
}

}  // namespace

void gemv_int8(const cpu::GemvInt8Task& t, int64_t o0, int64_t o1) {
  int8_dispatch(t, o0, o1);
}

void quantize_act(QuantType t, const float* x, int64_t n, void* out) {
  if (quant_block_elems(t) == kQKK) {
    auto* a = static_cast<ActBlock256*>(out);
    for (int64_t b = 0; b < n / kQKK; ++b, x += kQKK) {
      float id;
      a[b].d = block_scale(x, kQKK, &id);
      const __m256 idv = _mm256_set1_ps(id);
      for (int j = 0; j < kQKK / 32; ++j) {
        round32(x + 32 * j, idv, a[b].q + 32 * j);  // its lane sums mix the two 16s
      }
      for (int s = 0; s < kQKK / 16; ++s) {
        const __m256i w = _mm256_cvtepi8_epi16(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(a[b].q + 16 * s)));
        a[b].bsums[s] = static_cast<int16_t>(hsum_i32(_mm256_madd_epi16(w, _mm256_set1_epi16(1))));
      }
    }
  } else {
    auto* a = static_cast<ActBlock32*>(out);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
      float id;
      a[b].d = block_scale(x, kQK, &id);
      const int sum = hsum_i32(round32(x, _mm256_set1_ps(id), a[b].q));
      a[b].ds = a[b].d * static_cast<float>(sum);
    }
  }
}

}  // namespace qkv::kernels::quant::avx2

QKV_TARGET_END

#else  // not x86: the oracle

namespace qkv::kernels::quant::avx2 {
void quantize_act(QuantType t, const float* x, int64_t n, void* out) {
  quantize_act_reference(t, x, n, out);
}
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
