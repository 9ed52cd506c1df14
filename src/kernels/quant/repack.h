// Interleaved ("repacked") weights for the int8 dot-product mode (LinearDot::int8, dot_int8.h).
//
// A weight of a supported block type is copied once, at load, into groups of kRepackRows output
// rows whose blocks are interleaved: for each block b, the 16 rows' scales sit side by side, and
// their codes are arranged so that one vector instruction forms the integer dot products of all
// 16 rows with 4 values of x (vpdpbusd's 4 bytes per int32 lane, one lane per row). The float
// combination of each block then runs across the 16 rows in one vector, instead of per row with a
// horizontal sum at the end (dot_int8_impl.inc), and one kernel family serves every m: decode
// (m = 1), batched decode and prefill. Each format's byte layout is documented where it is packed
// (repack_legacy.cpp: the 32-value formats; repack_k.cpp: the K formats).
//
// Canonical arithmetic (every implementation, bit for bit): for output o and activation row i,
//   acc = 0.f;  for each block b in order:  acc = fmaf(s_b, (float)I_b, acc);   y = acc (+ bias[o])
// with I_b the block's exact integer sum of (weight code x activation code) (for the K formats,
// sum over sub-blocks of integer scale x integer sub-block dot, exact in int32) and
// s_b = d_w * d_a one fp32 multiply. Formats with a min keep a second chain documented with their
// layout. One fp32 chain per (o, i), never lanes then a horizontal sum: every target gives the same
// y, a row's y does not depend on m or on the other rows (batch invariance), and
// repacked_gemm_reference is the bitwise twin of the kernels.
//
// Activations are quantize_act's rows (ActBlock32 / ActBlock256), unchanged.
#pragma once

#include <cstdint>

#include "kernels/quant/blocks.h"

namespace qkv::kernels::cpu {
struct RepackedTask;
}

namespace qkv::kernels::quant {

constexpr int64_t kRepackRows = 16;  // rows per interleaved group; n_out padded with zero rows

// Whether `t` has an interleaved layout (false for the others: they keep dot_int8's kernels).
bool repack_supported(QuantType t);
// Bytes of one group of kRepackRows rows of n_in values (a multiple of 64), and of the whole
// repacked weight [ceil(n_out / 16) groups]; the buffer must be 64-byte aligned.
int64_t repacked_group_bytes(QuantType t, int64_t n_in);
int64_t repacked_bytes(QuantType t, int64_t n_out, int64_t n_in);
// Packs groups [g0, g1) of the row-major weight `w` ([n_out, n_in], rows w_stride bytes apart) at
// out + g * repacked_group_bytes (groups are independent: callers split them over threads). Rows
// at or past n_out are zero (scales 0, so their codes never matter).
void repack(QuantType t, const uint8_t* w, int64_t w_stride, int64_t n_out, int64_t n_in,
            int64_t g0, int64_t g1, uint8_t* out);
// The reference twin, the canonical arithmetic above in plain scalar code: y[i * ldy + o] for
// i < m and o < n_out in groups [g0, g1); xq holds m rows of quantize_act(t, .) ldxq bytes apart.
void repacked_gemm_reference(QuantType t, const uint8_t* packed, int64_t n_out, int64_t n_in,
                             const uint8_t* xq, int64_t ldxq, int64_t m, int64_t g0, int64_t g1,
                             float* y, int64_t ldy, const float* bias);

// The SIMD kernels (cpu::LinearTargetOps::gemm_repacked calls these): false, doing nothing, where
// the CPU lacks the instructions (avx512: AVX512-VNNI) or the format has no kernel on the target.
namespace avx2 {
bool gemm_repacked(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
}
namespace avx512 {
bool gemm_repacked(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
}

}  // namespace qkv::kernels::quant
