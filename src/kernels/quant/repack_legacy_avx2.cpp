// The AVX2 kernels of the interleaved 32-value formats (layout: repack_legacy.cpp), for CPUs
// without AVX512-VNNI: a group's 16 rows as two halves of 8 YMM lanes, each half a pass of its
// own (lanes are independent, so the halves change nothing in a row's arithmetic).
//
// vpmaddubsw multiplies unsigned by signed bytes into int16 pairs, which must not saturate:
//   4- and 5-bit codes (Q4_0, Q4_1, Q5_0, Q5_1): the unsigned code u, and for Q4_0 / Q5_0 the
//     offset (8, 16) times the block's sum of x subtracted in int32; pairs of 8 (4-bit) or 4
//     (5-bit) vectors add up in int16 before one vpmaddwd (unsigned_dots);
//   Q8_0, IQ4_NL (signed, |c| <= 128): the sign trick, |c| times (x with the sign of c), pairs
//     <= 2 * 128 * 127, each widened by its own vpmaddwd.
// Either way I_b is the exact integer c . x, the same as the other targets'.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/linear_target.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/repack.h"
#include "kernels/quant/repack_family.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels/cpu/targets.h"

QKV_TARGET_BEGIN(QKV_TARGET_AVX2)

namespace qkv::kernels::quant::avx2 {
namespace {

#define QKV_INLINE inline __attribute__((always_inline))

constexpr int64_t kRows = kRepackRows;
// 4 rows x (int32 sums + fp32 accumulators) + the codes of one 4-value step and constants: 16
// YMM registers.
constexpr int kRowsPerPass = 4;

QKV_INLINE __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

QKV_INLINE __m256i load(const uint8_t* p) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
}

// The 4-bit codes of half a group's block: w[q] holds values 4 q + t (vector j's low nibbles are
// quad j, its high nibbles quad j + 4), and with `fifth` the fifth bits (bit 8 t + q of each
// row's word) at 0x10.
template <bool kFifth>
QKV_INLINE void nibbles(const uint8_t* c, __m256i (&w)[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int j = 0; j < 4; ++j) {
    const __m256i v = load(c + 64 * j);
    w[j] = _mm256_and_si256(v, m4);
    w[j + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  }
  if constexpr (kFifth) {
    const __m256i f = load(c + 256), b4 = _mm256_set1_epi8(0x10);
    w[0] = _mm256_or_si256(w[0], _mm256_and_si256(_mm256_slli_epi32(f, 4), b4));
    w[1] = _mm256_or_si256(w[1], _mm256_and_si256(_mm256_slli_epi32(f, 3), b4));
    w[2] = _mm256_or_si256(w[2], _mm256_and_si256(_mm256_slli_epi32(f, 2), b4));
    w[3] = _mm256_or_si256(w[3], _mm256_and_si256(_mm256_slli_epi32(f, 1), b4));
    w[4] = _mm256_or_si256(w[4], _mm256_and_si256(f, b4));
    w[5] = _mm256_or_si256(w[5], _mm256_and_si256(_mm256_srli_epi32(f, 1), b4));
    w[6] = _mm256_or_si256(w[6], _mm256_and_si256(_mm256_srli_epi32(f, 2), b4));
    w[7] = _mm256_or_si256(w[7], _mm256_and_si256(_mm256_srli_epi32(f, 3), b4));
  }
}

// I_b of M rows of x for one block of half a group, into isum[i] (int32 lanes): signed codes
// (|c| <= 128) by the sign trick, one vpmaddwd per 4 values.
template <int M>
QKV_INLINE void signed_dots(const __m256i (&w)[8], const ActBlock32* const (&x)[M], int64_t b,
                            __m256i (&isum)[M]) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int i = 0; i < M; ++i) isum[i] = _mm256_setzero_si256();
  for (int q = 0; q < 8; ++q) {
    const __m256i aw = _mm256_sign_epi8(w[q], w[q]);
    for (int i = 0; i < M; ++i) {
      const __m256i s = _mm256_sign_epi8(bcast4(x[i][b].q + 4 * q), w[q]);
      isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, s), ones));
    }
  }
}

// Unsigned codes u <= 15 (kPerSum 8) or <= 31 (kPerSum 4): the int16 pairs of kPerSum vpmaddubsw
// add up below 32768 (8 * 2 * 15 * 127 = 30480, 4 * 2 * 31 * 127 = 31496), then one vpmaddwd.
template <int kPerSum, int M>
QKV_INLINE void unsigned_dots(const __m256i (&u)[8], const ActBlock32* const (&x)[M], int64_t b,
                              __m256i (&isum)[M]) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int i = 0; i < M; ++i) isum[i] = _mm256_setzero_si256();
  for (int q0 = 0; q0 < 8; q0 += kPerSum) {
    for (int i = 0; i < M; ++i) {
      __m256i p = _mm256_maddubs_epi16(u[q0], bcast4(x[i][b].q + 4 * q0));
      for (int q = q0 + 1; q < q0 + kPerSum; ++q) {
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[q], bcast4(x[i][b].q + 4 * q)));
      }
      isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(p, ones));
    }
  }
}

// A format: its codes' bytes per block, the offset subtracted through the sums of x (kOff, for
// unsigned codes), its min, and dots(): I_b (+ kOff sum(x)) of M rows.
struct Q8_0 {
  static constexpr int64_t kCodeBytes = 512;
  static constexpr int32_t kOff = 0;
  static constexpr bool kMin = false;
  template <int M>
  static QKV_INLINE void dots(const uint8_t* c, const ActBlock32* const (&x)[M], int64_t b,
                              __m256i (&isum)[M]) {
    __m256i w[8];
    for (int q = 0; q < 8; ++q) w[q] = load(c + 64 * q);
    signed_dots<M>(w, x, b, isum);
  }
};

struct Iq4Nl {
  static constexpr int64_t kCodeBytes = 256;
  static constexpr int32_t kOff = 0;
  static constexpr bool kMin = false;
  template <int M>
  static QKV_INLINE void dots(const uint8_t* c, const ActBlock32* const (&x)[M], int64_t b,
                              __m256i (&isum)[M]) {
    const __m256i table = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
    __m256i w[8];
    nibbles<false>(c, w);
    for (int q = 0; q < 8; ++q) w[q] = _mm256_shuffle_epi8(table, w[q]);
    signed_dots<M>(w, x, b, isum);
  }
};

template <bool kFifth, int32_t kOffset, bool kHasMin>
struct Nibbles {
  static constexpr int64_t kCodeBytes = kFifth ? 320 : 256;
  static constexpr int32_t kOff = kOffset;
  static constexpr bool kMin = kHasMin;
  template <int M>
  static QKV_INLINE void dots(const uint8_t* c, const ActBlock32* const (&x)[M], int64_t b,
                              __m256i (&isum)[M]) {
    __m256i u[8];
    nibbles<kFifth>(c, u);
    unsigned_dots<kFifth ? 4 : 8, M>(u, x, b, isum);
  }
};
using Q4_0 = Nibbles<false, 8, false>;
using Q4_1 = Nibbles<false, 0, true>;
using Q5_0 = Nibbles<true, 16, false>;
using Q5_1 = Nibbles<true, 0, true>;

// Rows [i0, i0 + M) of x against halves [h0, h0 + H) (rows 8 h .. 8 h + 7) of group g. One
// row of x takes both halves in one pass over the blocks, so that decode reads the group once as
// one stream (two passes of a half each: Q5_0 0.82x of the row kernels from DRAM on Zen 4); more
// rows take a half per pass, for registers.
template <class F, int M, int H>
void pass(const cpu::RepackedTask& t, const uint8_t* group, int64_t nb, const int32_t* sums,
          int64_t g, int h0, int64_t i0) {
  using L = LegacyLayout<F::kMin ? 64 : 32, F::kCodeBytes>;
  const ActBlock32* x[M];
  __m256 acc[H][M], mins[H][M];
  for (int i = 0; i < M; ++i) {
    x[i] = reinterpret_cast<const ActBlock32*>(t.xq + (i0 + i) * t.ldxq);
    for (int h = 0; h < H; ++h) acc[h][i] = mins[h][i] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    for (int h = 0; h < H; ++h) {
      __m256i isum[M];
      F::template dots<M>(group + L::codes(b) + 32 * (h0 + h), x, b, isum);
      const uint8_t* sc = group + L::scales(b) + 16 * (h0 + h);
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
      for (int i = 0; i < M; ++i) {
        const ActBlock32& a = x[i][b];
        __m256i is = isum[i];
        if constexpr (F::kOff != 0) {
          is = _mm256_sub_epi32(is, _mm256_set1_epi32(F::kOff * sums[(i0 + i) * nb + b]));
        }
        acc[h][i] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(is),
                                    acc[h][i]);
        if constexpr (F::kMin) {
          const __m256 mw =
              _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + 32)));
          mins[h][i] = _mm256_fmadd_ps(mw, _mm256_set1_ps(a.ds), mins[h][i]);
        }
      }
    }
  }
  for (int h = 0; h < H; ++h) {
    const int64_t o0 = kRows * g + 8 * (h0 + h);
    const int64_t valid = std::min<int64_t>(8, t.n_out - o0);
    if (valid <= 0) return;
    for (int i = 0; i < M; ++i) {
      alignas(32) float v[8];
      _mm256_store_ps(v, F::kMin ? _mm256_add_ps(acc[h][i], mins[h][i]) : acc[h][i]);
      float* y = t.y + (i0 + i) * t.ldy + o0;
      for (int64_t r = 0; r < valid; ++r) y[r] = t.bias ? v[r] + t.bias[o0 + r] : v[r];
    }
  }
}

template <class F>
void run(const cpu::RepackedTask& t, int64_t g0, int64_t g1) {
  const int64_t nb = t.n_in / kQK;
  const int64_t group_bytes = repacked_group_bytes(t.type, t.n_in);
  thread_local std::vector<int32_t> sums;  // [m, nb]
  if constexpr (F::kOff != 0) legacy_block_sums(t, nb, sums);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* group = t.packed + g * group_bytes;
    int64_t i = 0;
    for (int h = 0; h < 2; ++h) {
      for (i = 0; i + kRowsPerPass <= t.m; i += kRowsPerPass) {
        pass<F, kRowsPerPass, 1>(t, group, nb, sums.data(), g, h, i);
      }
    }
    for (; i < t.m; ++i) pass<F, 1, 2>(t, group, nb, sums.data(), g, 0, i);
  }
}

}  // namespace

void legacy_block_sums(const cpu::RepackedTask& t, int64_t nb, std::vector<int32_t>& sums) {
  sums.resize(static_cast<size_t>(t.m * nb));
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t i = 0; i < t.m; ++i) {
    const auto* x = reinterpret_cast<const ActBlock32*>(t.xq + i * t.ldxq);
    for (int64_t b = 0; b < nb; ++b) {
      // sum(q) = sum(q ^ 0x80 as unsigned) - 128 * 32, the unsigned sums by vpsadbw.
      const __m256i u =
          _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].q)), flip);
      const __m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256());
      const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      sums[static_cast<size_t>(i * nb + b)] =
          static_cast<int32_t>(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 4096;
    }
  }
}

bool gemm_repacked_legacy(const cpu::RepackedTask& t, int64_t g0, int64_t g1) {
  switch (t.type) {
    case QuantType::q8_0:
      return run<Q8_0>(t, g0, g1), true;
    case QuantType::q4_0:
      return run<Q4_0>(t, g0, g1), true;
    case QuantType::q4_1:
      return run<Q4_1>(t, g0, g1), true;
    case QuantType::q5_0:
      return run<Q5_0>(t, g0, g1), true;
    case QuantType::q5_1:
      return run<Q5_1>(t, g0, g1), true;
    case QuantType::iq4_nl:
      return run<Iq4Nl>(t, g0, g1), true;
    default:
      return false;
  }
}

}  // namespace qkv::kernels::quant::avx2

QKV_TARGET_END

#else  // not x86

namespace qkv::kernels::quant::avx2 {
bool gemm_repacked_legacy(const cpu::RepackedTask&, int64_t, int64_t) {
  return false;
}
void legacy_block_sums(const cpu::RepackedTask&, int64_t, std::vector<int32_t>&) {}
}  // namespace qkv::kernels::quant::avx2

#endif
