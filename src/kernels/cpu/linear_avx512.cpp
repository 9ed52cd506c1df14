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

template <WeightType T, int M>
void gemv_rows(const GemvTask& t, int64_t o0, int64_t o1) {
  constexpr int64_t step = 16 * kChains;
  const int64_t n = t.n_in;
  const float* x[M];
  for (int i = 0; i < M; ++i) x[i] = t.x + i * t.ldx;
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* row = t.w + o * t.w_stride;
    __m512 acc[M][kChains];
    for (int i = 0; i < M; ++i)
      for (int c = 0; c < kChains; ++c) acc[i][c] = _mm512_setzero_ps();
    int64_t k = 0;
    // No software prefetch: 1 KiB ahead (as the AVX2 target) cost f16 a fifth of its speed
    // (Zen 5, 1 thread, DRAM: 15 GB/s with, 19 without, AVX2 kernel 19-20 in the same run).
    for (; k + step <= n; k += step) {
      for (int c = 0; c < kChains; ++c) {
        const __m512 w = load16<T>(row, k + 16 * c);
        for (int i = 0; i < M; ++i)
          acc[i][c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x[i] + k + 16 * c), acc[i][c]);
      }
    }
    // The tail: whole vectors, then the last n % 16 lanes (masked loads of w and x), on chain 0.
    for (; k + 16 <= n; k += 16) {
      const __m512 w = load16<T>(row, k);
      for (int i = 0; i < M; ++i)
        acc[i][0] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x[i] + k), acc[i][0]);
    }
    if (k < n) {
      const auto m = static_cast<__mmask16>((1u << (n - k)) - 1);
      const __m512 w = load16<T>(row, k, m);
      for (int i = 0; i < M; ++i)
        acc[i][0] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, x[i] + k), acc[i][0]);
    }
    const float bias = t.bias ? t.bias[o] : 0.0f;
    for (int i = 0; i < M; ++i) {
      const __m512 s =
          _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_add_ps(acc[i][2], acc[i][3]));
      t.y[i * t.ldy + o] = _mm512_reduce_add_ps(s) + bias;
    }
  }
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
                                   .to_f32 = linear_target_avx2().to_f32};
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
