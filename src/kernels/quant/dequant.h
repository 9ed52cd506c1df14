// The scalar dequantizers of the block formats (blocks.h): the oracle twin of every quantized
// kernel. Each reproduces ggml's own dequantization bit for bit (the same float operations in the
// same order, no fused multiply-add; tests/kernels/quant_dequant_test.cpp checks the SHA-256 of
// every tensor of llama.cpp-quantized files against llama.cpp's).
#pragma once

#include <cstdint>

#include "kernels/quant/blocks.h"

namespace qkv::kernels::quant {

// out[0, n) = the n values of the blocks at `blocks` (n a multiple of quant_block_elems(t); the
// blocks must be 2-byte aligned, as they are in a GGUF: rows start at multiples of 32 bytes and
// every block size is even).
void dequantize(QuantType t, const void* blocks, int64_t n, float* out);

// One family each (legacy.cpp, k_quants.cpp, iq4.cpp); n as above.
void dequantize_q4_0(const BlockQ4_0* b, int64_t n, float* out);
void dequantize_q4_1(const BlockQ4_1* b, int64_t n, float* out);
void dequantize_q5_0(const BlockQ5_0* b, int64_t n, float* out);
void dequantize_q5_1(const BlockQ5_1* b, int64_t n, float* out);
void dequantize_q8_0(const BlockQ8_0* b, int64_t n, float* out);
void dequantize_q2_k(const BlockQ2K* b, int64_t n, float* out);
void dequantize_q3_k(const BlockQ3K* b, int64_t n, float* out);
void dequantize_q4_k(const BlockQ4K* b, int64_t n, float* out);
void dequantize_q5_k(const BlockQ5K* b, int64_t n, float* out);
void dequantize_q6_k(const BlockQ6K* b, int64_t n, float* out);
void dequantize_iq4_nl(const BlockIq4Nl* b, int64_t n, float* out);
void dequantize_iq4_xs(const BlockIq4Xs* b, int64_t n, float* out);

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes: j < 4 in
// the low 6 bits of bytes j and j + 4; j >= 4 in the nibbles of byte j + 4 with their top two
// bits in the top bits of bytes j - 4 (scale) and j (min).
inline void k_scale_min(int j, const uint8_t* s, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q3_K: the 16 signed scales (stored + 32, already minus 32 here) from the 12 packed bytes.
void q3_k_scales(const uint8_t* packed, int8_t* scales);

}  // namespace qkv::kernels::quant
