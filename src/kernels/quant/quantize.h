// Quantizers: fp32 values -> blocks (blocks.h). For the legacy formats these are ggml's reference
// quantizers (no importance matrix), so their blocks are byte-identical to llama-quantize's
// (tests/apps/quantize_cli_test.py checks every tensor of ../shared/fixtures/gguf-quant). The K
// and IQ4 quantizers are our own least-squares searches (quantize_fit.h); their per-tensor RMSE
// is held against llama-quantize's (tests/formats/quantize_k_test.cpp, docs/QUANTIZATION.md).
#pragma once

#include <cstdint>

#include "kernels/quant/blocks.h"

namespace qkv::kernels::quant {

// n values (a multiple of the block size) -> n / block_elems blocks at `out`, for every type.
void quantize(QuantType t, const float* x, int64_t n, void* out);

// Q4_0 / Q5_0: d = (the value of largest magnitude, with its sign) / -8 (-16), q = x / d + 8
// (16) truncated after adding 0.5, capped at 15 (31).
void quantize_q4_0(const float* x, int64_t n, BlockQ4_0* out);
void quantize_q5_0(const float* x, int64_t n, BlockQ5_0* out);
// Q4_1 / Q5_1: m = min, d = (max - min) / 15 (31), q = (x - m) / d rounded half up.
void quantize_q4_1(const float* x, int64_t n, BlockQ4_1* out);
void quantize_q5_1(const float* x, int64_t n, BlockQ5_1* out);
// Q8_0: d = max |x| / 127, q = round(x / d) (half away from zero).
void quantize_q8_0(const float* x, int64_t n, BlockQ8_0* out);

// The K formats (quantize_k.cpp) and IQ4 (quantize_iq4.cpp); n a multiple of 256 (IQ4_NL: 32).
void quantize_q2_k(const float* x, int64_t n, BlockQ2K* out);
void quantize_q3_k(const float* x, int64_t n, BlockQ3K* out);
void quantize_q4_k(const float* x, int64_t n, BlockQ4K* out);
void quantize_q5_k(const float* x, int64_t n, BlockQ5K* out);
void quantize_q6_k(const float* x, int64_t n, BlockQ6K* out);
void quantize_iq4_nl(const float* x, int64_t n, BlockIq4Nl* out);
void quantize_iq4_xs(const float* x, int64_t n, BlockIq4Xs* out);

}  // namespace qkv::kernels::quant
