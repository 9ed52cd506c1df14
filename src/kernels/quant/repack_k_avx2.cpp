// The AVX2 kernels of the interleaved K layouts (repack_k.cpp), for CPUs without AVX512-VNNI: each
// group's 16 rows as two halves of 8 lanes (a YMM register is a step of 4 codes x 8 rows).
// vpmaddubsw makes int16 pairs of code x activation byte; a Q4_K sub-block's 8 steps add up in
// int16 (|.| <= 8 * 2 * 15 * 127 = 30480) and vpmaddwd applies the scale (sc, sc) to both halves
// of each lane at once; Q6_K's pairs (<= 2 * 63 * 127) add two steps at a time. The integer sums
// are those of the scalar twin, exactly, and the float steps the same: bitwise equal results.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/cpu_features.h"
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

constexpr int64_t kQ4KBlock = 2368, kQ5KBlock = 2880, kQ6KBlock = 3392, kIq4XsBlock = 2240;

QKV_INLINE __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
QKV_INLINE __m128i load16(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
QKV_INLINE __m256i quad(const int8_t* q) {
  int32_t v;
  std::memcpy(&v, q, 4);
  return _mm256_set1_epi32(v);
}
// Each lane's low (high) int16 copied to both of its halves.
QKV_INLINE __m256i low_pair(__m256i v) {
  return _mm256_shuffle_epi8(
      v, _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4,
                          5, 8, 9, 8, 9, 12, 13, 12, 13));
}
QKV_INLINE __m256i high_pair(__m256i v) {
  return _mm256_shuffle_epi8(
      v, _mm256_setr_epi8(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15, 2, 3, 2, 3, 6, 7,
                          6, 7, 10, 11, 10, 11, 14, 15, 14, 15));
}

// Q5_K's fifth bits of pair p, nibble e: bit 2p + e of the qh line moved to bit 4.
QKV_INLINE __m256i fifth(__m256i h, int p, int e) {
  const int shift = 4 - 2 * p - e;
  const __m256i v = shift >= 0 ? _mm256_slli_epi16(h, shift) : _mm256_srli_epi16(h, -shift);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

// R activation rows against NH halves of 8 rows, from half h0, of one group of Q4_K (Q5: Q5_K)
// rows; acc[h * R + r]. Q5_K's codes (<= 31) add up 4 steps in int16 (4 * 2 * 31 * 127 = 31496),
// so its sub-blocks take two vpmaddwd.
template <int R, bool Q5, int NH>
QKV_INLINE void q45k_half(const uint8_t* grp, int64_t nb, int h0, const ActBlock256* const* x,
                          __m256* acc) {
  constexpr int64_t kBlock = Q5 ? kQ5KBlock : kQ4KBlock;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int r = 0; r < NH * R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kBlock;
    for (int h = h0; h < h0 + NH; ++h) {
      __m256* ah = acc + (h - h0) * R;
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
      for (int p = 0; p < 4; ++p) {
        const __m256i sc = _mm256_cvtepu8_epi16(load16(blk + 64 + 32 * p + 16 * h));
        for (int e = 0; e < 2; ++e) {
          const __m256i scale = e ? high_pair(sc) : low_pair(sc);
          constexpr int kSteps = Q5 ? 4 : 8;  // steps summed in int16
          for (int t0 = 0; t0 < 8; t0 += kSteps) {
            __m256i s[R];
            for (int r = 0; r < R; ++r) s[r] = _mm256_setzero_si256();
            for (int t = t0; t < t0 + kSteps; ++t) {
              const __m256i raw = load32(blk + (Q5 ? 832 : 320) + 64 * (8 * p + t) + 32 * h);
              __m256i w = _mm256_and_si256(e ? _mm256_srli_epi16(raw, 4) : raw, m4);
              if constexpr (Q5)
                w = _mm256_or_si256(w, fifth(load32(blk + 320 + 64 * t + 32 * h), p, e));
              for (int r = 0; r < R; ++r) {
                s[r] = _mm256_add_epi16(
                    s[r], _mm256_maddubs_epi16(w, quad(x[r][b].q + 64 * p + 32 * e + 4 * t)));
              }
            }
            for (int r = 0; r < R; ++r) {
              isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(s[r], scale));
            }
          }
        }
      }
      __m256i mn[4];
      for (int q = 0; q < 4; ++q) mn[q] = _mm256_cvtepu8_epi16(load16(blk + 192 + 32 * q + 16 * h));
      const __m256 dw = _mm256_cvtph_ps(load16(blk + 16 * h));
      const __m256 dm = _mm256_cvtph_ps(load16(blk + 32 + 16 * h));
      for (int r = 0; r < R; ++r) {
        const ActBlock256& a = x[r][b];
        const __m256i s32 = _mm256_madd_epi16(load32(a.bsums), _mm256_set1_epi16(1));
        const __m256i pairs = _mm256_packs_epi32(s32, s32);  // dwords 0, 1 | 4, 5: sums of 32
        __m256i msum = _mm256_setzero_si256();
        constexpr int kDword[4] = {0, 1, 4, 5};
        for (int q = 0; q < 4; ++q) {
          msum = _mm256_add_epi32(
              msum, _mm256_madd_epi16(
                        mn[q], _mm256_permutevar8x32_epi32(pairs, _mm256_set1_epi32(kDword[q]))));
        }
        const __m256 da = _mm256_set1_ps(a.d);
        ah[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(isum[r]), ah[r]);
        ah[r] = _mm256_fnmadd_ps(_mm256_mul_ps(dm, da), _mm256_cvtepi32_ps(msum), ah[r]);
      }
    }
  }
}

// R activation rows against NH halves of 8 rows, from half h0, of one group of Q6_K rows.
template <int R, int NH>
QKV_INLINE void q6k_half(const uint8_t* grp, int64_t nb, int h0, const ActBlock256* const* x,
                         __m256* acc) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  for (int r = 0; r < NH * R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kQ6KBlock;
    for (int h = h0; h < h0 + NH; ++h) {
      __m256* ah = acc + (h - h0) * R;
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
      for (int j = 0; j < 16; ++j) {
        const uint8_t* sub = blk + 320 + 192 * j + 32 * h;
        const __m256i lo0 = load32(sub), lo1 = load32(sub + 64), hi = load32(sub + 128);
        const __m256i u0 = _mm256_or_si256(_mm256_and_si256(lo0, m4),
                                           _mm256_and_si256(_mm256_slli_epi16(hi, 4), m30));
        const __m256i u1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo0, 4), m4),
                                           _mm256_and_si256(_mm256_slli_epi16(hi, 2), m30));
        const __m256i u2 = _mm256_or_si256(_mm256_and_si256(lo1, m4), _mm256_and_si256(hi, m30));
        const __m256i u3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo1, 4), m4),
                                           _mm256_and_si256(_mm256_srli_epi16(hi, 2), m30));
        const __m256i sc2 = _mm256_cvtepi8_epi16(load16(blk + 64 + 32 * (j / 2) + 16 * h));
        const __m256i scale = j % 2 ? high_pair(sc2) : low_pair(sc2);
        for (int r = 0; r < R; ++r) {
          const int8_t* q = x[r][b].q + 16 * j;
          const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(u0, quad(q)),
                                               _mm256_maddubs_epi16(u1, quad(q + 4)));
          const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(u2, quad(q + 8)),
                                               _mm256_maddubs_epi16(u3, quad(q + 12)));
          const __m256i term =
              _mm256_add_epi32(_mm256_madd_epi16(p01, scale), _mm256_madd_epi16(p23, scale));
          isum[r] = _mm256_add_epi32(isum[r], term);
        }
      }
      const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(blk) + 8 * h);
      for (int r = 0; r < R; ++r) {
        const ActBlock256& a = x[r][b];
        __m256i off = _mm256_setzero_si256();
        for (int q = 0; q < 8; ++q) {
          int32_t pair;
          std::memcpy(&pair, a.bsums + 2 * q, 4);
          off = _mm256_add_epi32(
              off, _mm256_madd_epi16(_mm256_cvtepi8_epi16(load16(blk + 64 + 32 * q + 16 * h)),
                                     _mm256_set1_epi32(pair)));
        }
        const __m256i total = _mm256_sub_epi32(isum[r], _mm256_slli_epi32(off, 5));
        ah[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(total),
                                ah[r]);
      }
    }
  }
}

// R activation rows against NH halves of 8 rows, from half h0, of one group of IQ4_XS rows: the
// grid values w (|w| <= 127) through the sign trick, |w| x (q with the sign of w), one vpmaddwd
// per step.
template <int R, int NH>
QKV_INLINE void iq4xs_half(const uint8_t* grp, int64_t nb, int h0, const ActBlock256* const* x,
                           __m256* acc) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i table =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
  for (int r = 0; r < NH * R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kIq4XsBlock;
    for (int h = h0; h < h0 + NH; ++h) {
      __m256* ah = acc + (h - h0) * R;
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
      for (int p = 0; p < 4; ++p) {
        const __m256i sc = _mm256_cvtepi8_epi16(load16(blk + 64 + 32 * p + 16 * h));
        for (int e = 0; e < 2; ++e) {
          const __m256i scale = e ? high_pair(sc) : low_pair(sc);
          for (int t = 0; t < 8; ++t) {
            const __m256i raw = load32(blk + 192 + 64 * (8 * p + t) + 32 * h);
            const __m256i w = _mm256_shuffle_epi8(
                table, _mm256_and_si256(e ? _mm256_srli_epi16(raw, 4) : raw, m4));
            const __m256i u = _mm256_abs_epi8(w);
            for (int r = 0; r < R; ++r) {
              const __m256i q = _mm256_sign_epi8(quad(x[r][b].q + 64 * p + 32 * e + 4 * t), w);
              isum[r] =
                  _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), scale));
            }
          }
        }
      }
      const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(blk) + 8 * h);
      for (int r = 0; r < R; ++r) {
        ah[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[r][b].d)),
                                _mm256_cvtepi32_ps(isum[r]), ah[r]);
      }
    }
  }
}

template <int R>
void tile_rows(QuantType t, const uint8_t* packed, int64_t n_out, int64_t nb, const uint8_t* xq,
               int64_t ldxq, int64_t i0, int64_t g0, int64_t g1, float* y, int64_t ldy,
               const float* bias) {
  const ActBlock256* x[R];
  for (int r = 0; r < R; ++r) x[r] = reinterpret_cast<const ActBlock256*>(xq + (i0 + r) * ldxq);
  const int64_t block = k_group_bytes(t, kQKK);
  // One or two rows of x take both 8-row halves of a block before the next block, so that a group
  // is read as one stream (two passes of a half each broke it: 0.78-0.81x of the row kernels at
  // m = 1 from DRAM, Q4_K and Q6_K on Zen 4); more rows take a half at a time (16 registers).
  constexpr int kHalves = R <= 2 ? 2 : 1;
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* grp = packed + g * nb * block;
    for (int h0 = 0; h0 < 2; h0 += kHalves) {
      if (g * kRepackRows + 8 * h0 >= n_out) break;
      __m256 acc[kHalves * R];
      if (t == QuantType::q4_k) {
        q45k_half<R, false, kHalves>(grp, nb, h0, x, acc);
      } else if (t == QuantType::q5_k) {
        q45k_half<R, true, kHalves>(grp, nb, h0, x, acc);
      } else if (t == QuantType::iq4_xs) {
        iq4xs_half<R, kHalves>(grp, nb, h0, x, acc);
      } else {
        q6k_half<R, kHalves>(grp, nb, h0, x, acc);
      }
      for (int hh = 0; hh < kHalves; ++hh) {
        const int64_t o0 = g * kRepackRows + 8 * (h0 + hh);
        const int64_t n = std::min<int64_t>(8, n_out - o0);
        for (int r = 0; r < R; ++r) {
          float v[8];
          _mm256_storeu_ps(v, acc[hh * R + r]);
          float* dst = y + (i0 + r) * ldy + o0;
          for (int64_t o = 0; o < n; ++o) dst[o] = bias ? v[o] + bias[o0 + o] : v[o];
        }
      }
    }
  }
}

}  // namespace

bool gemm_repacked_k(const cpu::RepackedTask& task, int64_t g0, int64_t g1) {
  const QuantType t = task.type;
  const uint8_t *packed = task.packed, *xq = task.xq;
  const int64_t n_out = task.n_out, n_in = task.n_in, ldxq = task.ldxq, m = task.m, ldy = task.ldy;
  float* y = task.y;
  const float* bias = task.bias;
  if (!core::cpu_features().has_avx2_target() || !k_group_bytes(t, kQKK)) return false;
  const int64_t nb = n_in / kQKK;
  constexpr int64_t kChunkBytes = 128 * 1024;
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / (nb * k_group_bytes(t, kQKK)));
  for (int64_t c0 = g0; c0 < g1; c0 += chunk) {
    const int64_t c1 = std::min(g1, c0 + chunk);
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
      tile_rows<4>(t, packed, n_out, nb, xq, ldxq, i, c0, c1, y, ldy, bias);
    for (; i + 2 <= m; i += 2)
      tile_rows<2>(t, packed, n_out, nb, xq, ldxq, i, c0, c1, y, ldy, bias);
    for (; i < m; ++i) tile_rows<1>(t, packed, n_out, nb, xq, ldxq, i, c0, c1, y, ldy, bias);
  }
  return true;
}

}  // namespace qkv::kernels::quant::avx2

QKV_TARGET_END

#else  // not x86

namespace qkv::kernels::quant::avx2 {
bool gemm_repacked_k(const cpu::RepackedTask&, int64_t, int64_t) {
  return false;
}
}  // namespace qkv::kernels::quant::avx2

#endif
