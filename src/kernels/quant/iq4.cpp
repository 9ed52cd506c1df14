// The 4-bit non-linear formats (IQ4_NL, IQ4_XS): scalar dequantizers. A 4-bit code indexes
// kIq4nlValues (blocks.h); the block (IQ4_NL) or sub-block (IQ4_XS) scale multiplies it.
#include "core/half.h"
#include "kernels/quant/dequant.h"

namespace qkv::kernels::quant {

void dequantize_iq4_nl(const BlockIq4Nl* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQK; ++i, out += kQK) {
    const float d = core::f16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      out[j] = d * kIq4nlValues[b[i].qs[j] & 0xF];
      out[j + kQK / 2] = d * kIq4nlValues[b[i].qs[j] >> 4];
    }
  }
}

void dequantize_iq4_xs(const BlockIq4Xs* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = core::f16_to_f32(b[i].d);
    const uint8_t* qs = b[i].qs;
    for (int s = 0; s < kQKK / 32; ++s, qs += 16, out += 32) {
      const int ls =
          ((b[i].scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((b[i].scales_h >> (2 * s)) & 3) << 4);
      const float dl = d * static_cast<float>(ls - 32);
      for (int j = 0; j < 16; ++j) {
        out[j] = dl * kIq4nlValues[qs[j] & 0xF];
        out[j + 16] = dl * kIq4nlValues[qs[j] >> 4];
      }
    }
  }
}

}  // namespace qkv::kernels::quant
