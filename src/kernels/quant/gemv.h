// Matrix-vector products and panel decoding for weights in a block format (blocks.h), per SIMD
// target: the linear layers' targets (cpu/linear_generic.cpp, cpu/linear_avx2.cpp) call these for
// every block type except Q8_0, which has its own kernels there.
//
// The AVX2 kernels decode the blocks straight from the weight's memory (the model file's map)
// into an L1-resident fp32 chunk of kChunk values, bit-identical to the scalar dequantizer, and
// take its dot products with the fp32 activations (fp32 FMA, several partial sums; activations
// are not quantized, see linear.h). The AVX-512 kernels decode the same values into registers
// and multiply them at once. The opt-in int8 mode (LinearDot::int8) has its own kernels,
// gemv_int8 below (dot_int8.h).
#pragma once

#include <cstdint>

#include "kernels/cpu/linear_target.h"
#include "kernels/quant/blocks.h"

namespace qkv::kernels::quant {

// Values decoded at a time: a multiple of every block size, so a chunk is whole blocks.
constexpr int64_t kChunk = 256;

namespace avx2 {
// out[0, n) = values [k0, k0 + n) of the row at `row` (k0 and n multiples of the block size).
// Bit-identical to dequantize(); falls back to it where the CPU lacks AVX2 + FMA + F16C.
void decode(QuantType q, const uint8_t* row, int64_t k0, int64_t n, float* out);
void gemv(QuantType q, const cpu::GemvTask& t, int64_t o0, int64_t o1);
// The int8 dot-product mode (dot_int8.h) with vpmaddubsw / vpmaddwd; needs the avx2 target.
void gemv_int8(const cpu::GemvInt8Task& t, int64_t o0, int64_t o1);
}  // namespace avx2

namespace avx512 {
// The matrix-vector product with blocks decoded in registers (gemv_avx512.cpp); false, doing
// nothing, for the types it has no decoder for (Q2_K, Q3_K: use avx2::gemv). Needs the avx512
// target (cpu/targets.h).
bool gemv(QuantType q, const cpu::GemvTask& t, int64_t o0, int64_t o1);
// The int8 dot-product mode with AVX512-VNNI (vpdpbusd / vpdpwssd on 256-bit vectors); false,
// doing nothing, where the CPU lacks AVX512-VNNI (use avx2::gemv_int8).
bool gemv_int8(const cpu::GemvInt8Task& t, int64_t o0, int64_t o1);
}  // namespace avx512

}  // namespace qkv::kernels::quant
