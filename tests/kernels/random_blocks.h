// Random block-format weights for the kernel tests (linear, int8, repack): every byte random,
// then each block's f16 scale fields set to finite values of a chosen magnitude range.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/quant/blocks.h"

namespace qkv::test {

// Byte offsets of the f16 scale fields of each block format (d, and dmin or m where present).
inline std::vector<size_t> half_fields(kernels::quant::QuantType q) {
  using namespace kernels::quant;
  switch (q) {
    case QuantType::q4_1:
      return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)};
    case QuantType::q5_1:
      return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)};
    case QuantType::q2_k:
      return {offsetof(BlockQ2K, d), offsetof(BlockQ2K, dmin)};
    case QuantType::q3_k:
      return {offsetof(BlockQ3K, d)};
    case QuantType::q4_k:
      return {offsetof(BlockQ4K, d), offsetof(BlockQ4K, dmin)};
    case QuantType::q5_k:
      return {offsetof(BlockQ5K, d), offsetof(BlockQ5K, dmin)};
    case QuantType::q6_k:
      return {offsetof(BlockQ6K, d)};
    default:  // Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS: d first
      return {0};
  }
}

// n_out rows of random blocks of `q` at `rows`, `stride` bytes apart: every byte of
// [rows, rows + n_out * stride) random (codes, sub-block scales, signs, and the padding between
// rows), then each block's f16 fields set to +-2^u, u uniform in [-lo, hi).
inline void random_block_rows(kernels::quant::QuantType q, uint8_t* rows, int64_t n_out,
                              int64_t n_in, int64_t stride, std::mt19937& rng, int lo, int hi) {
  for (int64_t i = 0; i < n_out * stride; ++i) rows[i] = static_cast<uint8_t>(rng());
  const int64_t bytes = kernels::quant::quant_block_bytes(q);
  std::uniform_real_distribution<float> mag(static_cast<float>(-lo), static_cast<float>(hi));
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t b = 0; b < n_in / kernels::quant::quant_block_elems(q); ++b) {
      for (size_t off : half_fields(q)) {
        const uint16_t h = core::f32_to_f16(std::exp2(mag(rng)) * (rng() % 2 ? 1.f : -1.f));
        std::memcpy(rows + o * stride + b * bytes + off, &h, 2);
      }
    }
  }
}

}  // namespace qkv::test
