// The AVX512-VNNI kernels of the interleaved K layouts (repack_k.cpp): one ZMM register is a step of
// 4 codes x 16 rows, met by 4 activation bytes broadcast to the 16 lanes (vpdpbusd), so a
// sub-block's sums of the 16 rows land in one register; its integer scales follow with one
// vpmulld, the mins / offsets with vpdpwssd against the activation's sums of 16, and the block's
// fp32 FMA covers the 16 rows. Tiles of up to 8 activation rows share each unpacked code register.
// No software prefetch for one row of x: the groups are one sequential stream, which the hardware
// prefetchers follow; prefetching 2-16 blocks ahead cost 5-30% of m = 1 throughput from DRAM on
// Zen 4 (Q4_K 2048 x 8192: 25.7-26.8 GB/s without, 18.4-18.8 with 2 blocks ahead). Tiles of more
// rows prefetch one block ahead (prefetch_next).
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

#if !defined(__clang__)
// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

QKV_TARGET_BEGIN("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")

namespace qkv::kernels::quant::avx512 {
namespace {

#define QKV_INLINE inline __attribute__((always_inline))

constexpr int64_t kQ4KBlock = 2368, kQ5KBlock = 2880, kQ6KBlock = 3392, kIq4XsBlock = 2240;

// The formats that share the 8-sub-block kernel.
enum class Sub8 { q4_k, q5_k, iq4_xs };
// Tiles of up to this many rows unpack both nibbles of a code line at once (2 R sum registers);
// 8-row tiles take one nibble at a time, reloading the line from L1, to stay within 32 registers
// (both at once with 8 rows: 157 against 174 GMAC/s, Q4_K 2048 x 2048, m = 64, Zen 4).
constexpr int kJointRows = 4;

QKV_INLINE __m512i load64(const void* p) {
  return _mm512_loadu_si512(p);
}
QKV_INLINE __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
// 4 activation bytes broadcast to the 16 lanes.
QKV_INLINE __m512i quad(const int8_t* q) {
  int32_t v;
  std::memcpy(&v, q, 4);
  return _mm512_set1_epi32(v);
}

// Tiles of several rows are compute-bound, and the hardware prefetchers, paced by their slow
// consumption, leave DRAM's latency exposed: from kMinRows rows on, a tile prefetches each line of
// the next block as it uses the same line of this one (from DRAM, 2048 x 5632, Zen 4: Q4_K m = 8
// 99 -> 158 G/s, m = 4 88 -> 124; Q6_K m = 8 64 -> 120, m = 4 52 -> 85, m = 2 18 -> 22 GB/s; Q4_K
// m = 2 lost 10%, so the 8-sub-block formats start at 4 rows; in L2 unchanged, 173; 2 or 4 blocks
// ahead no better). A single row is bandwidth-bound, and prefetching cost it 30%: none there.
template <int R, int kMinRows>
QKV_INLINE void prefetch_next(const uint8_t* line, int64_t block) {
  if constexpr (R >= kMinRows) {
    _mm_prefetch(reinterpret_cast<const char*>(line + block), _MM_HINT_T0);
  }
}

// Q5_K's fifth bits of step t, pair p, nibble e: bit 2p + e of the qh line moved to bit 4.
template <int E>
QKV_INLINE __m512i fifth(__m512i h, int p) {
  const int shift = 4 - 2 * p - E;
  const __m512i v = shift >= 0 ? _mm512_slli_epi16(h, static_cast<unsigned>(shift))
                               : _mm512_srli_epi16(h, static_cast<unsigned>(-shift));
  return _mm512_and_si512(v, _mm512_set1_epi8(0x10));
}

// R activation rows (ActBlock256 rows) against one group of Q4_K, Q5_K or IQ4_XS rows: acc[r]
// lane o = y[r, o]. IQ4_XS's grid values w go in as w + 128 (unsigned, <= 241, which vpdpbusd
// takes exactly), and 128 times the activation's sums of 32 come off the sub-block sums.
template <int R, Sub8 F>
QKV_INLINE void sub8_tile(const uint8_t* grp, int64_t nb, const ActBlock256* const* x,
                          __m512* acc) {
  constexpr bool Q5 = F == Sub8::q5_k, kIq4 = F == Sub8::iq4_xs;
  constexpr int64_t kBlock = Q5 ? kQ5KBlock : kIq4 ? kIq4XsBlock : kQ4KBlock;
  constexpr int64_t kCodes = kIq4 ? 192 : Q5 ? 832 : 320;  // Q5_K: its fifth bits first
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  uint8_t grid[16];
  for (int k = 0; k < 16; ++k) grid[k] = static_cast<uint8_t>(kIq4nlValues[k] + 128);
  const __m512i table =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(grid)));
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kBlock;
    for (int64_t l = 0; l < kCodes; l += 64) prefetch_next<R, 4>(blk + l, kBlock);
    __m512i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
    for (int p = 0; p < 4; ++p) {
      // Lane o: scale of sub-block 2p (low 16 bits) and 2p + 1 (high 16 bits), as int32.
      const __m512i sc = kIq4 ? _mm512_cvtepi8_epi16(load32(blk + 64 + 32 * p))
                              : _mm512_cvtepu8_epi16(load32(blk + 64 + 32 * p));
      const __m512i scale[2] = {_mm512_srai_epi32(_mm512_slli_epi32(sc, 16), 16),
                                _mm512_srai_epi32(sc, 16)};
      if constexpr (R <= kJointRows) {
        // Both nibbles of each line at once: 2 independent vpdpbusd chains per row (a lone row
        // splits them again by step parity: 4), so their latency overlaps.
        constexpr int kSplit = R == 1 ? 2 : 1;
        __m512i s[2][kSplit][R];
        for (auto& se : s) {
          for (auto& sk : se) {
            for (auto& v : sk) v = _mm512_setzero_si512();
          }
        }
        for (int t = 0; t < 8; ++t) {
          const uint8_t* line = blk + kCodes + 64 * (8 * p + t);
          prefetch_next<R, 4>(line, kBlock);
          if (Q5 && p == 0) prefetch_next<R, 4>(blk + 320 + 64 * t, kBlock);
          const __m512i raw = load64(line);
          __m512i w0 = _mm512_and_si512(raw, m4);
          __m512i w1 = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
          if constexpr (Q5) {
            const __m512i h = load64(blk + 320 + 64 * t);
            w0 = _mm512_or_si512(w0, fifth<0>(h, p));
            w1 = _mm512_or_si512(w1, fifth<1>(h, p));
          }
          if constexpr (kIq4) {
            w0 = _mm512_shuffle_epi8(table, w0);
            w1 = _mm512_shuffle_epi8(table, w1);
          }
          for (int r = 0; r < R; ++r) {
            const int8_t* q = x[r][b].q + 64 * p + 4 * t;
            s[0][t % kSplit][r] = _mm512_dpbusd_epi32(s[0][t % kSplit][r], w0, quad(q));
            s[1][t % kSplit][r] = _mm512_dpbusd_epi32(s[1][t % kSplit][r], w1, quad(q + 32));
          }
        }
        for (int e = 0; e < 2; ++e) {
          for (int r = 0; r < R; ++r) {
            const __m512i sum =
                kSplit == 2 ? _mm512_add_epi32(s[e][0][r], s[e][kSplit - 1][r]) : s[e][0][r];
            isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(sum, scale[e]));
          }
        }
      } else {
        // One nibble at a time (a line is loaded twice, from L1): 3 R registers of sums.
        for (int e = 0; e < 2; ++e) {
          __m512i s[R];
          for (int r = 0; r < R; ++r) s[r] = _mm512_setzero_si512();
          for (int t = 0; t < 8; ++t) {
            if (e == 0) {
              prefetch_next<R, 4>(blk + kCodes + 64 * (8 * p + t), kBlock);
              if (Q5 && p == 0) prefetch_next<R, 4>(blk + 320 + 64 * t, kBlock);
            }
            const __m512i raw = load64(blk + kCodes + 64 * (8 * p + t));
            __m512i w = _mm512_and_si512(e ? _mm512_srli_epi16(raw, 4) : raw, m4);
            if constexpr (Q5) {
              const __m512i h = load64(blk + 320 + 64 * t);
              w = _mm512_or_si512(w, e ? fifth<1>(h, p) : fifth<0>(h, p));
            }
            if constexpr (kIq4) w = _mm512_shuffle_epi8(table, w);
            for (int r = 0; r < R; ++r) {
              s[r] = _mm512_dpbusd_epi32(s[r], w, quad(x[r][b].q + 64 * p + 32 * e + 4 * t));
            }
          }
          for (int r = 0; r < R; ++r) {
            isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(s[r], scale[e]));
          }
        }
      }
    }
    if constexpr (kIq4) {
      const __m512 dw = _mm512_loadu_ps(blk);
      for (int r = 0; r < R; ++r) {
        const ActBlock256& a = x[r][b];
        const __m256i s32 = _mm256_madd_epi16(load32(a.bsums), _mm256_set1_epi16(1));
        const __m512i pairs = _mm512_castsi256_si512(_mm256_packs_epi32(s32, s32));
        __m512i off = _mm512_setzero_si512();
        constexpr int kDword[4] = {0, 1, 4, 5};
        for (int q = 0; q < 4; ++q) {
          off = _mm512_dpwssd_epi32(off, _mm512_cvtepi8_epi16(load32(blk + 64 + 32 * q)),
                                    _mm512_permutexvar_epi32(_mm512_set1_epi32(kDword[q]), pairs));
        }
        const __m512i total = _mm512_sub_epi32(isum[r], _mm512_slli_epi32(off, 7));
        acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a.d)), _mm512_cvtepi32_ps(total),
                                 acc[r]);
      }
      continue;
    }
    // The mins: lane o holds (mn_2q, mn_2q+1) as int16, against the activation's sums of 32.
    __m512i mn[4];
    for (int q = 0; q < 4; ++q) mn[q] = _mm512_cvtepu8_epi16(load32(blk + 192 + 32 * q));
    const __m512 dw = _mm512_cvtph_ps(load32(blk)), dm = _mm512_cvtph_ps(load32(blk + 32));
    for (int r = 0; r < R; ++r) {
      const ActBlock256& a = x[r][b];
      // Sums of 32 (int16: |.| <= 32 * 127): dwords 0, 1 of each 128-bit lane are sub-blocks
      // (0, 1), (2, 3) | (4, 5), (6, 7).
      const __m256i s32 = _mm256_madd_epi16(load32(a.bsums), _mm256_set1_epi16(1));
      const __m512i pairs = _mm512_castsi256_si512(_mm256_packs_epi32(s32, s32));
      __m512i msum = _mm512_setzero_si512();
      constexpr int kDword[4] = {0, 1, 4, 5};
      for (int q = 0; q < 4; ++q) {
        msum = _mm512_dpwssd_epi32(msum, mn[q],
                                   _mm512_permutexvar_epi32(_mm512_set1_epi32(kDword[q]), pairs));
      }
      const __m512 da = _mm512_set1_ps(a.d);
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(isum[r]), acc[r]);
      acc[r] = _mm512_fnmadd_ps(_mm512_mul_ps(dm, da), _mm512_cvtepi32_ps(msum), acc[r]);
    }
  }
}

// R activation rows against one group of Q6_K rows.
template <int R>
QKV_INLINE void q6k_tile(const uint8_t* grp, int64_t nb, const ActBlock256* const* x, __m512* acc) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = grp + b * kQ6KBlock;
    for (int64_t l = 0; l < 320; l += 64) prefetch_next<R, 2>(blk + l, kQ6KBlock);
    __m512i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
    for (int j = 0; j < 16; ++j) {
      const uint8_t* sub = blk + 320 + 192 * j;
      for (int l = 0; l < 192; l += 64) prefetch_next<R, 2>(sub + l, kQ6KBlock);
      const __m512i lo0 = load64(sub), lo1 = load64(sub + 64), hi = load64(sub + 128);
      // The 4 steps' codes 0..63: low nibbles, and the 2-bit fields of hi moved to bits 4, 5.
      const __m512i u0 = _mm512_or_si512(_mm512_and_si512(lo0, m4),
                                         _mm512_and_si512(_mm512_slli_epi16(hi, 4), m30));
      const __m512i u1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lo0, 4), m4),
                                         _mm512_and_si512(_mm512_slli_epi16(hi, 2), m30));
      const __m512i u2 = _mm512_or_si512(_mm512_and_si512(lo1, m4), _mm512_and_si512(hi, m30));
      const __m512i u3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lo1, 4), m4),
                                         _mm512_and_si512(_mm512_srli_epi16(hi, 2), m30));
      // Lane o: the signed scale of sub-block j as int32.
      const __m512i sc2 = _mm512_cvtepi8_epi16(load32(blk + 64 + 32 * (j / 2)));
      const __m512i scale =
          j % 2 ? _mm512_srai_epi32(sc2, 16) : _mm512_srai_epi32(_mm512_slli_epi32(sc2, 16), 16);
      for (int r = 0; r < R; ++r) {
        const int8_t* q = x[r][b].q + 16 * j;
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u0, quad(q));
        s = _mm512_dpbusd_epi32(s, u1, quad(q + 4));
        s = _mm512_dpbusd_epi32(s, u2, quad(q + 8));
        s = _mm512_dpbusd_epi32(s, u3, quad(q + 12));
        const __m512i term = _mm512_mullo_epi32(s, scale);
        isum[r] = _mm512_add_epi32(isum[r], term);
      }
    }
    const __m512 dw = _mm512_loadu_ps(blk);
    for (int r = 0; r < R; ++r) {
      const ActBlock256& a = x[r][b];
      // The offset 32 sum_j sc_j bsums[j]: lane o holds (sc_2q, sc_2q+1) as int16.
      __m512i off = _mm512_setzero_si512();
      for (int q = 0; q < 8; ++q) {
        int32_t pair;
        std::memcpy(&pair, a.bsums + 2 * q, 4);
        off = _mm512_dpwssd_epi32(off, _mm512_cvtepi8_epi16(load32(blk + 64 + 32 * q)),
                                  _mm512_set1_epi32(pair));
      }
      const __m512i total = _mm512_sub_epi32(isum[r], _mm512_slli_epi32(off, 5));
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a.d)), _mm512_cvtepi32_ps(total),
                               acc[r]);
    }
  }
}

// Rows [i0, i0 + R) of x against groups [g0, g1): y = acc (+ bias), lanes past n_out not stored.
template <int R>
void tile_rows(QuantType t, const uint8_t* packed, int64_t n_out, int64_t nb, const uint8_t* xq,
               int64_t ldxq, int64_t i0, int64_t g0, int64_t g1, float* y, int64_t ldy,
               const float* bias) {
  const ActBlock256* x[R];
  for (int r = 0; r < R; ++r) x[r] = reinterpret_cast<const ActBlock256*>(xq + (i0 + r) * ldxq);
  const int64_t block = k_group_bytes(t, kQKK);
  for (int64_t g = g0; g < g1; ++g) {
    __m512 acc[R];
    const uint8_t* grp = packed + g * nb * block;
    if (t == QuantType::q4_k) {
      sub8_tile<R, Sub8::q4_k>(grp, nb, x, acc);
    } else if (t == QuantType::q5_k) {
      sub8_tile<R, Sub8::q5_k>(grp, nb, x, acc);
    } else if (t == QuantType::iq4_xs) {
      sub8_tile<R, Sub8::iq4_xs>(grp, nb, x, acc);
    } else {
      q6k_tile<R>(packed + g * nb * block, nb, x, acc);
    }
    const int64_t o0 = g * kRepackRows;
    const __mmask16 keep =
        static_cast<__mmask16>((1u << std::min<int64_t>(kRepackRows, n_out - o0)) - 1);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(keep, bias + o0) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      _mm512_mask_storeu_ps(y + (i0 + r) * ldy + o0, keep,
                            bias ? _mm512_add_ps(acc[r], bv) : acc[r]);
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
  if (!core::cpu_features().avx512_vnni || !k_group_bytes(t, kQKK)) return false;
  const int64_t nb = n_in / kQKK;
  // Chunks of groups whose codes stay in L2 while every tile of rows of x passes over them.
  constexpr int64_t kChunkBytes = 128 * 1024;
  const int64_t group_bytes = nb * k_group_bytes(t, kQKK);
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / group_bytes);
  for (int64_t c0 = g0; c0 < g1; c0 += chunk) {
    const int64_t c1 = std::min(g1, c0 + chunk);
    int64_t i = 0;
    for (; i + 8 <= m; i += 8)
      tile_rows<8>(t, packed, n_out, nb, xq, ldxq, i, c0, c1, y, ldy, bias);
    for (; i + 4 <= m; i += 4)
      tile_rows<4>(t, packed, n_out, nb, xq, ldxq, i, c0, c1, y, ldy, bias);
    for (; i + 2 <= m; i += 2)
      tile_rows<2>(t, packed, n_out, nb, xq, ldxq, i, c0, c1, y, ldy, bias);
    for (; i < m; ++i) tile_rows<1>(t, packed, n_out, nb, xq, ldxq, i, c0, c1, y, ldy, bias);
  }
  return true;
}

}  // namespace qkv::kernels::quant::avx512

QKV_TARGET_END

#else  // not x86

namespace qkv::kernels::quant::avx512 {
bool gemm_repacked_k(const cpu::RepackedTask&, int64_t, int64_t) {
  return false;
}
}  // namespace qkv::kernels::quant::avx512

#endif
