// The K block formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): scalar dequantizers. Super-blocks of 256
// values; each 16- or 32-value sub-block has its own scale (and min), scaled by the f16 d (dmin).
// Built with -ffp-contract=off (CMakeLists.txt): `dl * q - ml` must round twice, as ggml's does,
// and products associate as written ((d * scale) * q).
#include <cstring>

#include "core/half.h"
#include "kernels/quant/dequant.h"

namespace qkv::kernels::quant {

void dequantize_q2_k(const BlockQ2K* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = core::f16_to_f32(b[i].d);
    const float dmin = core::f16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    int s = 0;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part, ++s, out += 16) {
          const uint8_t sc = b[i].scales[s];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = dmin * static_cast<float>(sc >> 4);
          const uint8_t* qp = q + 16 * part;
          for (int l = 0; l < 16; ++l) {
            out[l] = dl * static_cast<float>((qp[l] >> shift) & 3) - ml;
          }
        }
      }
    }
  }
}

void q3_k_scales(const uint8_t* packed, int8_t* scales) {
  // Bytes 0..7: the low 4 bits of scales 0..7 (low nibbles) and 8..15 (high nibbles); bytes
  // 8..11: the high 2 bits, scale s in byte 8 + s % 4 at bit 2 * (s / 4).
  for (int s = 0; s < 16; ++s) {
    const int lo = (packed[s % 8] >> (4 * (s / 8))) & 0xF;
    const int hi = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
    scales[s] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

void dequantize_q3_k(const BlockQ3K* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = core::f16_to_f32(b[i].d);
    int8_t scales[16];
    q3_k_scales(b[i].scales, scales);
    const uint8_t* q = b[i].qs;
    const uint8_t* hm = b[i].hmask;
    int s = 0;
    uint8_t mask = 1;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, mask <<= 1) {
        for (int part = 0; part < 2; ++part, ++s, out += 16) {
          const float dl = d * static_cast<float>(scales[s]);
          const uint8_t* qp = q + 16 * part;
          const uint8_t* hp = hm + 16 * part;
          for (int l = 0; l < 16; ++l) {
            const int v = ((qp[l] >> shift) & 3) - ((hp[l] & mask) ? 0 : 4);
            out[l] = dl * static_cast<float>(v);
          }
        }
      }
    }
  }
}

void dequantize_q4_k(const BlockQ4K* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = core::f16_to_f32(b[i].d);
    const float dmin = core::f16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 4; ++j, q += 32, out += 64) {
      uint8_t sc, m;
      k_scale_min(2 * j, b[i].scales, sc, m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      k_scale_min(2 * j + 1, b[i].scales, sc, m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) out[l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) out[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const BlockQ5K* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = core::f16_to_f32(b[i].d);
    const float dmin = core::f16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    const uint8_t* qh = b[i].qh;
    for (int j = 0; j < 4; ++j, q += 32, out += 64) {
      uint8_t sc, m;
      k_scale_min(2 * j, b[i].scales, sc, m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      k_scale_min(2 * j + 1, b[i].scales, sc, m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      const uint8_t u1 = static_cast<uint8_t>(1u << (2 * j)),
                    u2 = static_cast<uint8_t>(2u << (2 * j));
      for (int l = 0; l < 32; ++l) {
        out[l] = d1 * static_cast<float>((q[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        out[32 + l] = d2 * static_cast<float>((q[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      }
    }
  }
}

void dequantize_q6_k(const BlockQ6K* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = core::f16_to_f32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, out += 128) {
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        out[l] = d * static_cast<float>(sc[s]) * static_cast<float>(q1);
        out[l + 32] = d * static_cast<float>(sc[s + 2]) * static_cast<float>(q2);
        out[l + 64] = d * static_cast<float>(sc[s + 4]) * static_cast<float>(q3);
        out[l + 96] = d * static_cast<float>(sc[s + 6]) * static_cast<float>(q4);
      }
    }
  }
}

}  // namespace qkv::kernels::quant
