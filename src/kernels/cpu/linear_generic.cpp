// The portable target of the linear kernels: plain C++ (the compiler's SSE2 at most), the fallback
// on CPUs without AVX2+FMA+F16C and the twin the SIMD target is tested against.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/cpu/targets.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/repack.h"

namespace qkv::kernels::cpu {
namespace {

// Elements converted at a time: a chunk of one weight row stays in L1 while it is used for each
// row of x.
constexpr int64_t kChunk = 256;

void row_to_f32(WeightType type, const uint8_t* p, int64_t k0, int64_t n, float* out) {
  switch (type) {
    case WeightType::f32:
      std::memcpy(out, p + 4 * k0, static_cast<size_t>(n) * 4);
      break;
    case WeightType::f16:
    case WeightType::bf16:
      for (int64_t k = 0; k < n; ++k) {
        uint16_t h;
        std::memcpy(&h, p + 2 * (k0 + k), 2);
        out[k] = type == WeightType::f16 ? core::f16_to_f32(h) : core::bf16_to_f32(h);
      }
      break;
    default: {  // a block format: k0 and n are multiples of its block (kChunk is one of 256)
      const quant::QuantType q = *weight_quant_type(type);
      quant::dequantize(q, p + quant::quant_row_bytes(q, k0), n, out);
      break;
    }
  }
}

void gemv(const GemvTask& t, int64_t o0, int64_t o1) {
  float w[kChunk];
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* row = t.w + o * t.w_stride;
    // Eight partial sums per row of x, so the compiler can keep them in two SSE registers.
    float acc[kGemvRows][8] = {};
    for (int64_t k0 = 0; k0 < t.n_in; k0 += kChunk) {
      const int64_t n = std::min(kChunk, t.n_in - k0);
      row_to_f32(t.type, row, k0, n, w);
      for (int64_t i = 0; i < t.m; ++i) {
        const float* x = t.x + i * t.ldx + k0;
        int64_t k = 0;
        for (; k + 8 <= n; k += 8)
          for (int j = 0; j < 8; ++j) acc[i][j] += x[k + j] * w[k + j];
        for (; k < n; ++k) acc[i][k % 8] += x[k] * w[k];
      }
    }
    for (int64_t i = 0; i < t.m; ++i) {
      float s = t.bias ? t.bias[o] : 0.0f;
      for (float a : acc[i]) s += a;
      t.y[i * t.ldy + o] = s;
    }
  }
}

void to_f32(WeightType type, const uint8_t* w, int64_t w_stride, int64_t n_in, int64_t o0,
            int64_t o1, float* out, int64_t ld_out) {
  for (int64_t o = o0; o < o1; ++o)
    row_to_f32(type, w + o * w_stride, 0, n_in, out + (o - o0) * ld_out);
}

// The int8 mode on the portable target: the oracle's exact integer sums, combined in double.
void gemv_int8(const GemvInt8Task& t, int64_t o0, int64_t o1) {
  const quant::QuantType q = *weight_quant_type(t.type);
  for (int64_t o = o0; o < o1; ++o) {
    for (int64_t i = 0; i < t.m; ++i) {
      const double dot =
          quant::dot_int8_reference(q, t.w + o * t.w_stride, t.xq + i * t.ldxq, t.n_in);
      t.y[i * t.ldy + o] = static_cast<float>(dot + (t.bias ? t.bias[o] : 0.0f));
    }
  }
}

// Interleaved weights on the portable target: the reference twin itself (std::fma, the canonical
// arithmetic of quant/repack.h).
void gemm_repacked(const RepackedTask& t, int64_t g0, int64_t g1) {
  quant::repacked_gemm_reference(t.type, t.packed, t.n_out, t.n_in, t.xq, t.ldxq, t.m, g0, g1, t.y,
                                 t.ldy, t.bias);
}

float half_to_f32(WeightType type, uint16_t h) {
  return type == WeightType::f16 ? core::f16_to_f32(h) : core::bf16_to_f32(h);
}

// The interleaved layout's arithmetic as linear_target.h states it, one output at a time.
void gemv_interleaved(const InterleavedTask& t, int64_t g0, int64_t g1) {
  const auto* h = reinterpret_cast<const uint16_t*>(t.packed);
  for (int64_t g = g0; g < g1; ++g) {
    const uint16_t* grp = h + g * kInterleaveRows * t.n_in;
    const int64_t rows = std::min(kInterleaveRows, t.n_out - g * kInterleaveRows);
    for (int64_t i = 0; i < t.m; ++i) {
      const float* x = t.x + i * t.ldx;
      for (int64_t r = 0; r < rows; ++r) {
        float c[4] = {};
        for (int64_t k = 0; k < t.n_in; ++k)
          c[k % 4] = std::fma(half_to_f32(t.type, grp[k * kInterleaveRows + r]), x[k], c[k % 4]);
        const int64_t o = g * kInterleaveRows + r;
        t.y[i * t.ldy + o] = ((c[0] + c[1]) + (c[2] + c[3])) + (t.bias ? t.bias[o] : 0.0f);
      }
    }
  }
}

void interleaved_to_f32(WeightType type, const uint8_t* packed, int64_t n_in, int64_t g0,
                        int64_t g1, int64_t k0, int64_t k1, float* out, int64_t ld_out) {
  const auto* h = reinterpret_cast<const uint16_t*>(packed);
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t r = 0; r < kInterleaveRows; ++r)
        out[(k - k0) * ld_out + (g - g0) * kInterleaveRows + r] =
            half_to_f32(type, h[(g * n_in + k) * kInterleaveRows + r]);
}

TargetTable<LinearTargetOps> linear_targets() {
  return {&linear_target_generic(), &linear_target_avx2(), &linear_target_avx512()};
}

}  // namespace

const LinearTargetOps& linear_target_generic() {
  static const LinearTargetOps ops{.name = "generic",
                                   .gemv = gemv,
                                   .gemv_int8 = gemv_int8,
                                   .gemm_repacked = gemm_repacked,
                                   .to_f32 = to_f32,
                                   .gemv_interleaved = gemv_interleaved,
                                   .interleaved_to_f32 = interleaved_to_f32};
  return ops;
}

const LinearTargetOps& linear_target_selected() {
  static const LinearTargetOps& ops = pick_target(linear_targets(), selected_target());
  return ops;
}

std::vector<const LinearTargetOps*> linear_targets_runnable() {
  return runnable_tables(linear_targets());
}

}  // namespace qkv::kernels::cpu
