// ggml's reference quantizers of the legacy formats. Built with -ffp-contract=off: `x * id + 8.5`
// rounds after the multiply, as in ggml, or codes on a rounding boundary would differ.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/quant/quantize.h"

namespace qkv::kernels::quant {

namespace {

// The value of largest magnitude (the first one on ties), with its sign.
float signed_amax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
}

}  // namespace

void quantize_q4_0(const float* x, int64_t n, BlockQ4_0* out) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = signed_amax(x) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[i].d = core::f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = x[j] * id, x1 = x[j + kQK / 2] * id;
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 8.5f)));
      out[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_q4_1(const float* x, int64_t n, BlockQ4_1* out) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float min, max;
    min_max(x, min, max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[i].d = core::f32_to_f16(d);
    out[i].m = core::f32_to_f16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = (x[j] - min) * id, x1 = (x[j + kQK / 2] - min) * id;
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 0.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 0.5f)));
      out[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_q5_0(const float* x, int64_t n, BlockQ5_0* out) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = signed_amax(x) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[i].d = core::f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = x[j] * id, x1 = x[j + kQK / 2] * id;
      const int q0 = std::min(31, static_cast<int>(static_cast<int8_t>(x0 + 16.5f)));
      const int q1 = std::min(31, static_cast<int>(static_cast<int8_t>(x1 + 16.5f)));
      out[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10) >> 4) << (j + kQK / 2);
    }
    std::memcpy(out[i].qh, &qh, 4);
  }
}

void quantize_q5_1(const float* x, int64_t n, BlockQ5_1* out) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float min, max;
    min_max(x, min, max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[i].d = core::f32_to_f16(d);
    out[i].m = core::f32_to_f16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = (x[j] - min) * id, x1 = (x[j + kQK / 2] - min) * id;
      const int q0 = static_cast<uint8_t>(x0 + 0.5f), q1 = static_cast<uint8_t>(x1 + 0.5f);
      out[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10) >> 4) << (j + kQK / 2);
    }
    std::memcpy(out[i].qh, &qh, 4);
  }
}

void quantize_q8_0(const float* x, int64_t n, BlockQ8_0* out) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[i].d = core::f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) out[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void quantize(QuantType t, const float* x, int64_t n, void* out) {
  switch (t) {
    case QuantType::q4_0:
      return quantize_q4_0(x, n, static_cast<BlockQ4_0*>(out));
    case QuantType::q4_1:
      return quantize_q4_1(x, n, static_cast<BlockQ4_1*>(out));
    case QuantType::q5_0:
      return quantize_q5_0(x, n, static_cast<BlockQ5_0*>(out));
    case QuantType::q5_1:
      return quantize_q5_1(x, n, static_cast<BlockQ5_1*>(out));
    case QuantType::q8_0:
      return quantize_q8_0(x, n, static_cast<BlockQ8_0*>(out));
    case QuantType::q2_k:
      return quantize_q2_k(x, n, static_cast<BlockQ2K*>(out));
    case QuantType::q3_k:
      return quantize_q3_k(x, n, static_cast<BlockQ3K*>(out));
    case QuantType::q4_k:
      return quantize_q4_k(x, n, static_cast<BlockQ4K*>(out));
    case QuantType::q5_k:
      return quantize_q5_k(x, n, static_cast<BlockQ5K*>(out));
    case QuantType::q6_k:
      return quantize_q6_k(x, n, static_cast<BlockQ6K*>(out));
    case QuantType::iq4_nl:
      return quantize_iq4_nl(x, n, static_cast<BlockIq4Nl*>(out));
    case QuantType::iq4_xs:
      return quantize_iq4_xs(x, n, static_cast<BlockIq4Xs*>(out));
  }
  core::throw_invalid("quantize: unknown block type ", static_cast<int>(t));
}

}  // namespace qkv::kernels::quant
