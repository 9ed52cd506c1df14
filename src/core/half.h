// Scalar f16 / bf16 conversions, inline for use in loops (the SIMD kernels have their own).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace qkv::core {

inline float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

// Round to nearest even; NaN is kept a (quiet) NaN.
inline uint16_t f32_to_bf16(float x) {
  uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: value = man * 2^-24
      const float f = static_cast<float>(man) * 5.9604644775390625e-8f;
      bits = sign | std::bit_cast<uint32_t>(f);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

inline uint16_t f32_to_f16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                        // below the smallest normal half (2^-14)
    // Subnormal half: value / 2^-24 rounded to nearest even, done in float arithmetic which is
    // exact here because the result has at most 10 significant bits.
    const float f = std::bit_cast<float>(abs) * 16777216.0f;  // * 2^24
    const float r = __builtin_nearbyintf(f);
    return sign | static_cast<uint16_t>(r);
  }
  // Normal: rebias exponent and round the mantissa to 10 bits, nearest even.
  uint32_t v = abs - (112u << 23);
  v += 0xfffu + ((v >> 13) & 1u);
  return sign | static_cast<uint16_t>(v >> 13);
}

// Q8_0 blocks (DType::q8_0, ggml's layout): 32 values in 34 bytes, {f16 d; int8 q[32]}.
inline constexpr int64_t kQ8Elems = 32;
inline constexpr int64_t kQ8Bytes = 34;

// The scale of the block at `block` (its first two bytes, little-endian f16; the block may be
// unaligned).
inline float q8_0_scale(const void* block) {
  uint16_t d;
  std::memcpy(&d, block, 2);
  return f16_to_f32(d);
}

// The value at element offset `off` of q8_0 data (blocks of kQ8Elems values from `data`).
inline float q8_0_value(const void* data, int64_t off) {
  const auto* block = static_cast<const unsigned char*>(data) + off / kQ8Elems * kQ8Bytes;
  return q8_0_scale(block) * static_cast<float>(static_cast<int8_t>(block[2 + off % kQ8Elems]));
}

}  // namespace qkv::core
