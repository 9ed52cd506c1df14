// The matrix-vector kernels of the linear layers and the weight-to-fp32 converters, compiled once
// per SIMD target (linear_generic.cpp, linear_avx2.cpp, linear_avx512.cpp) and chosen at run time like the attention
// targets (QKV_CPU_TARGET can lower the choice).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/linear.h"

namespace qkv::kernels::cpu {

// Rows of x one matrix-vector call handles together: every weight element loaded is used
// kGemvRows times from registers (4 rows x 2 vectors = 8 accumulators of the 16 YMM registers).
constexpr int64_t kGemvRows = 4;

// One call: y[i, o] = x[i, :] · W[o, :] + bias[o] for i < m (m <= kGemvRows), o in [o0, o1).
struct GemvTask {
  WeightType type = WeightType::f32;
  const uint8_t* w = nullptr;  // [n_out, n_in], rows w_stride bytes apart
  int64_t w_stride = 0;
  int64_t n_in = 0;
  const float* x = nullptr;  // [m, n_in], rows ldx floats apart
  int64_t ldx = 0;
  int64_t m = 0;
  float* y = nullptr;  // [m, n_out], rows ldy floats apart
  int64_t ldy = 0;
  const float* bias = nullptr;  // [n_out] or null
};

// The int8 dot-product mode (quant/dot_int8.h): the same product with x already rounded to the
// activation blocks of the weight's type (quant::quantize_act), for the types where
// quant::int8_dot_supported. Rows of one call are independent, as for GemvTask (any m).
struct GemvInt8Task {
  WeightType type = WeightType::q8_0;
  const uint8_t* w = nullptr;  // [n_out, n_in], rows w_stride bytes apart
  int64_t w_stride = 0;
  int64_t n_in = 0;
  const uint8_t* xq = nullptr;  // [m] rows of quant::act_row_bytes(n_in), ldxq bytes apart
  int64_t ldxq = 0;
  int64_t m = 0;
  float* y = nullptr;  // [m, n_out], rows ldy floats apart
  int64_t ldy = 0;
  const float* bias = nullptr;  // [n_out] or null
};

// The int8 mode on interleaved weights (quant/repack.h): groups [g0, g1) of kRepackRows output
// rows of `packed` against the m rows of xq (any m; a row's result never depends on the others).
struct RepackedTask {
  quant::QuantType type = quant::QuantType::q8_0;
  const uint8_t* packed = nullptr;  // quant::repack's groups, 64-byte aligned
  int64_t n_out = 0;
  int64_t n_in = 0;
  const uint8_t* xq = nullptr;  // [m] rows of quant::act_row_bytes(n_in), ldxq bytes apart
  int64_t ldxq = 0;
  int64_t m = 0;
  float* y = nullptr;  // [m, n_out], rows ldy floats apart
  int64_t ldy = 0;
  const float* bias = nullptr;  // [n_out] or null
};

// f16/bf16 weights in the matrix-vector kernels' layout (Linear with LinearLayout::interleaved):
// groups of kInterleaveRows output rows, and within a group the rows' values of one column k next
// to each other: value (o, k) at element (o / 16 * n_in + k) * 16 + o % 16 (2 bytes each), rows
// past n_out zero. One 32-byte load is column k of 16 rows, multiplied by x[k] broadcast: the
// weights stream as one sequence, x is read once per group (4 bytes per 32 of weights) and no
// row needs a horizontal sum. The arithmetic, the same on every target and for every m: output
// (i, o) = ((c0 + c1) + (c2 + c3)) + bias, c_j = fma-chain over k = j, j + 4, j + 8, ... in
// increasing k (acc = fma(w, x, acc) from 0).
constexpr int64_t kInterleaveRows = 16;

// One call: groups [g0, g1) against the m rows of x (any m).
struct InterleavedTask {
  WeightType type = WeightType::f16;  // f16 or bf16
  const uint8_t* packed = nullptr;    // the groups, 64-byte aligned
  int64_t n_out = 0;
  int64_t n_in = 0;
  const float* x = nullptr;  // [m, n_in], rows ldx floats apart
  int64_t ldx = 0;
  int64_t m = 0;
  float* y = nullptr;  // [m, n_out], rows ldy floats apart
  int64_t ldy = 0;
  const float* bias = nullptr;  // [n_out] or null
};

struct LinearTargetOps {
  const char* name;
  void (*gemv)(const GemvTask& t, int64_t o0, int64_t o1);
  void (*gemv_int8)(const GemvInt8Task& t, int64_t o0, int64_t o1);
  void (*gemm_repacked)(const RepackedTask& t, int64_t g0, int64_t g1);
  // Rows [o0, o1) of w (as in GemvTask) to fp32: out[(o - o0) * ld_out + k].
  void (*to_f32)(WeightType type, const uint8_t* w, int64_t w_stride, int64_t n_in, int64_t o0,
                 int64_t o1, float* out, int64_t ld_out);
  void (*gemv_interleaved)(const InterleavedTask& t, int64_t g0, int64_t g1);
  // Columns [k0, k1) of groups [g0, g1) of an interleaved weight to fp32, column-major panels:
  // out[(k - k0) * ld_out + (g - g0) * 16 + r] = value (g * 16 + r, k) (zero past n_out).
  void (*interleaved_to_f32)(WeightType type, const uint8_t* packed, int64_t n_in, int64_t g0,
                             int64_t g1, int64_t k0, int64_t k1, float* out, int64_t ld_out);
};

const LinearTargetOps& linear_target_generic();
const LinearTargetOps& linear_target_avx2();    // the generic one where the CPU lacks AVX2+FMA+F16C
const LinearTargetOps& linear_target_avx512();  // the generic one off x86
// The best target the CPU has, lowered by QKV_CPU_TARGET=generic (read once).
const LinearTargetOps& linear_target_selected();
// Every target this CPU can run, generic first (tests run them all).
std::vector<const LinearTargetOps*> linear_targets_runnable();

}  // namespace qkv::kernels::cpu
