// Integer dot products of block-format weights with activations rounded to 8-bit blocks: the
// opt-in `LinearDot::int8` mode of the linear layers (kernels/linear.h).
//
// Each row of x is rounded once per call to blocks that match the weight's blocks:
//   ActBlock32  (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): 32 values, d = max|x| / 127,
//               q = round(x / d) in [-127, 127], and d * sum(q) for the formats with a min;
//   ActBlock256 (Q4_K, Q5_K, Q6_K, IQ4_XS): 256 values, one d, and the sums of q per 16 values
//               (for the K formats' mins and offsets).
// A weight block then meets its activation block in integers: exact sums of (weight code x q),
// weighted by the integer sub-block scales, and one float combination per block:
//   Q8_0, Q4_0, Q5_0, IQ4_NL   (d_w d_a) * sum(w q)            w = the signed code (q - 8, ...)
//   Q4_1, Q5_1                 (d_w d_a) * sum(w q) + m_w (d_a sum(q))
//   Q4_K, Q5_K                 (d_w d_a) * sum_j sc_j sum(w q) - (dmin_w d_a) * sum_j mn_j sum(q)
//   Q6_K, IQ4_XS               (d_w d_a) * sum_j sc_j sum(w q)  (signed sub-block scales)
// (w: Q4_1, Q5_1, Q4_K, Q5_K the unsigned code; IQ4_NL, IQ4_XS the code's value on their grid.)
// The block terms are summed in fp32 in an order fixed by n_in (never by the number of rows).
//
// Error against the fp32 product: rounding x to q moves each value by at most d_a / 2 =
// max|x_block| / 254, so |y_int8 - y| <= sum_blocks (max|x_block| / 254) * sum_block |w| (plus
// fp32 summation), about 0.2-0.4% of |y| for random data; measured on whole models in
// docs/PERFORMANCE.md. Q2_K and Q3_K have no integer kernels: int8_dot_supported() is false and
// the linear layer keeps them on the exact fp32 kernels.
#pragma once

#include <cstdint>

#include "kernels/quant/blocks.h"

namespace qkv::kernels::quant {

struct ActBlock32 {
  float d;
  float ds;  // d * sum(q)
  int8_t q[kQK];
};
struct ActBlock256 {
  float d;
  int16_t bsums[kQKK / 16];  // sum of q[16 s, 16 s + 16)
  int8_t q[kQKK];
};
static_assert(sizeof(ActBlock32) == 40 && sizeof(ActBlock256) == 292);

// Whether weights of type `t` have integer kernels.
bool int8_dot_supported(QuantType t);
// Bytes of one quantized activation row of n values for weights of type `t` (n a multiple of its
// block size).
int64_t act_row_bytes(QuantType t, int64_t n);
// Rounds x[0, n) to the activation blocks of `t` at `out` (act_row_bytes(t, n) bytes): AVX2
// where the CPU has it, bit-identical to the scalar twin quantize_act_reference.
void quantize_act(QuantType t, const float* x, int64_t n, void* out);
void quantize_act_reference(QuantType t, const float* x, int64_t n, void* out);
namespace avx2 {
void quantize_act(QuantType t, const float* x, int64_t n, void* out);  // needs the avx2 target
}

// The oracle: the row's dot product in the formulas above, integer block sums exact, the float
// combination in double. `abs_sum` (may be null) gets the sum over elements of |d_w d_a sc w q|
// (plus |dmin_w d_a mn q| for the K formats' mins): it bounds every partial sum a kernel holds, so
// it scales the fp32 kernels' rounding error.
double dot_int8_reference(QuantType t, const uint8_t* w_row, const void* act_row, int64_t n,
                          double* abs_sum = nullptr);

}  // namespace qkv::kernels::quant
