// Quantizers of the K formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), our own: each sub-block gets the
// least-squares scale (and min) of quantize_fit.h; the sub-block scales are then quantized to the
// format's integer scales times an f16 super-block scale, and each sub-block picks, among its
// rounded integer scale and the two beside it, the one whose re-rounded codes give the least
// squared error as the dequantizer computes the values (dequant.h: (d * scale) * q - dmin * min,
// in float). Byte layouts: blocks.h.
#include <cstring>

#include "core/half.h"
#include "kernels/quant/quantize.h"
#include "kernels/quant/quantize_fit.h"

namespace qkv::kernels::quant {

namespace {

using fit::round_clamp;

struct Scaled {
  uint16_t d = 0;  // f16 super-block scale
  float df = 0.0f;
};

Scaled f16_scale(float v) {
  Scaled s;
  s.d = core::f32_to_f16(v);
  s.df = core::f16_to_f32(s.d);
  if (!std::isfinite(s.df)) {
    s.d = 0;
    s.df = 0.0f;
  }
  return s;
}

// Symmetric formats (Q3_K, Q6_K): x ~ (d * sc) * q, codes in [qlo, qhi], sub-block scales sc in
// [slo, shi] (slo < 0 < shi).
struct SymSpec {
  int sub, qlo, qhi, slo, shi;
};

// One super-block of 256 values -> the f16 d, the 256 / sub scales, the 256 codes.
uint16_t quantize_symmetric(const float* x, const SymSpec& p, int* sc, int* q) {
  const int nsub = kQKK / p.sub;
  float d[kQKK / 16];
  float m = 0.0f;
  for (int j = 0; j < nsub; ++j) {
    d[j] = fit::fit_scale(x + j * p.sub, p.sub, p.qlo, p.qhi, q + j * p.sub);
    if (std::fabs(d[j]) > std::fabs(m)) m = d[j];
  }
  // The sub-scale of largest magnitude goes to the far (negative) end of the integer range.
  const Scaled D = f16_scale(m / static_cast<float>(p.slo));
  int codes[kQKK / 16 > 32 ? kQKK / 16 : 32];
  for (int j = 0; j < nsub; ++j) {
    const float* xj = x + j * p.sub;
    int* qj = q + j * p.sub;
    sc[j] = 0;
    std::fill(qj, qj + p.sub, 0);
    if (D.df == 0.0f) continue;
    double best = 0.0;
    for (int i = 0; i < p.sub; ++i) best += static_cast<double>(xj[i]) * xj[i];
    const int s0 = round_clamp(d[j] / D.df, p.slo, p.shi);
    for (int s = std::max(p.slo, s0 - 1); s <= std::min(p.shi, s0 + 1); ++s) {
      if (s == 0) continue;
      const float dl = D.df * static_cast<float>(s);
      double err = 0.0;
      for (int i = 0; i < p.sub; ++i) {
        codes[i] = round_clamp(xj[i] / dl, p.qlo, p.qhi);
        const double e = dl * static_cast<float>(codes[i]) - xj[i];
        err += e * e;
      }
      if (err < best) {
        best = err;
        sc[j] = s;
        std::copy(codes, codes + p.sub, qj);
      }
    }
  }
  return D.d;
}

// Formats with mins (Q2_K, Q4_K, Q5_K): x ~ (d * sc) * q - dmin * mn, codes in [0, qhi], sc and
// mn in [0, smax].
struct AffSpec {
  int sub, qhi, smax;
};

void quantize_affine(const float* x, const AffSpec& p, uint16_t& d_out, uint16_t& dmin_out, int* sc,
                     int* mn, int* q) {
  const int nsub = kQKK / p.sub;
  float s[kQKK / 16], m[kQKK / 16];
  float smax = 0.0f, mmax = 0.0f;
  for (int j = 0; j < nsub; ++j) {
    fit::fit_scale_min(x + j * p.sub, p.sub, p.qhi, s[j], m[j], q + j * p.sub);
    smax = std::max(smax, s[j]);
    mmax = std::max(mmax, m[j]);
  }
  const Scaled D = f16_scale(smax / static_cast<float>(p.smax));
  const Scaled Dm = f16_scale(mmax / static_cast<float>(p.smax));
  d_out = D.d;
  dmin_out = Dm.d;
  int codes[32];
  for (int j = 0; j < nsub; ++j) {
    const float* xj = x + j * p.sub;
    int* qj = q + j * p.sub;
    const int s0 = D.df > 0.0f ? round_clamp(s[j] / D.df, 0, p.smax) : 0;
    const int m0 = Dm.df > 0.0f ? round_clamp(m[j] / Dm.df, 0, p.smax) : 0;
    double best = -1.0;
    for (int si = std::max(0, s0 - 1); si <= std::min(p.smax, s0 + 1); ++si) {
      for (int mi = std::max(0, m0 - 1); mi <= std::min(p.smax, m0 + 1); ++mi) {
        const float dl = D.df * static_cast<float>(si);
        const float ml = Dm.df * static_cast<float>(mi);
        double err = 0.0;
        for (int i = 0; i < p.sub; ++i) {
          codes[i] = dl > 0.0f ? round_clamp((xj[i] + ml) / dl, 0, p.qhi) : 0;
          const double e = (dl * static_cast<float>(codes[i]) - ml) - xj[i];
          err += e * e;
        }
        if (best < 0.0 || err < best) {
          best = err;
          sc[j] = si;
          mn[j] = mi;
          std::copy(codes, codes + p.sub, qj);
        }
      }
    }
  }
}

// Q4_K / Q5_K: 8 6-bit scales and mins into 12 bytes (the inverse of k_scale_min).
void pack_k_scales(const int* sc, const int* mn, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
}

// Q2_K / Q3_K: the low two bits of value e (0..255) go to qs[32 h + 16 p + l] at bit 2 g, where
// e = 128 h + 32 g + 16 p + l (blocks.h).
void pack_2bit(const int* u, uint8_t* qs) {
  std::memset(qs, 0, kQKK / 4);
  for (int e = 0; e < kQKK; ++e) {
    const int h = e / 128, g = (e / 32) % 4, pl = e % 32;
    qs[32 * h + pl] |= static_cast<uint8_t>((u[e] & 3) << (2 * g));
  }
}

}  // namespace

void quantize_q2_k(const float* x, int64_t n, BlockQ2K* out) {
  int sc[16], mn[16], q[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    quantize_affine(x, {16, 3, 15}, out[i].d, out[i].dmin, sc, mn, q);
    for (int j = 0; j < 16; ++j) out[i].scales[j] = static_cast<uint8_t>(sc[j] | (mn[j] << 4));
    pack_2bit(q, out[i].qs);
  }
}

void quantize_q3_k(const float* x, int64_t n, BlockQ3K* out) {
  int sc[16], q[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    out[i].d = quantize_symmetric(x, {16, -4, 3, -32, 31}, sc, q);
    // Stored as q + 4: two low bits in qs, the third in hmask (set: no -4).
    int u[kQKK];
    for (int e = 0; e < kQKK; ++e) u[e] = q[e] + 4;
    pack_2bit(u, out[i].qs);
    std::memset(out[i].hmask, 0, sizeof(out[i].hmask));
    for (int e = 0; e < kQKK; ++e) {
      const int h = e / 128, g = (e / 32) % 4, pl = e % 32;
      if (u[e] & 4) out[i].hmask[pl] |= static_cast<uint8_t>(1u << (4 * h + g));
    }
    // Scales stored + 32 (6 bits): low nibbles in bytes 0..7, high 2 bits in bytes 8..11.
    std::memset(out[i].scales, 0, sizeof(out[i].scales));
    for (int s = 0; s < 16; ++s) {
      const int v = sc[s] + 32;
      out[i].scales[s % 8] |= static_cast<uint8_t>((v & 0xF) << (4 * (s / 8)));
      out[i].scales[8 + s % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (s / 4)));
    }
  }
}

void quantize_q4_k(const float* x, int64_t n, BlockQ4K* out) {
  int sc[8], mn[8], q[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    quantize_affine(x, {32, 15, 63}, out[i].d, out[i].dmin, sc, mn, q);
    pack_k_scales(sc, mn, out[i].scales);
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 32; ++l) {
        out[i].qs[32 * j + l] = static_cast<uint8_t>(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
      }
    }
  }
}

void quantize_q5_k(const float* x, int64_t n, BlockQ5K* out) {
  int sc[8], mn[8], q[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    quantize_affine(x, {32, 31, 63}, out[i].d, out[i].dmin, sc, mn, q);
    pack_k_scales(sc, mn, out[i].scales);
    std::memset(out[i].qh, 0, sizeof(out[i].qh));
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 32; ++l) {
        const int lo = q[64 * j + l], hi = q[64 * j + 32 + l];
        out[i].qs[32 * j + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        out[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1)));
      }
    }
  }
}

void quantize_q6_k(const float* x, int64_t n, BlockQ6K* out) {
  int sc[16], q[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    out[i].d = quantize_symmetric(x, {16, -32, 31, -128, 127}, sc, q);
    for (int s = 0; s < 16; ++s) out[i].scales[s] = static_cast<int8_t>(sc[s]);
    // Per half of 128: value l (+ 32 k) -> low nibble of ql[l] (k = 0), of ql[l + 32] (k = 1),
    // high nibble of ql[l] (k = 2), of ql[l + 32] (k = 3); its top two bits in qh[l] at 2 k.
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = out[i].ql + 64 * h;
      uint8_t* qh = out[i].qh + 32 * h;
      const int* qq = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        int u[4];
        for (int k = 0; k < 4; ++k) u[k] = qq[l + 32 * k] + 32;
        ql[l] = static_cast<uint8_t>((u[0] & 0xF) | ((u[2] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((u[1] & 0xF) | ((u[3] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((u[0] >> 4) | ((u[1] >> 4) << 2) | ((u[2] >> 4) << 4) |
                                     ((u[3] >> 4) << 6));
      }
    }
  }
}

}  // namespace qkv::kernels::quant
