// The AVX-512 target of the block-format matrix-vector kernels (gemv.h): each block is decoded
// into registers, 16 weights at a time, and multiplied straight away with the fp32 activations.
//
// Decoded weights are bit-identical to the scalar dequantizer (dequant.cpp: the same float
// operations in the same order, no FMA; this file is built with -ffp-contract=off). Most formats
// store a 4- or 5-bit code per weight and one scale (and min) per block or sub-block, so the 16
// or 32 values a code can stand for are computed once per (sub-)block with the scalar's own
// operations, as a table in one or two registers, and each group of 16 codes becomes 16 fp32
// weights with one permute (vpermps reads the low 4 bits of each index; the fifth bit of Q5_0,
// Q5_1 and Q5_K selects the second table through a write mask). Q8_0 and Q6_K (8- and 6-bit
// codes) widen and convert the codes instead.
//
// The products: per row of x, four chains of 16 fp32 FMAs (kChains), vector v of a weight row
// going to chain v % 4, then ((c0 + c1) + (c2 + c3)) summed across lanes. The order depends only
// on n_in, never on how many rows of x share the call (1..4, each decoded weight used for all of
// them): batch invariance, docs/SERVER.md.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/cpu_features.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/gemv.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels/cpu/targets.h"

#if !defined(__clang__)
// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

QKV_TARGET_BEGIN(QKV_TARGET_AVX512)

namespace qkv::kernels::quant::avx512 {
namespace {

#define QKV_INLINE inline __attribute__((always_inline))

constexpr int kChains = 4;
// Rows of x per pass: 4 rows x 4 chains = 16 of the 32 ZMM registers, the rest for decoding.
constexpr int kMaxRows = 4;
// As for the AVX2 kernels (cpu/linear_avx2.cpp): the loop alone keeps too few lines in flight.
// (Q4_0, 1 thread, Zen 5, loaded machine: 9.7 GB/s with, 7.1 without; Q4_K, Q6_K, Q8_0 the
// same within the noise.)
constexpr int64_t kPrefetchBytes = 1024;

QKV_INLINE float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// d (f16 bits) in every lane: a word broadcast from memory and one conversion, instead of a
// scalar conversion and a register broadcast (both on the shuffle ports that vpermps needs).
QKV_INLINE __m512 splat_half(const uint16_t& h) {
  return _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<short>(h)));
}

// Makes the compiler read `p` from memory again, so that the _mm512_set1_ps of its elements
// become broadcasts from memory (load ports) rather than vpermd + vpbroadcastd on the values it
// still holds in a register (the shuffle ports, which the permutes of the decoders saturate).
QKV_INLINE void reload(const float* p) {
  __asm__ __volatile__("" : : "r"(p) : "memory");
}

QKV_INLINE __m512 iota16(float start) {
  return _mm512_add_ps(_mm512_set1_ps(start),
                       _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

// 16 bytes -> 16 dwords (zero-extended): permute indices whose low 4 bits are the low nibbles,
// and whose value >> 4 gives the high nibbles.
QKV_INLINE __m512i bytes16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
QKV_INLINE __m512i high4(__m512i q) {
  return _mm512_srli_epi32(q, 4);
}

// The accumulators of up to kMaxRows rows of x; `add(v, k, w)` adds w * x[i][k, k + 16) to chain
// v % kChains of every row (v a constant after inlining, so the arrays live in registers).
template <int M>
struct Rows {
  const float* x[M];
  __m512 acc[M][kChains];

  QKV_INLINE void add(int v, int64_t k, __m512 w) {
    const int c = v % kChains;
    for (int i = 0; i < M; ++i)
      acc[i][c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x[i] + k), acc[i][c]);
  }
};

// One decoder per block type: kElems values per block; run(block, f) calls f(v, w) for the
// block's 16-value vectors v = 0, 1, ... in element order.

struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    // float(q - 8) * d, as the scalar (exact: 4 x 11 significant bits).
    const __m512 table = _mm512_mul_ps(iota16(-8), splat_half(b.d));
    const __m512i q = bytes16(b.qs);
    f(0, _mm512_permutexvar_ps(q, table));
    f(1, _mm512_permutexvar_ps(high4(q), table));
  }
};

struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m512 table = _mm512_add_ps(_mm512_mul_ps(iota16(0), _mm512_set1_ps(half(b.d))),
                                       _mm512_set1_ps(half(b.m)));
    const __m512i q = bytes16(b.qs);
    f(0, _mm512_permutexvar_ps(q, table));
    f(1, _mm512_permutexvar_ps(high4(q), table));
  }
};

// Q5_0 / Q5_1 / Q5_K: codes 0..15 from t0, 16..31 from t1 where `fifth` (one bit per lane) is set.
QKV_INLINE __m512 lookup32(__m512i q, __m512 t0, __m512 t1, __mmask16 fifth) {
  return _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(q, t0), fifth, q, t1);
}

// A Q5_0 / Q5_1 block's 32 weights from its tables: low nibbles and bits 0..15 of qh for the
// first 16, high nibbles and bits 16..31 for the rest.
template <class Block, class F>
QKV_INLINE void run_q5(const Block& b, __m512 t0, __m512 t1, F&& f) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  const __m512i q = bytes16(b.qs);
  f(0, lookup32(q, t0, t1, static_cast<__mmask16>(qh)));
  f(1, lookup32(high4(q), t0, t1, static_cast<__mmask16>(qh >> 16)));
}

struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m512 d = _mm512_set1_ps(half(b.d));
    run_q5(b, _mm512_mul_ps(iota16(-16), d), _mm512_mul_ps(iota16(0), d), f);
  }
};

struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m512 d = _mm512_set1_ps(half(b.d)), m = _mm512_set1_ps(half(b.m));
    const __m512 t0 = _mm512_add_ps(_mm512_mul_ps(iota16(0), d), m);
    const __m512 t1 = _mm512_add_ps(_mm512_mul_ps(iota16(16), d), m);
    run_q5(b, t0, t1, f);
  }
};

struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m512 d = _mm512_set1_ps(half(b.d));
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      const __m128i q8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 16 * v));
      f(v, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8)), d));
    }
  }
};

QKV_INLINE __m512 iq4_values() {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues))));
}

struct Iq4Nl {
  using Block = BlockIq4Nl;
  static constexpr int kElems = kQK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const __m512 table = _mm512_mul_ps(_mm512_set1_ps(half(b.d)), iq4_values());
    const __m512i q = bytes16(b.qs);
    f(0, _mm512_permutexvar_ps(q, table));
    f(1, _mm512_permutexvar_ps(high4(q), table));
  }
};

struct Iq4Xs {
  using Block = BlockIq4Xs;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    const float d = half(b.d);
    const __m512 values = iq4_values();
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      const int ls =
          ((b.scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((b.scales_h >> (2 * s)) & 3) << 4);
      const __m512 table = _mm512_mul_ps(_mm512_set1_ps(d * static_cast<float>(ls - 32)), values);
      const __m512i q = bytes16(b.qs + 16 * s);
      f(2 * s, _mm512_permutexvar_ps(q, table));
      f(2 * s + 1, _mm512_permutexvar_ps(high4(q), table));
    }
  }
};

// Q4_K / Q5_K: the 8 sub-blocks' d * scale (dl[0, 8)) and dmin * min (dl[8, 16)), rounded as
// the scalar rounds them. The 6-bit fields (k_scale_min) are unpacked 4 at a time from the
// three little-endian words of the 12 bytes: scales 0-3 and mins 0-3 are the low 6 bits of words
// 0 and 1; scales and mins 4-7 take their low 4 bits from the nibbles of word 2 and their top 2
// bits from the top 2 bits of words 0 and 1.
QKV_INLINE void k_scales(const uint8_t* packed, uint16_t d, uint16_t dmin, float* dl) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, top2 = 0x03030303;
  const uint32_t fields[4] = {w[0] & low6, (w[2] & low4) | (((w[0] >> 6) & top2) << 4), w[1] & low6,
                              ((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4)};
  const __m512 codes = _mm512_cvtepi32_ps(
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(fields))));
  const __m512 scale = _mm512_cvtph_ps(
      _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(static_cast<short>(d))),
                              _mm_set1_epi16(static_cast<short>(dmin)), 1));
  _mm512_store_ps(dl, _mm512_mul_ps(scale, codes));
  reload(dl);
}

struct Q4_K {
  using Block = BlockQ4K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    alignas(64) float dl[16];  // d * scale [8], then dmin * min [8]
    k_scales(b.scales, b.d, b.dmin, dl);
    const float* ml = dl + 8;
    const __m512 codes = iota16(0);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      // dl * float(q) - ml: sub-block 2j from the low nibbles of qs[32j, 32j + 32), 2j + 1 from
      // their high nibbles.
      const __m512 t_lo =
          _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[2 * j]), codes), _mm512_set1_ps(ml[2 * j]));
      const __m512 t_hi = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[2 * j + 1]), codes),
                                        _mm512_set1_ps(ml[2 * j + 1]));
      const __m512i qa = bytes16(b.qs + 32 * j), qb = bytes16(b.qs + 32 * j + 16);
      f(4 * j, _mm512_permutexvar_ps(qa, t_lo));
      f(4 * j + 1, _mm512_permutexvar_ps(qb, t_lo));
      f(4 * j + 2, _mm512_permutexvar_ps(high4(qa), t_hi));
      f(4 * j + 3, _mm512_permutexvar_ps(high4(qb), t_hi));
    }
  }
};

struct Q5_K {
  using Block = BlockQ5K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    alignas(64) float dl[16];  // d * scale [8], then dmin * min [8]
    k_scales(b.scales, b.d, b.dmin, dl);
    const float* ml = dl + 8;
    const __m512 c0 = iota16(0), c1 = iota16(16);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512 d1 = _mm512_set1_ps(dl[2 * j]), m1 = _mm512_set1_ps(ml[2 * j]);
      const __m512 d2 = _mm512_set1_ps(dl[2 * j + 1]), m2 = _mm512_set1_ps(ml[2 * j + 1]);
      const __m512 lo0 = _mm512_sub_ps(_mm512_mul_ps(d1, c0), m1);
      const __m512 lo1 = _mm512_sub_ps(_mm512_mul_ps(d1, c1), m1);
      const __m512 hi0 = _mm512_sub_ps(_mm512_mul_ps(d2, c0), m2);
      const __m512 hi1 = _mm512_sub_ps(_mm512_mul_ps(d2, c1), m2);
      // The fifth bit of element l: bit 2j (low nibbles) or 2j + 1 (high) of qh[l], l < 32.
      const __mmask32 f_lo =
          _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * j))));
      const __mmask32 f_hi =
          _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(2 << (2 * j))));
      const __m512i qa = bytes16(b.qs + 32 * j), qb = bytes16(b.qs + 32 * j + 16);
      f(4 * j, lookup32(qa, lo0, lo1, static_cast<__mmask16>(f_lo)));
      f(4 * j + 1, lookup32(qb, lo0, lo1, static_cast<__mmask16>(f_lo >> 16)));
      f(4 * j + 2, lookup32(high4(qa), hi0, hi1, static_cast<__mmask16>(f_hi)));
      f(4 * j + 3, lookup32(high4(qb), hi0, hi1, static_cast<__mmask16>(f_hi >> 16)));
    }
  }
};

struct Q6_K {
  using Block = BlockQ6K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    // (d * scale) per sub-block of 16, as the scalar rounds it.
    alignas(64) float ds[16];
    const __m512 scales = _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales))));
    _mm512_store_ps(ds, _mm512_mul_ps(_mm512_set1_ps(half(b.d)), scales));
    reload(ds);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3), off = _mm512_set1_epi8(32);
    // Per 16-bit lane, the shift of qh for the low / high 256 bits of a 512-bit vector.
    const __m512i s02 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i s46 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      // 128 values: ql[64h, 64h + 64) and qh[32h, 32h + 32). Bytes 0..31 of q12 are elements
      // 0..31 (low nibbles of ql[0, 32), bits 0-1 of qh), bytes 32..63 elements 32..63 (low
      // nibbles of ql[32, 64), bits 2-3); q34 the same with the high nibbles and bits 4-7.
      const __m512i l = _mm512_loadu_si512(b.ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
      const __m512i h12 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, s02), m2), 4);
      const __m512i h34 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, s46), m2), 4);
      const __m512i q12 = _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(l, m4), h12), off);
      const __m512i q34 =
          _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), h34), off);
      const auto emit = [&](__m128i q, int v) {
        // Vector v of the block holds sub-block v: (d * scale) * float(q).
        f(v, _mm512_mul_ps(_mm512_set1_ps(ds[v]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
      };
      emit(_mm512_castsi512_si128(q12), 8 * h);
      emit(_mm512_extracti32x4_epi32(q12, 1), 8 * h + 1);
      emit(_mm512_extracti32x4_epi32(q12, 2), 8 * h + 2);
      emit(_mm512_extracti32x4_epi32(q12, 3), 8 * h + 3);
      emit(_mm512_castsi512_si128(q34), 8 * h + 4);
      emit(_mm512_extracti32x4_epi32(q34, 1), 8 * h + 5);
      emit(_mm512_extracti32x4_epi32(q34, 2), 8 * h + 6);
      emit(_mm512_extracti32x4_epi32(q34, 3), 8 * h + 7);
    }
  }
};

// Q2_K / Q3_K: vector v = 8h + 2i + part of a block holds the 16 codes of bytes
// qs[32h + 16 part, + 16) at bit 2i (i < 4), one sub-block. Shifting the zero-extended bytes
// right by 2i leaves the code in bits 0-1 and the next code in bits 2-3, which vpermps also
// reads: the tables repeat their 4 values (k & 3) across the 16 entries.
QKV_INLINE __m512 codes2() {
  return _mm512_setr_ps(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
}

struct Q2_K {
  using Block = BlockQ2K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    // Sub-block s: dl[s] = d * scale (low nibble), ml[s] = dmin * min (high nibble).
    alignas(64) float dl[16], ml[16];
    const __m512i sc = bytes16(b.scales);
    _mm512_store_ps(dl, _mm512_mul_ps(splat_half(b.d), _mm512_cvtepi32_ps(_mm512_and_si512(
                                                           sc, _mm512_set1_epi32(15)))));
    _mm512_store_ps(ml, _mm512_mul_ps(splat_half(b.dmin), _mm512_cvtepi32_ps(high4(sc))));
    reload(dl);
    reload(ml);
    const __m512 codes = codes2();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i q0 = bytes16(b.qs + 32 * h), q1 = bytes16(b.qs + 32 * h + 16);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const int v = 8 * h + 2 * i;
        const __m512 t0 =
            _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[v]), codes), _mm512_set1_ps(ml[v]));
        const __m512 t1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[v + 1]), codes),
                                        _mm512_set1_ps(ml[v + 1]));
        f(v, _mm512_permutexvar_ps(_mm512_srli_epi32(q0, 2 * i), t0));
        f(v + 1, _mm512_permutexvar_ps(_mm512_srli_epi32(q1, 2 * i), t1));
      }
    }
  }
};

struct Q3_K {
  using Block = BlockQ3K;
  static constexpr int kElems = kQKK;
  template <class F>
  static QKV_INLINE void run(const Block& b, F&& f) {
    // Sub-block s: d * (signed scale), then times the code (-4..3): 0..3 where the hmask bit is
    // set, minus 4 where it is clear.
    alignas(16) int8_t scales[16];
    q3_k_scales(b.scales, scales);
    alignas(64) float dl[16];
    _mm512_store_ps(
        dl, _mm512_mul_ps(splat_half(b.d), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(
                                               reinterpret_cast<const __m128i*>(scales))))));
    reload(dl);
    // Index (code | 4 where the hmask bit is set) into d * scale * {-4, -3, -2, -1, 0, 1, 2, 3}:
    // one permute per 16 weights.
    const __m512 values = _mm512_setr_ps(-4, -3, -2, -1, 0, 1, 2, 3, -4, -3, -2, -1, 0, 1, 2, 3);
    const __m512i three = _mm512_set1_epi32(3), four = _mm512_set1_epi32(4);
    const __m128i hm0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.hmask));
    const __m128i hm1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.hmask + 16));
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i q0 = bytes16(b.qs + 32 * h), q1 = bytes16(b.qs + 32 * h + 16);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const int v = 8 * h + 2 * i;
        const __m128i bit = _mm_set1_epi8(static_cast<char>(1 << (4 * h + i)));
        const auto lookup = [&](__m512i q, __m128i hm, float d) {
          const __m512i code = _mm512_and_si512(_mm512_srli_epi32(q, 2 * i), three);
          const __m512i idx = _mm512_mask_or_epi32(code, _mm_test_epi8_mask(hm, bit), code, four);
          // (d * scale) * value, as the scalar rounds it.
          return _mm512_permutexvar_ps(idx, _mm512_mul_ps(_mm512_set1_ps(d), values));
        };
        f(v, lookup(q0, hm0, dl[v]));
        f(v + 1, lookup(q1, hm1, dl[v + 1]));
      }
    }
  }
};

// Rows [o0, o1) against M rows of x. Blocks of 32 values (2 vectors) go in pairs, so that the
// four chains stay compile-time registers; an odd last block uses chains 0 and 1.
template <class D, int M>
void gemv_rows(const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  using Block = typename D::Block;
  constexpr int kVecs = D::kElems / 16;
  constexpr int kGroup = kVecs >= kChains ? 1 : kChains / kVecs;  // blocks per step
  const int64_t n_blocks = t.n_in / D::kElems;
  for (int64_t o = o0; o < o1; ++o) {
    const auto* blocks = reinterpret_cast<const Block*>(t.w + o * t.w_stride);
    Rows<M> r;
    for (int i = 0; i < M; ++i) {
      r.x[i] = t.x + i * t.ldx;
      for (int c = 0; c < kChains; ++c) r.acc[i][c] = _mm512_setzero_ps();
    }
    int64_t b = 0;
    for (; b + kGroup <= n_blocks; b += kGroup) {
      const auto* p = reinterpret_cast<const char*>(blocks + b);
      for (int64_t line = 0; line < kGroup * static_cast<int64_t>(sizeof(Block)); line += 64) {
        _mm_prefetch(p + kPrefetchBytes + line, _MM_HINT_T0);  // may run past the row: harmless
      }
#pragma GCC unroll 2
      for (int g = 0; g < kGroup; ++g) {
        const int64_t k0 = (b + g) * D::kElems;
        D::run(blocks[b + g], [&](int v, __m512 w) { r.add(g * kVecs + v, k0 + 16 * v, w); });
      }
    }
    for (; b < n_blocks; ++b) {
      const int64_t k0 = b * D::kElems;
      D::run(blocks[b], [&](int v, __m512 w) { r.add(v, k0 + 16 * v, w); });
    }
    const float bias = t.bias ? t.bias[o] : 0.0f;
    for (int i = 0; i < M; ++i) {
      const __m512 s = _mm512_add_ps(_mm512_add_ps(r.acc[i][0], r.acc[i][1]),
                                     _mm512_add_ps(r.acc[i][2], r.acc[i][3]));
      t.y[i * t.ldy + o] = _mm512_reduce_add_ps(s) + bias;
    }
  }
}

template <class D>
void gemv_type(const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  static_assert(cpu::kGemvRows <= kMaxRows);
  switch (t.m) {
    case 1:
      return gemv_rows<D, 1>(t, o0, o1);
    case 2:
      return gemv_rows<D, 2>(t, o0, o1);
    case 3:
      return gemv_rows<D, 3>(t, o0, o1);
    default:
      return gemv_rows<D, 4>(t, o0, o1);
  }
}

}  // namespace

bool gemv(QuantType q, const cpu::GemvTask& t, int64_t o0, int64_t o1) {
  switch (q) {
    case QuantType::q4_0:
      return gemv_type<Q4_0>(t, o0, o1), true;
    case QuantType::q4_1:
      return gemv_type<Q4_1>(t, o0, o1), true;
    case QuantType::q5_0:
      return gemv_type<Q5_0>(t, o0, o1), true;
    case QuantType::q5_1:
      return gemv_type<Q5_1>(t, o0, o1), true;
    case QuantType::q8_0:
      return gemv_type<Q8_0>(t, o0, o1), true;
    case QuantType::iq4_nl:
      return gemv_type<Iq4Nl>(t, o0, o1), true;
    case QuantType::iq4_xs:
      return gemv_type<Iq4Xs>(t, o0, o1), true;
    case QuantType::q4_k:
      return gemv_type<Q4_K>(t, o0, o1), true;
    case QuantType::q5_k:
      return gemv_type<Q5_K>(t, o0, o1), true;
    case QuantType::q6_k:
      return gemv_type<Q6_K>(t, o0, o1), true;
    case QuantType::q2_k:
      return gemv_type<Q2_K>(t, o0, o1), true;
    case QuantType::q3_k:
      return gemv_type<Q3_K>(t, o0, o1), true;
  }
  return false;
}

}  // namespace qkv::kernels::quant::avx512

QKV_TARGET_END

#else  // not x86

namespace qkv::kernels::quant::avx512 {
bool gemv(QuantType, const cpu::GemvTask&, int64_t, int64_t) {
  return false;
}
}  // namespace qkv::kernels::quant::avx512
#endif
