// The AVX2 + FMA + F16C target of the linear kernels (Haswell and later, Zen). Weights are read
// in their stored type and widened in registers, so f16/bf16 rows cost half the bytes of f32 and
// q8_0 rows 34/128 (quant/blocks.h): decode is bound by those bytes (docs/PERFORMANCE.md, "Linear
// layers").
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/cpu/targets.h"
#include "kernels/quant/gemv.h"
#include "kernels/quant/repack.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

QKV_TARGET_BEGIN(QKV_TARGET_AVX2)

namespace qkv::kernels::cpu::avx2 {
namespace {

// How far ahead of the loads the weights are prefetched. Measured on Zen 3 (m = 1, 256 MiB of
// weights, fraction of a plain read loop, medians of 3, huge / 4 KiB pages): q8_0 0.58 / 0.70
// without, 0.71 / 0.74 at 1024 bytes (2048: 0.73 / 0.78, within the noise); f32 and f16
// unchanged within the noise.
constexpr int64_t kPrefetchBytes = 1024;
constexpr int64_t kQ8Bytes = sizeof(quant::BlockQ8_0);  // a Q8_0 block of 32 weights

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Eight weights of a row starting at element k, widened to fp32.
template <WeightType T>
__m256 load8(const uint8_t* row, int64_t k) {
  if constexpr (T == WeightType::f32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  } else if constexpr (T == WeightType::f16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  } else {  // bf16: the high half of an fp32
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <WeightType T>
float load1(const uint8_t* row, int64_t k) {
  if constexpr (T == WeightType::f32) {
    float v;
    std::memcpy(&v, row + 4 * k, 4);
    return v;
  } else {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return T == WeightType::f16 ? core::f16_to_f32(h) : core::bf16_to_f32(h);
  }
}

// R weight rows at a time against M rows of x, U independent accumulators per (weight row, row
// of x): FMA latency is 4 cycles, so each row of x needs about 4 chains to keep up with the
// weights as they arrive; with 3-4 rows of x, 2 chains each already fill the two FMA pipes. The
// prefetch runs kPrefetchBytes ahead: the loop alone keeps too few cache lines in flight.
template <WeightType T, int M, int R, int U>
void gemv_float_rows(const GemvTask& t, int64_t o) {
  constexpr int64_t step = 8 * U, elem = T == WeightType::f32 ? 4 : 2;
  constexpr int64_t pf = kPrefetchBytes;
  const int64_t n = t.n_in;
  const float* x[M];
  for (int i = 0; i < M; ++i) x[i] = t.x + i * t.ldx;
  const uint8_t* row[R];
  for (int r = 0; r < R; ++r) row[r] = t.w + (o + r) * t.w_stride;
  __m256 acc[R][M][U];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i)
      for (int u = 0; u < U; ++u) acc[r][i][u] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + step <= n; k += step) {
    for (int r = 0; r < R; ++r)
      for (int64_t line = 0; line < step * elem; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(row[r] + k * elem + pf + line), _MM_HINT_T0);
    for (int u = 0; u < U; ++u) {
      __m256 w[R];
      for (int r = 0; r < R; ++r) w[r] = load8<T>(row[r], k + 8 * u);
      for (int i = 0; i < M; ++i) {
        const __m256 xv = _mm256_loadu_ps(x[i] + k + 8 * u);
        for (int r = 0; r < R; ++r) acc[r][i][u] = _mm256_fmadd_ps(w[r], xv, acc[r][i][u]);
      }
    }
  }
  for (; k + 8 <= n; k += 8) {
    for (int r = 0; r < R; ++r) {
      const __m256 w = load8<T>(row[r], k);
      for (int i = 0; i < M; ++i)
        acc[r][i][0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x[i] + k), acc[r][i][0]);
    }
  }
  float tail[R][M] = {};
  for (; k < n; ++k) {
    for (int r = 0; r < R; ++r) {
      const float wk = load1<T>(row[r], k);
      for (int i = 0; i < M; ++i) tail[r][i] += wk * x[i][k];
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = t.bias ? t.bias[o + r] : 0.0f;
    for (int i = 0; i < M; ++i) {
      __m256 sum = acc[r][i][0];
      for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[r][i][u]);
      t.y[i * t.ldy + o + r] = hsum(sum) + tail[r][i] + b;
    }
  }
}

// fp32 decode (m = 1) reads four weight rows per pass, sharing each load of x (+13-34% over one
// row in three of four runs, -14% in one; OpenBLAS's sgemv does the same); for f16/bf16, two or
// four rows per pass measured 20-30% slower than one row with four accumulators.
// The accumulators per (weight row, row of x), U, depend only on the weight type, never on M:
// a row's sum is then the same whatever the number of rows of x in the call (batch invariance,
// docs/SERVER.md). R, the weight rows per pass, does not change any row's arithmetic.
template <WeightType T>
constexpr int kGemvChains = T == WeightType::f32 ? 2 : 4;

// f16/bf16 rows longer than 4096 values (the FFN down projection) are the exception: one row of x
// no longer fits in half of L1, and two rows per pass halve its reloads from L2 (as the AVX-512
// target, whose measurement is there).
constexpr int64_t kLongRowFloats = 4096;

template <WeightType T, int M>
void gemv_float(const GemvTask& t, int64_t o0, int64_t o1) {
  constexpr int U = kGemvChains<T>;
  constexpr int R = T == WeightType::f32 ? (M == 1 ? 4 : M == 2 ? 2 : 1) : 1;
  static_assert(R * M * U <= 12, "accumulators must stay in registers");
  int64_t o = o0;
  if constexpr (R == 1 && M == 1) {
    if (t.n_in > kLongRowFloats) {
      for (; o + 2 <= o1; o += 2) gemv_float_rows<T, M, 2, U>(t, o);
    }
  }
  for (; o + R <= o1; o += R) gemv_float_rows<T, M, R, U>(t, o);
  for (; o < o1; ++o) gemv_float_rows<T, M, 1, U>(t, o);
}

// Q8_0: per block of 32, the int8 values are widened to fp32 once and used for every row of x;
// each row's block sum is then scaled by the block's d (one FMA). With one or two rows of x, two
// blocks per step go to separate accumulators, so the d-FMA chain (4 cycles) does not limit.
template <int M>
void gemv_q8_0(const GemvTask& t, int64_t o0, int64_t o1) {
  constexpr int U = 2;  // whatever M: a row's arithmetic must not depend on the rows beside it
  const int64_t n_blocks = t.n_in / 32;
  constexpr int64_t pf = kPrefetchBytes;
  const float* x[M];
  for (int i = 0; i < M; ++i) x[i] = t.x + i * t.ldx;
  const auto block = [&](const uint8_t* row, int64_t b, __m256* acc) {
    const uint8_t* blk = row + b * kQ8Bytes;
    _mm_prefetch(reinterpret_cast<const char*>(blk + pf), _MM_HINT_T0);
    uint16_t h;
    std::memcpy(&h, blk, 2);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(h));
    __m256 q[4];
    for (int j = 0; j < 4; ++j) {
      const __m128i b8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + 8 * j));
      q[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b8));
    }
    for (int i = 0; i < M; ++i) {
      const float* xb = x[i] + 32 * b;
      __m256 s = _mm256_mul_ps(q[0], _mm256_loadu_ps(xb));
      s = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xb + 8), s);
      s = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xb + 16), s);
      s = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xb + 24), s);
      acc[i] = _mm256_fmadd_ps(d, s, acc[i]);
    }
  };
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* row = t.w + o * t.w_stride;
    __m256 acc[U][M];
    for (int u = 0; u < U; ++u)
      for (int i = 0; i < M; ++i) acc[u][i] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + U <= n_blocks; b += U)
      for (int u = 0; u < U; ++u) block(row, b + u, acc[u]);
    for (; b < n_blocks; ++b) block(row, b, acc[0]);
    const float bias = t.bias ? t.bias[o] : 0.0f;
    for (int i = 0; i < M; ++i) {
      __m256 sum = acc[0][i];
      for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[u][i]);
      t.y[i * t.ldy + o] = hsum(sum) + bias;
    }
  }
}

template <WeightType T>
void gemv_type(const GemvTask& t, int64_t o0, int64_t o1) {
  if constexpr (T == WeightType::q8_0) {
    switch (t.m) {
      case 1:
        return gemv_q8_0<1>(t, o0, o1);
      case 2:
        return gemv_q8_0<2>(t, o0, o1);
      case 3:
        return gemv_q8_0<3>(t, o0, o1);
      default:
        return gemv_q8_0<4>(t, o0, o1);
    }
  } else {
    switch (t.m) {
      case 1:
        return gemv_float<T, 1>(t, o0, o1);
      case 2:
        return gemv_float<T, 2>(t, o0, o1);
      case 3:
        return gemv_float<T, 3>(t, o0, o1);
      default:
        if constexpr (kGemvChains<T> * 4 > 12) {
          // f16/bf16: four rows of x with four chains each would not fit the 16 registers; two
          // passes of two rows over the (L2-resident) weight rows instead.
          GemvTask half = t;
          half.m = 2;
          gemv_float<T, 2>(half, o0, o1);
          half.x = t.x + 2 * t.ldx;
          half.y = t.y + 2 * t.ldy;
          return gemv_float<T, 2>(half, o0, o1);
        } else {
          return gemv_float<T, 4>(t, o0, o1);
        }
    }
  }
}

void gemv(const GemvTask& t, int64_t o0, int64_t o1) {
  static_assert(kGemvRows == 4);
  switch (t.type) {
    case WeightType::f32:
      return gemv_type<WeightType::f32>(t, o0, o1);
    case WeightType::f16:
      return gemv_type<WeightType::f16>(t, o0, o1);
    case WeightType::bf16:
      return gemv_type<WeightType::bf16>(t, o0, o1);
    case WeightType::q8_0:
      return gemv_type<WeightType::q8_0>(t, o0, o1);
    default:  // the other block formats (kernels/quant/gemv_avx2.cpp)
      return quant::avx2::gemv(*weight_quant_type(t.type), t, o0, o1);
  }
}

template <WeightType T>
void row_to_f32(const uint8_t* row, int64_t n, float* out) {
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out + k, load8<T>(row, k));
  for (; k < n; ++k) out[k] = load1<T>(row, k);
}

void q8_0_row_to_f32(const uint8_t* row, int64_t n, float* out) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * kQ8Bytes;
    uint16_t h;
    std::memcpy(&h, blk, 2);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(h));
    for (int j = 0; j < 4; ++j) {
      const __m128i b8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + 8 * j));
      _mm256_storeu_ps(out + 32 * b + 8 * j,
                       _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b8))));
    }
  }
}

void to_f32(WeightType type, const uint8_t* w, int64_t w_stride, int64_t n_in, int64_t o0,
            int64_t o1, float* out, int64_t ld_out) {
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* row = w + o * w_stride;
    float* dst = out + (o - o0) * ld_out;
    switch (type) {
      case WeightType::f32:
        row_to_f32<WeightType::f32>(row, n_in, dst);
        break;
      case WeightType::f16:
        row_to_f32<WeightType::f16>(row, n_in, dst);
        break;
      case WeightType::bf16:
        row_to_f32<WeightType::bf16>(row, n_in, dst);
        break;
      case WeightType::q8_0:
        q8_0_row_to_f32(row, n_in, dst);
        break;
      default:
        quant::avx2::decode(*weight_quant_type(type), row, 0, n_in, dst);
        break;
    }
  }
}

// f16/bf16 interleaved (linear_target.h): 16 rows as two vectors of 8, four chains each (k mod 4),
// one row of x at a time (8 accumulators; the group, 32 bytes per column, stays in L1/L2 for the
// next row of x).
template <WeightType T>
inline __m256 load8_at(const uint8_t* p) {
  return load8<T>(p, 0);
}

template <WeightType T>
void gemv_interleaved_type(const InterleavedTask& t, int64_t g0, int64_t g1) {
  const int64_t n = t.n_in;
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* grp = t.packed + g * kInterleaveRows * n * 2;
    const int64_t rows = std::min(kInterleaveRows, t.n_out - g * kInterleaveRows);
    for (int64_t i = 0; i < t.m; ++i) {
      const float* x = t.x + i * t.ldx;
      __m256 lo[4], hi[4];
      for (int c = 0; c < 4; ++c) lo[c] = hi[c] = _mm256_setzero_ps();
      int64_t k = 0;
      for (; k + 4 <= n; k += 4) {
        for (int c = 0; c < 4; ++c) {
          const uint8_t* col = grp + (k + c) * 32;
          const __m256 xv = _mm256_broadcast_ss(x + k + c);
          lo[c] = _mm256_fmadd_ps(load8_at<T>(col), xv, lo[c]);
          hi[c] = _mm256_fmadd_ps(load8_at<T>(col + 16), xv, hi[c]);
        }
      }
      for (; k < n; ++k) {
        const uint8_t* col = grp + k * 32;
        const __m256 xv = _mm256_broadcast_ss(x + k);
        lo[k % 4] = _mm256_fmadd_ps(load8_at<T>(col), xv, lo[k % 4]);
        hi[k % 4] = _mm256_fmadd_ps(load8_at<T>(col + 16), xv, hi[k % 4]);
      }
      alignas(32) float out[16];
      _mm256_store_ps(out, _mm256_add_ps(_mm256_add_ps(lo[0], lo[1]), _mm256_add_ps(lo[2], lo[3])));
      _mm256_store_ps(out + 8,
                      _mm256_add_ps(_mm256_add_ps(hi[0], hi[1]), _mm256_add_ps(hi[2], hi[3])));
      float* y = t.y + i * t.ldy + g * kInterleaveRows;
      const float* b = t.bias ? t.bias + g * kInterleaveRows : nullptr;
      for (int64_t r = 0; r < rows; ++r) y[r] = out[r] + (b ? b[r] : 0.0f);
    }
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
      const uint8_t* col = packed + ((g * n_in + k) * kInterleaveRows) * 2;
      _mm256_storeu_ps(dst + (g - g0) * kInterleaveRows, load8_at<T>(col));
      _mm256_storeu_ps(dst + (g - g0) * kInterleaveRows + 8, load8_at<T>(col + 16));
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

// Interleaved weights: the AVX2 kernels, or the portable ones for a format they lack.
void gemm_repacked(const RepackedTask& t, int64_t g0, int64_t g1) {
  if (!quant::avx2::gemm_repacked(t, g0, g1)) linear_target_generic().gemm_repacked(t, g0, g1);
}

}  // namespace
}  // namespace qkv::kernels::cpu::avx2

QKV_TARGET_END

namespace qkv::kernels::cpu {
const LinearTargetOps& linear_target_avx2() {
  static const LinearTargetOps ops{.name = "avx2",
                                   .gemv = avx2::gemv,
                                   .gemv_int8 = quant::avx2::gemv_int8,
                                   .gemm_repacked = avx2::gemm_repacked,
                                   .to_f32 = avx2::to_f32,
                                   .gemv_interleaved = avx2::gemv_interleaved,
                                   .interleaved_to_f32 = avx2::interleaved_to_f32};
  return ops;
}
}  // namespace qkv::kernels::cpu

#else  // not x86

namespace qkv::kernels::cpu {
const LinearTargetOps& linear_target_avx2() {
  return linear_target_generic();
}
}  // namespace qkv::kernels::cpu

#endif
