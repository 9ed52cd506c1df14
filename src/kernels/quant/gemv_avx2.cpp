// The AVX2 target of the block-format kernels (gemv.h): per-type block decoders in registers
// (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q4_K, Q5_K, Q6_K; Q2_K, Q3_K and IQ4_XS use the scalar
// dequantizer), and the matrix-vector product over decoded chunks.
// Each decoder does the float operations of dequant.cpp in the same order with separate
// multiplies and adds (no FMA), so its values are bit-identical to the scalar twin.
#include <algorithm>
#include <cstring>

#include "core/cpu_features.h"
#include "core/half.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/gemv.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace qkv::kernels::quant::avx2 {
namespace {

float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// 16 signed bytes -> 16 floats, each times d (out[j] = float(q[j]) * d).
void store16_i8(__m128i q, __m256 d, float* out) {
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
  _mm256_storeu_ps(
      out + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), d));
}

// 16 signed bytes -> float(q) * d + m, rounded after the multiply and after the add.
void store16_i8_dm(__m128i q, __m256 d, __m256 m, float* out) {
  const __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  const __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_mul_ps(a, d), m));
  _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_mul_ps(b, d), m));
}

// 16 signed bytes -> d * float(q) - m.
void store16_i8_dsub(__m128i q, __m256 d, __m256 m, float* out) {
  const __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  const __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
  _mm256_storeu_ps(out, _mm256_sub_ps(_mm256_mul_ps(d, a), m));
  _mm256_storeu_ps(out + 8, _mm256_sub_ps(_mm256_mul_ps(d, b), m));
}

__m128i low_nibbles(__m128i v) {
  return _mm_and_si128(v, _mm_set1_epi8(0x0F));
}
__m128i high_nibbles(__m128i v) {
  return _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
}

// Q5_0 / Q5_1: 0x10 in byte j where bit (base + j) of qh is set, j < 16 (base 0 or 16).
__m128i fifth_bits(uint32_t qh, int base) {
  const __m128i bytes = _mm_cvtsi32_si128(static_cast<int>(qh));
  const int b0 = base / 8;
  const __m128i spread =
      _mm_shuffle_epi8(bytes, _mm_setr_epi8(b0, b0, b0, b0, b0, b0, b0, b0, b0 + 1, b0 + 1, b0 + 1,
                                            b0 + 1, b0 + 1, b0 + 1, b0 + 1, b0 + 1));
  const __m128i bit = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread, bit), bit), _mm_set1_epi8(0x10));
}

void decode_q4_0(const BlockQ4_0* b, int64_t nb, float* out) {
  for (int64_t i = 0; i < nb; ++i, out += kQK) {
    const __m256 d = _mm256_set1_ps(half(b[i].d));
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    const __m128i eight = _mm_set1_epi8(8);
    store16_i8(_mm_sub_epi8(low_nibbles(qs), eight), d, out);
    store16_i8(_mm_sub_epi8(high_nibbles(qs), eight), d, out + 16);
  }
}

void decode_q4_1(const BlockQ4_1* b, int64_t nb, float* out) {
  for (int64_t i = 0; i < nb; ++i, out += kQK) {
    const __m256 d = _mm256_set1_ps(half(b[i].d)), m = _mm256_set1_ps(half(b[i].m));
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    store16_i8_dm(low_nibbles(qs), d, m, out);
    store16_i8_dm(high_nibbles(qs), d, m, out + 16);
  }
}

void decode_q5_0(const BlockQ5_0* b, int64_t nb, float* out) {
  for (int64_t i = 0; i < nb; ++i, out += kQK) {
    const __m256 d = _mm256_set1_ps(half(b[i].d));
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    const __m128i sixteen = _mm_set1_epi8(16);
    store16_i8(_mm_sub_epi8(_mm_or_si128(low_nibbles(qs), fifth_bits(qh, 0)), sixteen), d, out);
    store16_i8(_mm_sub_epi8(_mm_or_si128(high_nibbles(qs), fifth_bits(qh, 16)), sixteen), d,
               out + 16);
  }
}

void decode_q5_1(const BlockQ5_1* b, int64_t nb, float* out) {
  for (int64_t i = 0; i < nb; ++i, out += kQK) {
    const __m256 d = _mm256_set1_ps(half(b[i].d)), m = _mm256_set1_ps(half(b[i].m));
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    store16_i8_dm(_mm_or_si128(low_nibbles(qs), fifth_bits(qh, 0)), d, m, out);
    store16_i8_dm(_mm_or_si128(high_nibbles(qs), fifth_bits(qh, 16)), d, m, out + 16);
  }
}

void decode_iq4_nl(const BlockIq4Nl* b, int64_t nb, float* out) {
  const __m128i grid = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  for (int64_t i = 0; i < nb; ++i, out += kQK) {
    const __m256 d = _mm256_set1_ps(half(b[i].d));
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    // d * value: the same product as float(value) * d.
    store16_i8(_mm_shuffle_epi8(grid, low_nibbles(qs)), d, out);
    store16_i8(_mm_shuffle_epi8(grid, high_nibbles(qs)), d, out + 16);
  }
}

// Q4_K / Q5_K: 32 values d * q - m from 32 bytes of codes (0..31).
void store32_dsub(__m256i q, __m256 d, __m256 m, float* out) {
  store16_i8_dsub(_mm256_castsi256_si128(q), d, m, out);
  store16_i8_dsub(_mm256_extracti128_si256(q, 1), d, m, out + 16);
}

void decode_q4_k(const BlockQ4K* b, int64_t nb, float* out) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half(b[i].d), dmin = half(b[i].dmin);
    for (int j = 0; j < 4; ++j, out += 64) {
      uint8_t sc, m;
      k_scale_min(2 * j, b[i].scales, sc, m);
      const __m256 d1 = _mm256_set1_ps(d * static_cast<float>(sc));
      const __m256 m1 = _mm256_set1_ps(dmin * static_cast<float>(m));
      k_scale_min(2 * j + 1, b[i].scales, sc, m);
      const __m256 d2 = _mm256_set1_ps(d * static_cast<float>(sc));
      const __m256 m2 = _mm256_set1_ps(dmin * static_cast<float>(m));
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * j));
      store32_dsub(_mm256_and_si256(q, mask), d1, m1, out);
      store32_dsub(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask), d2, m2, out + 32);
    }
  }
}

void decode_q5_k(const BlockQ5K* b, int64_t nb, float* out) {
  const __m256i mask = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half(b[i].d), dmin = half(b[i].dmin);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qh));
    for (int j = 0; j < 4; ++j, out += 64) {
      uint8_t sc, m;
      k_scale_min(2 * j, b[i].scales, sc, m);
      const __m256 d1 = _mm256_set1_ps(d * static_cast<float>(sc));
      const __m256 m1 = _mm256_set1_ps(dmin * static_cast<float>(m));
      k_scale_min(2 * j + 1, b[i].scales, sc, m);
      const __m256 d2 = _mm256_set1_ps(d * static_cast<float>(sc));
      const __m256 m2 = _mm256_set1_ps(dmin * static_cast<float>(m));
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * j));
      // Bit 2j (low nibbles) and 2j + 1 (high nibbles) of qh[l], moved to bit 4 (16).
      const __m256i h1 = _mm256_slli_epi16(
          _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j)), one), 4);
      const __m256i h2 = _mm256_slli_epi16(
          _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j + 1)), one), 4);
      store32_dsub(_mm256_or_si256(_mm256_and_si256(q, mask), h1), d1, m1, out);
      store32_dsub(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask), h2), d2, m2,
                   out + 32);
    }
  }
}

// Q6_K: 32 codes (-32..31) with the scales of their two sub-blocks of 16: (d * scale) * q.
void store32_q6(__m256i q, float d, int8_t s0, int8_t s1, float* out) {
  store16_i8(_mm256_castsi256_si128(q), _mm256_set1_ps(d * static_cast<float>(s0)), out);
  store16_i8(_mm256_extracti128_si256(q, 1), _mm256_set1_ps(d * static_cast<float>(s1)), out + 16);
}

void decode_q6_k(const BlockQ6K* b, int64_t nb, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half(b[i].d);
    for (int h = 0; h < 2; ++h, out += 128) {
      const uint8_t* ql = b[i].ql + 64 * h;
      const int8_t* sc = b[i].scales + 8 * h;
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qh + 32 * h));
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      auto hi = [&](int shift) {
        return _mm256_slli_epi16(
            _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(shift)), m2), 4);
      };
      const __m256i q1 = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l0, m4), hi(0)), off);
      const __m256i q2 = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l1, m4), hi(2)), off);
      const __m256i q3 = _mm256_sub_epi8(
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), hi(4)), off);
      const __m256i q4 = _mm256_sub_epi8(
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), hi(6)), off);
      store32_q6(q1, d, sc[0], sc[1], out);
      store32_q6(q2, d, sc[2], sc[3], out + 32);
      store32_q6(q3, d, sc[4], sc[5], out + 64);
      store32_q6(q4, d, sc[6], sc[7], out + 96);
    }
  }
}

void decode_blocks(QuantType q, const uint8_t* blocks, int64_t n, float* out) {
  const int64_t nb = n / quant_block_elems(q);
  switch (q) {
    case QuantType::q4_0:
      return decode_q4_0(reinterpret_cast<const BlockQ4_0*>(blocks), nb, out);
    case QuantType::q4_1:
      return decode_q4_1(reinterpret_cast<const BlockQ4_1*>(blocks), nb, out);
    case QuantType::q5_0:
      return decode_q5_0(reinterpret_cast<const BlockQ5_0*>(blocks), nb, out);
    case QuantType::q5_1:
      return decode_q5_1(reinterpret_cast<const BlockQ5_1*>(blocks), nb, out);
    case QuantType::iq4_nl:
      return decode_iq4_nl(reinterpret_cast<const BlockIq4Nl*>(blocks), nb, out);
    case QuantType::q4_k:
      return decode_q4_k(reinterpret_cast<const BlockQ4K*>(blocks), nb, out);
    case QuantType::q5_k:
      return decode_q5_k(reinterpret_cast<const BlockQ5K*>(blocks), nb, out);
    case QuantType::q6_k:
      return decode_q6_k(reinterpret_cast<const BlockQ6K*>(blocks), nb, out);
    default:  // Q8_0, Q2_K, Q3_K, IQ4_XS
      return dequantize(q, blocks, n, out);
  }
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The bytes of the row ahead of the decoder, requested early: the loop alone keeps too few cache
// lines in flight to reach the memory bandwidth (as for Q8_0 in cpu/linear_avx2.cpp).
constexpr int64_t kPrefetchBytes = 1024;

template <int M>
void gemv_m(QuantType q, const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  alignas(32) float w[kChunk];
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* row = t.w + o * t.w_stride;
    __m256 acc[M][2];
    for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k0 = 0; k0 < t.n_in; k0 += kChunk) {
      const int64_t n = std::min(kChunk, t.n_in - k0);
      const uint8_t* blocks = row + quant_row_bytes(q, k0);
      const int64_t chunk_bytes = quant_row_bytes(q, n);
      for (int64_t line = 0; line < chunk_bytes; line += 64) {  // may run past the row: harmless
        _mm_prefetch(reinterpret_cast<const char*>(blocks + line + kPrefetchBytes), _MM_HINT_T0);
      }
      decode_blocks(q, blocks, n, w);
      for (int i = 0; i < M; ++i) {
        const float* x = t.x + i * t.ldx + k0;
        for (int64_t k = 0; k < n; k += 16) {
          acc[i][0] = _mm256_fmadd_ps(_mm256_load_ps(w + k), _mm256_loadu_ps(x + k), acc[i][0]);
          acc[i][1] =
              _mm256_fmadd_ps(_mm256_load_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), acc[i][1]);
        }
      }
    }
    const float bias = t.bias ? t.bias[o] : 0.0f;
    for (int i = 0; i < M; ++i) {
      t.y[i * t.ldy + o] = hsum(_mm256_add_ps(acc[i][0], acc[i][1])) + bias;
    }
  }
}

bool usable() {
  return core::cpu_features().has_avx2_target();
}

}  // namespace

void decode(QuantType q, const uint8_t* row, int64_t k0, int64_t n, float* out) {
  const uint8_t* blocks = row + quant_row_bytes(q, k0);
  if (!usable()) return dequantize(q, blocks, n, out);
  decode_blocks(q, blocks, n, out);
}

void gemv(QuantType q, const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  switch (t.m) {
    case 1:
      return gemv_m<1>(q, t, o0, o1);
    case 2:
      return gemv_m<2>(q, t, o0, o1);
    case 3:
      return gemv_m<3>(q, t, o0, o1);
    default:
      return gemv_m<4>(q, t, o0, o1);
  }
}

}  // namespace qkv::kernels::quant::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86: the scalar dequantizer and a plain dot product

namespace qkv::kernels::quant::avx2 {
void decode(QuantType q, const uint8_t* row, int64_t k0, int64_t n, float* out) {
  dequantize(q, row + quant_row_bytes(q, k0), n, out);
}
void gemv(QuantType q, const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  float w[kChunk];
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* row = t.w + o * t.w_stride;
    float acc[cpu::kGemvRows] = {};
    for (int64_t k0 = 0; k0 < t.n_in; k0 += kChunk) {
      const int64_t n = std::min(kChunk, t.n_in - k0);
      decode(q, row, k0, n, w);
      for (int64_t i = 0; i < t.m; ++i)
        for (int64_t k = 0; k < n; ++k) acc[i] += w[k] * t.x[i * t.ldx + k0 + k];
    }
    for (int64_t i = 0; i < t.m; ++i) t.y[i * t.ldy + o] = acc[i] + (t.bias ? t.bias[o] : 0.0f);
  }
}
}  // namespace qkv::kernels::quant::avx2
#endif
