// The legacy block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): scalar dequantizers.
// Built with -ffp-contract=off (CMakeLists.txt): `d * q + m` must round twice, as ggml's does.
#include <cstring>

#include "core/half.h"
#include "kernels/quant/dequant.h"

namespace qkv::kernels::quant {

namespace {

uint32_t load_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;  // little-endian hosts only (as the GGUF reader)
}

}  // namespace

void dequantize_q4_0(const BlockQ4_0* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQK; ++i, out += kQK) {
    const float d = core::f16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      out[j] = static_cast<float>((b[i].qs[j] & 0xF) - 8) * d;
      out[j + kQK / 2] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const BlockQ4_1* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQK; ++i, out += kQK) {
    const float d = core::f16_to_f32(b[i].d);
    const float m = core::f16_to_f32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      out[j] = static_cast<float>(b[i].qs[j] & 0xF) * d + m;
      out[j + kQK / 2] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const BlockQ5_0* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQK; ++i, out += kQK) {
    const float d = core::f16_to_f32(b[i].d);
    const uint32_t qh = load_qh(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = static_cast<int>((qh >> j) & 1) << 4;
      const int hi1 = static_cast<int>((qh >> (j + 16)) & 1) << 4;
      out[j] = static_cast<float>(((b[i].qs[j] & 0xF) | hi0) - 16) * d;
      out[j + kQK / 2] = static_cast<float>(((b[i].qs[j] >> 4) | hi1) - 16) * d;
    }
  }
}

void dequantize_q5_1(const BlockQ5_1* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQK; ++i, out += kQK) {
    const float d = core::f16_to_f32(b[i].d);
    const float m = core::f16_to_f32(b[i].m);
    const uint32_t qh = load_qh(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = static_cast<int>((qh >> j) & 1) << 4;
      const int hi1 = static_cast<int>((qh >> (j + 16)) & 1) << 4;
      out[j] = static_cast<float>((b[i].qs[j] & 0xF) | hi0) * d + m;
      out[j + kQK / 2] = static_cast<float>((b[i].qs[j] >> 4) | hi1) * d + m;
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQK; ++i, out += kQK) {
    const float d = core::f16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) out[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

}  // namespace qkv::kernels::quant
