// Quantizers of the non-linear 4-bit formats (IQ4_NL, IQ4_XS), our own: each block of 32 gets
// the least-squares scale for the grid kIq4nlValues (quantize_fit.h); IQ4_XS then quantizes the
// eight sub-block scales to 6-bit integers times an f16 d and lets each sub-block pick, among its
// rounded integer scale and the two beside it, the one with the least squared error.
#include <cstring>

#include "core/half.h"
#include "kernels/quant/quantize.h"
#include "kernels/quant/quantize_fit.h"

namespace qkv::kernels::quant {

namespace {

void pack_nibbles(const int* q, uint8_t* qs) {
  for (int j = 0; j < kQK / 2; ++j) qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK / 2] << 4));
}

}  // namespace

void quantize_iq4_nl(const float* x, int64_t n, BlockIq4Nl* out) {
  int q[kQK];
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = fit::fit_grid(x, kQK, kIq4nlValues, q);
    out[i].d = core::f32_to_f16(d);
    const float df = core::f16_to_f32(out[i].d);
    // Re-round at the stored scale.
    if (df != 0.0f && std::isfinite(df)) {
      for (int j = 0; j < kQK; ++j) q[j] = fit::nearest_in_grid(kIq4nlValues, x[j] / df);
    } else {
      out[i].d = 0;
    }
    pack_nibbles(q, out[i].qs);
  }
}

void quantize_iq4_xs(const float* x, int64_t n, BlockIq4Xs* out) {
  constexpr int kSub = kQKK / kQK;
  int q[kQKK], codes[kQK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float d[kSub], m = 0.0f;
    for (int s = 0; s < kSub; ++s) {
      d[s] = fit::fit_grid(x + kQK * s, kQK, kIq4nlValues, q + kQK * s);
      if (std::fabs(d[s]) > std::fabs(m)) m = d[s];
    }
    // Sub-block scales in [-32, 31]; the largest in magnitude at -32.
    out[i].d = core::f32_to_f16(m / -32.0f);
    float D = core::f16_to_f32(out[i].d);
    if (!std::isfinite(D)) {
      out[i].d = 0;
      D = 0.0f;
    }
    const int zero_code = fit::nearest_in_grid(kIq4nlValues, 0.0f);
    out[i].scales_h = 0;
    std::memset(out[i].scales_l, 0, sizeof(out[i].scales_l));
    for (int s = 0; s < kSub; ++s) {
      const float* xs = x + kQK * s;
      int* qs = q + kQK * s;
      int best_ls = 0;
      double best = 0.0;
      for (int j = 0; j < kQK; ++j) best += static_cast<double>(xs[j]) * xs[j];
      std::fill(qs, qs + kQK, zero_code);
      if (D != 0.0f) {
        const int l0 = fit::round_clamp(d[s] / D, -32, 31);
        for (int ls = std::max(-32, l0 - 1); ls <= std::min(31, l0 + 1); ++ls) {
          if (ls == 0) continue;
          const float dl = D * static_cast<float>(ls);
          double err = 0.0;
          for (int j = 0; j < kQK; ++j) {
            codes[j] = fit::nearest_in_grid(kIq4nlValues, xs[j] / dl);
            const double e = dl * kIq4nlValues[codes[j]] - xs[j];
            err += e * e;
          }
          if (err < best) {
            best = err;
            best_ls = ls;
            std::copy(codes, codes + kQK, qs);
          }
        }
      }
      const int v = best_ls + 32;
      out[i].scales_l[s / 2] |= static_cast<uint8_t>((v & 0xF) << (4 * (s % 2)));
      out[i].scales_h |= static_cast<uint16_t>((v >> 4) << (2 * s));
      pack_nibbles(qs, out[i].qs + (kQK / 2) * s);
    }
  }
}

}  // namespace qkv::kernels::quant
