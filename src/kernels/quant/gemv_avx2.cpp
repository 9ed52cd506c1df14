// The AVX2 target of the block-format kernels (gemv.h): per-type block decoders in registers
// (every type but Q8_0, whose kernels are in cpu/linear_avx2.cpp), used both to convert panels
// (decode) and, in the matrix-vector product, to multiply each decoded vector of 8 weights with the
// fp32 activations at once (gemv).
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

#define QKV_INLINE inline __attribute__((always_inline))

QKV_INLINE float half(uint16_t h) {
  return _cvtsh_ss(h);
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Every decoder below calls f(v, w) for the 8-value vectors v = 0, 1, ... of a block, in element
// order; decode() stores them, gemv() multiplies them with the rows of x at once.

// 16 signed bytes -> vectors v, v + 1 of float(q) * d.
template <class F>
QKV_INLINE void emit16_i8(__m128i q, __m256 d, int v, F& f) {
  f(v, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
  f(v + 1, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), d));
}

// 16 signed bytes -> float(q) * d + m, rounded after the multiply and after the add.
template <class F>
QKV_INLINE void emit16_i8_dm(__m128i q, __m256 d, __m256 m, int v, F& f) {
  const __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  const __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
  f(v, _mm256_add_ps(_mm256_mul_ps(a, d), m));
  f(v + 1, _mm256_add_ps(_mm256_mul_ps(b, d), m));
}

// 16 signed bytes -> d * float(q) - m.
template <class F>
QKV_INLINE void emit16_i8_dsub(__m128i q, __m256 d, __m256 m, int v, F& f) {
  const __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  const __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
  f(v, _mm256_sub_ps(_mm256_mul_ps(d, a), m));
  f(v + 1, _mm256_sub_ps(_mm256_mul_ps(d, b), m));
}

QKV_INLINE __m128i low_nibbles(__m128i v) {
  return _mm_and_si128(v, _mm_set1_epi8(0x0F));
}
QKV_INLINE __m128i high_nibbles(__m128i v) {
  return _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
}
QKV_INLINE __m128i load16(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// Q5_0 / Q5_1: 0x10 in byte j where bit (base + j) of qh is set, j < 16 (base 0 or 16).
QKV_INLINE __m128i fifth_bits(uint32_t qh, int base) {
  const __m128i bytes = _mm_cvtsi32_si128(static_cast<int>(qh));
  const int b0 = base / 8;
  const __m128i spread =
      _mm_shuffle_epi8(bytes, _mm_setr_epi8(b0, b0, b0, b0, b0, b0, b0, b0, b0 + 1, b0 + 1, b0 + 1,
                                            b0 + 1, b0 + 1, b0 + 1, b0 + 1, b0 + 1));
  const __m128i bit = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread, bit), bit), _mm_set1_epi8(0x10));
}

struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m256 d = _mm256_set1_ps(half(b.d));
    const __m128i qs = load16(b.qs), eight = _mm_set1_epi8(8);
    emit16_i8(_mm_sub_epi8(low_nibbles(qs), eight), d, 0, f);
    emit16_i8(_mm_sub_epi8(high_nibbles(qs), eight), d, 2, f);
  }
};

struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m256 d = _mm256_set1_ps(half(b.d)), m = _mm256_set1_ps(half(b.m));
    const __m128i qs = load16(b.qs);
    emit16_i8_dm(low_nibbles(qs), d, m, 0, f);
    emit16_i8_dm(high_nibbles(qs), d, m, 2, f);
  }
};

struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m256 d = _mm256_set1_ps(half(b.d));
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m128i qs = load16(b.qs), sixteen = _mm_set1_epi8(16);
    emit16_i8(_mm_sub_epi8(_mm_or_si128(low_nibbles(qs), fifth_bits(qh, 0)), sixteen), d, 0, f);
    emit16_i8(_mm_sub_epi8(_mm_or_si128(high_nibbles(qs), fifth_bits(qh, 16)), sixteen), d, 2, f);
  }
};

struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m256 d = _mm256_set1_ps(half(b.d)), m = _mm256_set1_ps(half(b.m));
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m128i qs = load16(b.qs);
    emit16_i8_dm(_mm_or_si128(low_nibbles(qs), fifth_bits(qh, 0)), d, m, 0, f);
    emit16_i8_dm(_mm_or_si128(high_nibbles(qs), fifth_bits(qh, 16)), d, m, 2, f);
  }
};

struct Iq4Nl {
  using Block = BlockIq4Nl;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m128i grid = load16(reinterpret_cast<const uint8_t*>(kIq4nlValues));
    const __m256 d = _mm256_set1_ps(half(b.d));
    const __m128i qs = load16(b.qs);
    // d * value: the same product as float(value) * d.
    emit16_i8(_mm_shuffle_epi8(grid, low_nibbles(qs)), d, 0, f);
    emit16_i8(_mm_shuffle_epi8(grid, high_nibbles(qs)), d, 2, f);
  }
};

struct Iq4Xs {
  using Block = BlockIq4Xs;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m128i grid = load16(reinterpret_cast<const uint8_t*>(kIq4nlValues));
    const float d = half(b.d);
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      const int ls =
          ((b.scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((b.scales_h >> (2 * s)) & 3) << 4);
      // (d * (ls - 32)) * value, as the scalar rounds it.
      const __m256 dl = _mm256_set1_ps(d * static_cast<float>(ls - 32));
      const __m128i qs = load16(b.qs + 16 * s);
      emit16_i8(_mm_shuffle_epi8(grid, low_nibbles(qs)), dl, 4 * s, f);
      emit16_i8(_mm_shuffle_epi8(grid, high_nibbles(qs)), dl, 4 * s + 2, f);
    }
  }
};

// Q4_K / Q5_K: 32 values d * q - m from 32 bytes of codes (0..31), vectors v .. v + 3.
template <class F>
QKV_INLINE void emit32_dsub(__m256i q, __m256 d, __m256 m, int v, F& f) {
  emit16_i8_dsub(_mm256_castsi256_si128(q), d, m, v, f);
  emit16_i8_dsub(_mm256_extracti128_si256(q, 1), d, m, v + 2, f);
}

// The d * scale and dmin * min of sub-blocks 2j and 2j + 1, as the scalar rounds them.
QKV_INLINE void k_pair(const uint8_t* scales, int j, float d, float dmin, __m256& d1, __m256& m1,
                       __m256& d2, __m256& m2) {
  uint8_t sc, m;
  k_scale_min(2 * j, scales, sc, m);
  d1 = _mm256_set1_ps(d * static_cast<float>(sc));
  m1 = _mm256_set1_ps(dmin * static_cast<float>(m));
  k_scale_min(2 * j + 1, scales, sc, m);
  d2 = _mm256_set1_ps(d * static_cast<float>(sc));
  m2 = _mm256_set1_ps(dmin * static_cast<float>(m));
}

struct Q4_K {
  using Block = BlockQ4K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const float d = half(b.d), dmin = half(b.dmin);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m256 d1, m1, d2, m2;
      k_pair(b.scales, j, d, dmin, d1, m1, d2, m2);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * j));
      emit32_dsub(_mm256_and_si256(q, mask), d1, m1, 8 * j, f);
      emit32_dsub(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask), d2, m2, 8 * j + 4, f);
    }
  }
};

struct Q5_K {
  using Block = BlockQ5K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m256i mask = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const float d = half(b.d), dmin = half(b.dmin);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m256 d1, m1, d2, m2;
      k_pair(b.scales, j, d, dmin, d1, m1, d2, m2);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * j));
      // Bit 2j (low nibbles) and 2j + 1 (high nibbles) of qh[l], moved to bit 4 (16).
      const __m256i h1 = _mm256_slli_epi16(
          _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j)), one), 4);
      const __m256i h2 = _mm256_slli_epi16(
          _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j + 1)), one), 4);
      emit32_dsub(_mm256_or_si256(_mm256_and_si256(q, mask), h1), d1, m1, 8 * j, f);
      emit32_dsub(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask), h2), d2, m2,
                  8 * j + 4, f);
    }
  }
};

// Q6_K: 32 codes (-32..31) with the scales of their two sub-blocks of 16: (d * scale) * q.
template <class F>
QKV_INLINE void emit32_q6(__m256i q, float d, int8_t s0, int8_t s1, int v, F& f) {
  emit16_i8(_mm256_castsi256_si128(q), _mm256_set1_ps(d * static_cast<float>(s0)), v, f);
  emit16_i8(_mm256_extracti128_si256(q, 1), _mm256_set1_ps(d * static_cast<float>(s1)), v + 2, f);
}

struct Q6_K {
  using Block = BlockQ6K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    const float d = half(b.d);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const int8_t* sc = b.scales + 8 * h;
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const auto hi = [&](int shift) {
        return _mm256_slli_epi16(
            _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(shift)), m2), 4);
      };
      const __m256i q1 = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l0, m4), hi(0)), off);
      const __m256i q2 = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l1, m4), hi(2)), off);
      const __m256i q3 = _mm256_sub_epi8(
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), hi(4)), off);
      const __m256i q4 = _mm256_sub_epi8(
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), hi(6)), off);
      emit32_q6(q1, d, sc[0], sc[1], 16 * h, f);
      emit32_q6(q2, d, sc[2], sc[3], 16 * h + 4, f);
      emit32_q6(q3, d, sc[4], sc[5], 16 * h + 8, f);
      emit32_q6(q4, d, sc[6], sc[7], 16 * h + 12, f);
    }
  }
};

// Q2_K / Q3_K: vector pair v, v + 1 = 8h + 2i + {0, 1} holds the 16 codes of bytes
// qs[32h + 16 part, + 16) at bit 2i (i < 4), one sub-block each (dequant.cpp's order).
QKV_INLINE __m128i codes2(const uint8_t* qs, int i) {
  return _mm_and_si128(_mm_srl_epi16(load16(qs), _mm_cvtsi32_si128(2 * i)), _mm_set1_epi8(3));
}

struct Q2_K {
  using Block = BlockQ2K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const float d = half(b.d), dmin = half(b.dmin);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
#pragma GCC unroll 2
        for (int part = 0; part < 2; ++part) {
          const int s = 8 * h + 2 * i + part;
          // d * scale * q - dmin * min, rounded as the scalar: (d * scale) * q, then minus.
          const __m256 dl = _mm256_set1_ps(d * static_cast<float>(b.scales[s] & 0xF));
          const __m256 ml = _mm256_set1_ps(dmin * static_cast<float>(b.scales[s] >> 4));
          emit16_i8_dsub(codes2(b.qs + 32 * h + 16 * part, i), dl, ml, 2 * s, f);
        }
      }
    }
  }
};

struct Q3_K {
  using Block = BlockQ3K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const float d = half(b.d);
    int8_t scales[16];
    q3_k_scales(b.scales, scales);
    const __m128i four = _mm_set1_epi8(4);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m128i bit = _mm_set1_epi8(static_cast<char>(1 << (4 * h + i)));
#pragma GCC unroll 2
        for (int part = 0; part < 2; ++part) {
          const int s = 8 * h + 2 * i + part;
          // code - 4, plus 4 back where the hmask bit is set: -4..3.
          const __m128i set = _mm_cmpeq_epi8(_mm_and_si128(load16(b.hmask + 16 * part), bit), bit);
          const __m128i q = _mm_add_epi8(_mm_sub_epi8(codes2(b.qs + 32 * h + 16 * part, i), four),
                                         _mm_and_si128(set, four));
          // float(v) * (d * scale): the scalar's product (d * scale) * v.
          emit16_i8(q, _mm256_set1_ps(d * static_cast<float>(scales[s])), 2 * s, f);
        }
      }
    }
  }
};

template <class D>
void decode_type(const uint8_t* blocks, int64_t n, float* out) {
  const auto* b = reinterpret_cast<const typename D::Block*>(blocks);
  for (int64_t i = 0; i < n / D::kElems; ++i) {
    float* dst = out + i * D::kElems;
    D::run(b[i], [dst](int v, __m256 w) { _mm256_storeu_ps(dst + 8 * v, w); });
  }
}

// The matrix-vector product: per row of x, kChains chains of 8 fp32 FMAs, vector v of a weight
// row going to chain v % kChains, then ((c0 + c1) + (c2 + c3)) summed across lanes: the order
// depends on n_in only, never on the rows beside it (batch invariance, docs/SERVER.md). Four
// chains keep the FMA latency (4 cycles) hidden at one row; 2 rows x 4 chains use 8 of the 16
// YMM registers and leave the decoders theirs, so 3 or 4 rows of x take two passes, each
// decoding the weights again (from L1/L2).
constexpr int kChains = 4;
constexpr int kMaxRows = 2;

// The bytes of the row ahead of the decoder, requested early: the loop alone keeps too few cache
// lines in flight to reach the memory bandwidth (as for Q8_0 in cpu/linear_avx2.cpp).
constexpr int64_t kPrefetchBytes = 1024;

template <class D, int M>
void gemv_rows(const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  using Block = typename D::Block;
  constexpr int kVecs = D::kElems / 8;  // 4 or 32: whole rounds of the chains
  static_assert(kVecs % kChains == 0);
  const int64_t n_blocks = t.n_in / D::kElems;
  const float* x[M];
  for (int i = 0; i < M; ++i) x[i] = t.x + i * t.ldx;
  for (int64_t o = o0; o < o1; ++o) {
    const auto* blocks = reinterpret_cast<const Block*>(t.w + o * t.w_stride);
    __m256 acc[M][kChains];
    for (int i = 0; i < M; ++i)
      for (int c = 0; c < kChains; ++c) acc[i][c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
      const auto* p = reinterpret_cast<const char*>(blocks + b);
      for (int64_t line = 0; line < static_cast<int64_t>(sizeof(Block)); line += 64) {
        _mm_prefetch(p + kPrefetchBytes + line, _MM_HINT_T0);  // may run past the row: harmless
      }
      const int64_t k0 = b * D::kElems;
      D::run(blocks[b], [&](int v, __m256 w) {
        const int c = v % kChains;
        for (int i = 0; i < M; ++i)
          acc[i][c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x[i] + k0 + 8 * v), acc[i][c]);
      });
    }
    const float bias = t.bias ? t.bias[o] : 0.0f;
    for (int i = 0; i < M; ++i) {
      const __m256 s =
          _mm256_add_ps(_mm256_add_ps(acc[i][0], acc[i][1]), _mm256_add_ps(acc[i][2], acc[i][3]));
      t.y[i * t.ldy + o] = hsum(s) + bias;
    }
  }
}

template <class D>
void gemv_type(const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  if (t.m == 1) return gemv_rows<D, 1>(t, o0, o1);
  // Passes of kMaxRows rows (and one of 1 for odd m).
  cpu::GemvTask part = t;
  for (int64_t i = 0; i < t.m; i += kMaxRows) {
    part.x = t.x + i * t.ldx;
    part.y = t.y + i * t.ldy;
    if (t.m - i >= 2) {
      gemv_rows<D, 2>(part, o0, o1);
    } else {
      gemv_rows<D, 1>(part, o0, o1);
    }
  }
}

// The chunked product for a type without a register decoder here (Q8_0, if it is ever called
// through this entry point rather than cpu/linear_avx2.cpp's own kernel): decode 256 values
// into L1 with the scalar dequantizer, then FMA.
template <int M>
void gemv_chunked(QuantType q, const cpu::GemvTask& t, int64_t o0, int64_t o1) {
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
      dequantize(q, blocks, n, w);
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
  switch (q) {
    case QuantType::q4_0:
      return decode_type<Q4_0>(blocks, n, out);
    case QuantType::q4_1:
      return decode_type<Q4_1>(blocks, n, out);
    case QuantType::q5_0:
      return decode_type<Q5_0>(blocks, n, out);
    case QuantType::q5_1:
      return decode_type<Q5_1>(blocks, n, out);
    case QuantType::iq4_nl:
      return decode_type<Iq4Nl>(blocks, n, out);
    case QuantType::iq4_xs:
      return decode_type<Iq4Xs>(blocks, n, out);
    case QuantType::q4_k:
      return decode_type<Q4_K>(blocks, n, out);
    case QuantType::q5_k:
      return decode_type<Q5_K>(blocks, n, out);
    case QuantType::q6_k:
      return decode_type<Q6_K>(blocks, n, out);
    case QuantType::q2_k:
      return decode_type<Q2_K>(blocks, n, out);
    case QuantType::q3_k:
      return decode_type<Q3_K>(blocks, n, out);
    default:  // Q8_0 (cpu/linear_avx2.cpp has its own)
      return dequantize(q, blocks, n, out);
  }
}

void gemv(QuantType q, const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  switch (q) {
    case QuantType::q4_0:
      return gemv_type<Q4_0>(t, o0, o1);
    case QuantType::q4_1:
      return gemv_type<Q4_1>(t, o0, o1);
    case QuantType::q5_0:
      return gemv_type<Q5_0>(t, o0, o1);
    case QuantType::q5_1:
      return gemv_type<Q5_1>(t, o0, o1);
    case QuantType::iq4_nl:
      return gemv_type<Iq4Nl>(t, o0, o1);
    case QuantType::iq4_xs:
      return gemv_type<Iq4Xs>(t, o0, o1);
    case QuantType::q4_k:
      return gemv_type<Q4_K>(t, o0, o1);
    case QuantType::q5_k:
      return gemv_type<Q5_K>(t, o0, o1);
    case QuantType::q6_k:
      return gemv_type<Q6_K>(t, o0, o1);
    case QuantType::q2_k:
      return gemv_type<Q2_K>(t, o0, o1);
    case QuantType::q3_k:
      return gemv_type<Q3_K>(t, o0, o1);
    default:
      break;
  }
  switch (t.m) {
    case 1:
      return gemv_chunked<1>(q, t, o0, o1);
    case 2:
      return gemv_chunked<2>(q, t, o0, o1);
    case 3:
      return gemv_chunked<3>(q, t, o0, o1);
    default:
      return gemv_chunked<4>(q, t, o0, o1);
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
