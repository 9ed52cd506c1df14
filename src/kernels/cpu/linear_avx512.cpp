// The AVX-512 target of the linear kernels (Skylake-SP, Zen 4 and later): the matrix-vector
// products for f32/f16/bf16 weights here, those of the block formats in quant/gemv_avx512.cpp
// (Q2_K and Q3_K, which have no AVX-512 decoder, and the weight conversion of the GEMM path use
// the AVX2 target's code, which every AVX-512 CPU runs).
//
// Tiles: 2 rows of x share each widened weight vector, with 4 chains of 16 fp32 FMAs per row
// (kFloatRows below says why not 4). A row's chains and their order depend only on n_in, so the
// result of a row is the same whatever the number of rows in the call (batch invariance,
// docs/SERVER.md).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/linear_target.h"
#include "kernels/cpu/targets.h"
#include "kernels/quant/gemv.h"
#include "kernels/quant/repack.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#if !defined(__clang__)
// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

QKV_TARGET_BEGIN(QKV_TARGET_AVX512)

namespace qkv::kernels::cpu::avx512 {
namespace {

constexpr int kChains = 4;
template <WeightType T>
constexpr int64_t kElemBytes = T == WeightType::f32 ? 4 : 2;

// 16 weights of a row from element k, widened to fp32; the masked form reads only the lanes of
// `m` (the row's tail) and gives 0 in the others.
template <WeightType T>
inline __attribute__((always_inline)) __m512 load16(const uint8_t* row, int64_t k,
                                                    __mmask16 m = 0xFFFF) {
  const uint8_t* p = row + kElemBytes<T> * k;
  if constexpr (T == WeightType::f32) {
    return _mm512_maskz_loadu_ps(m, p);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if constexpr (T == WeightType::f16) {
      return _mm512_cvtph_ps(h);
    } else {  // bf16: the high half of an fp32
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

// R weight rows from o against M rows of x, kChains chains of 16 lanes per (weight row, row of x).
template <WeightType T, int M, int R>
void gemv_rows_r(const GemvTask& t, int64_t o) {
  constexpr int64_t step = 16 * kChains;
  const int64_t n = t.n_in;
  const float* x[M];
  for (int i = 0; i < M; ++i) x[i] = t.x + i * t.ldx;
  const uint8_t* row[R];
  for (int r = 0; r < R; ++r) row[r] = t.w + (o + r) * t.w_stride;
  __m512 acc[R][M][kChains];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i)
      for (int c = 0; c < kChains; ++c) acc[r][i][c] = _mm512_setzero_ps();
  int64_t k = 0;
  // No software prefetch: 1 KiB ahead (as the AVX2 target) cost f16 a fifth of its speed
  // (Zen 5, 1 thread, DRAM: 15 GB/s with, 19 without, AVX2 kernel 19-20 in the same run).
  for (; k + step <= n; k += step) {
    for (int c = 0; c < kChains; ++c) {
      __m512 w[R];
      for (int r = 0; r < R; ++r) w[r] = load16<T>(row[r], k + 16 * c);
      for (int i = 0; i < M; ++i) {
        const __m512 xv = _mm512_loadu_ps(x[i] + k + 16 * c);
        for (int r = 0; r < R; ++r) acc[r][i][c] = _mm512_fmadd_ps(w[r], xv, acc[r][i][c]);
      }
    }
  }
  for (; k + 16 <= n; k += 16) {
    for (int r = 0; r < R; ++r) {
      const __m512 w = load16<T>(row[r], k);
      for (int i = 0; i < M; ++i)
        acc[r][i][0] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x[i] + k), acc[r][i][0]);
    }
  }
  if (k < n) {
    const auto m = static_cast<__mmask16>((1u << (n - k)) - 1);
    for (int r = 0; r < R; ++r) {
      const __m512 w = load16<T>(row[r], k, m);
      for (int i = 0; i < M; ++i)
        acc[r][i][0] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, x[i] + k), acc[r][i][0]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float bias = t.bias ? t.bias[o + r] : 0.0f;
    for (int i = 0; i < M; ++i) {
      const __m512 s = _mm512_add_ps(_mm512_add_ps(acc[r][i][0], acc[r][i][1]),
                                     _mm512_add_ps(acc[r][i][2], acc[r][i][3]));
      t.y[i * t.ldy + o + r] = _mm512_reduce_add_ps(s) + bias;
    }
  }
}

// Weight rows per pass at m = 1 when one row of x does not fit in half of L1 (n_in > 4096 floats:
// the FFN down projection). One weight row per pass then reloads all of x from L2 for every row;
// four share each load of x. Measured (qkv_linear_bench, f16 8192 x 2048 on huge pages, Zen 4, one
// thread, GB/s of weights): one row 8.8-11.1, two 15.9, four 18.0-20.0. Shorter rows stay one per
// pass (2048 x 8192: one 27.4, two 14.2, four 17.1): there the extra streams of weights cost more
// than the reloads of x, which come from L1. (Rows of 16 taken in segments of 2048 or 4096 values,
// so that x's segment stays in L1, gave 9.6-11.5: the weights are then no longer read in order.)
// R changes no row's arithmetic.
constexpr int64_t kLongRowFloats = 4096;
constexpr int kLongRowsPerPass = 4;

template <WeightType T, int M>
void gemv_rows(const GemvTask& t, int64_t o0, int64_t o1) {
  int64_t o = o0;
  if constexpr (M == 1) {
    if (t.n_in > kLongRowFloats) {
      for (; o + kLongRowsPerPass <= o1; o += kLongRowsPerPass)
        gemv_rows_r<T, 1, kLongRowsPerPass>(t, o);
    }
  }
  for (; o < o1; ++o) gemv_rows_r<T, M, 1>(t, o);
}

// Rows of x per pass. Four (16 accumulators, each widened weight used 4 times) measured slower
// than two passes of two over the L1/L2-resident weights: f16, 2048 x 5632, one thread of a loaded
// Zen 5, G (weight x row)/s: 12.9 vs 18.0 at m = 4, 16.2 vs 21.5 at m = 8 (one row per pass:
// 15.5, 18.4). The block formats, whose decoding costs more than an FMA, keep 4 rows per pass.
constexpr int64_t kFloatRows = 2;

template <WeightType T>
void gemv_type(const GemvTask& t, int64_t o0, int64_t o1) {
  GemvTask part = t;
  for (int64_t i = 0; i < t.m; i += kFloatRows) {
    part.x = t.x + i * t.ldx;
    part.y = t.y + i * t.ldy;
    if (t.m - i >= 2) {
      gemv_rows<T, 2>(part, o0, o1);
    } else {
      gemv_rows<T, 1>(part, o0, o1);
    }
  }
}

void gemv(const GemvTask& t, int64_t o0, int64_t o1) {
  switch (t.type) {
    case WeightType::f32:
      return gemv_type<WeightType::f32>(t, o0, o1);
    case WeightType::f16:
      return gemv_type<WeightType::f16>(t, o0, o1);
    case WeightType::bf16:
      return gemv_type<WeightType::bf16>(t, o0, o1);
    default:
      if (!quant::avx512::gemv(*weight_quant_type(t.type), t, o0, o1)) {
        linear_target_avx2().gemv(t, o0, o1);
      }
      return;
  }
}

// Column k of an interleaved group (32-byte aligned), widened to fp32.
template <WeightType T>
inline __attribute__((always_inline)) __m512 load_column(const uint8_t* p) {
  const __m256i h = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (T == WeightType::f16) {
    return _mm512_cvtph_ps(h);
  } else {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// f16/bf16 interleaved (linear_target.h): column k of 16 rows is one vector, times x[k]
// broadcast; four chains (k mod 4) per row of x, up to 4 rows of x per pass (16 accumulators),
// the group re-read from L1/L2 by later passes.
template <WeightType T, int M>
void gemv_interleaved_rows(const InterleavedTask& t, const uint8_t* grp, int64_t i0, int64_t g) {
  const int64_t n = t.n_in;
  const float* x[M];
  for (int i = 0; i < M; ++i) x[i] = t.x + (i0 + i) * t.ldx;
  __m512 acc[M][4];
  for (int i = 0; i < M; ++i)
    for (int c = 0; c < 4; ++c) acc[i][c] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    for (int c = 0; c < 4; ++c) {
      const __m512 w = load_column<T>(grp + (k + c) * 32);
      for (int i = 0; i < M; ++i)
        acc[i][c] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[i][k + c]), acc[i][c]);
    }
  }
  for (; k < n; ++k) {
    const __m512 w = load_column<T>(grp + k * 32);
    for (int i = 0; i < M; ++i)
      acc[i][k % 4] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[i][k]), acc[i][k % 4]);
  }
  const int64_t rows = std::min(kInterleaveRows, t.n_out - g * kInterleaveRows);
  const auto mask = static_cast<__mmask16>((1u << rows) - 1);
  const __m512 b =
      t.bias ? _mm512_maskz_loadu_ps(mask, t.bias + g * kInterleaveRows) : _mm512_setzero_ps();
  for (int i = 0; i < M; ++i) {
    const __m512 s =
        _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_add_ps(acc[i][2], acc[i][3]));
    _mm512_mask_storeu_ps(t.y + (i0 + i) * t.ldy + g * kInterleaveRows, mask, _mm512_add_ps(s, b));
  }
}

template <WeightType T>
void gemv_interleaved_type(const InterleavedTask& t, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* grp = t.packed + g * kInterleaveRows * t.n_in * 2;
    int64_t i = 0;
    for (; i + 4 <= t.m; i += 4) gemv_interleaved_rows<T, 4>(t, grp, i, g);
    for (; i + 2 <= t.m; i += 2) gemv_interleaved_rows<T, 2>(t, grp, i, g);
    for (; i < t.m; ++i) gemv_interleaved_rows<T, 1>(t, grp, i, g);
  }
}

void gemv_interleaved(const InterleavedTask& t, int64_t g0, int64_t g1) {
  if (t.type == WeightType::f16) return gemv_interleaved_type<WeightType::f16>(t, g0, g1);
  return gemv_interleaved_type<WeightType::bf16>(t, g0, g1);
}

template <WeightType T>
void interleaved_to_f32_type(const uint8_t* packed, int64_t n_in, int64_t g0, int64_t g1,
                             int64_t k0, int64_t k1, float* out, int64_t ld_out) {
  for (int64_t k = k0; k < k1; ++k) {
    float* dst = out + (k - k0) * ld_out;
    for (int64_t g = g0; g < g1; ++g) {
      _mm512_storeu_ps(dst + (g - g0) * kInterleaveRows,
                       load16<T>(packed + ((g * n_in + k) * kInterleaveRows) * 2, 0));
    }
  }
}

void interleaved_to_f32(WeightType type, const uint8_t* packed, int64_t n_in, int64_t g0,
                        int64_t g1, int64_t k0, int64_t k1, float* out, int64_t ld_out) {
  if (type == WeightType::f16) {
    return interleaved_to_f32_type<WeightType::f16>(packed, n_in, g0, g1, k0, k1, out, ld_out);
  }
  interleaved_to_f32_type<WeightType::bf16>(packed, n_in, g0, g1, k0, k1, out, ld_out);
}

// The int8 mode: AVX512-VNNI where the CPU has it, else the AVX2 kernels.
void gemv_int8(const GemvInt8Task& t, int64_t o0, int64_t o1) {
  if (!quant::avx512::gemv_int8(t, o0, o1)) quant::avx2::gemv_int8(t, o0, o1);
}

// Interleaved weights: AVX512-VNNI where the CPU has it, else the AVX2 target's.
void gemm_repacked(const RepackedTask& t, int64_t g0, int64_t g1) {
  if (!quant::avx512::gemm_repacked(t, g0, g1)) linear_target_avx2().gemm_repacked(t, g0, g1);
}

}  // namespace
}  // namespace qkv::kernels::cpu::avx512

QKV_TARGET_END

namespace qkv::kernels::cpu {
const LinearTargetOps& linear_target_avx512() {
  static const LinearTargetOps ops{.name = "avx512",
                                   .gemv = avx512::gemv,
                                   .gemv_int8 = avx512::gemv_int8,
                                   .gemm_repacked = avx512::gemm_repacked,
                                   .to_f32 = linear_target_avx2().to_f32,
                                   .gemv_interleaved = avx512::gemv_interleaved,
                                   .interleaved_to_f32 = avx512::interleaved_to_f32};
  return ops;
}
}  // namespace qkv::kernels::cpu

#else  // not x86

namespace qkv::kernels::cpu {
const LinearTargetOps& linear_target_avx512() {
  return linear_target_generic();
}
}  // namespace qkv::kernels::cpu

#endif
