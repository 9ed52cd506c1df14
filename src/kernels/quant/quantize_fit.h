// Scale fitting shared by the K and IQ4 quantizers (quantize_k.cpp, quantize_iq4.cpp): for a
// small group of values, the scale (and offset) that minimise the squared error of the rounded
// codes. Our own search, without an importance matrix: every candidate scale rounds the values to
// codes, the scale (and offset) are then re-fitted to those codes by least squares, and the
// candidate with the least squared error wins. Plain squared error is the measure the quantizers
// are judged by (per-tensor RMSE against llama-quantize's, docs/QUANTIZATION.md).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace qkv::kernels::quant::fit {

// round-to-nearest (ties to even), clamped to [lo, hi].
inline int round_clamp(float v, int lo, int hi) {
  const float r = std::nearbyint(v);
  if (!(r >= static_cast<float>(lo))) return lo;  // also NaN
  if (r > static_cast<float>(hi)) return hi;
  return static_cast<int>(r);
}

// x[0, n) ~ d * q with integer codes q in [lo, hi] (lo < 0 < hi). Returns d (0 when every x is 0)
// and the codes in q.
float fit_scale(const float* x, int n, int lo, int hi, int* q);

// x[0, n) ~ s * q - m with codes q in [0, hi], s >= 0 and m >= 0 (the offset is never above
// zero, as the formats' unsigned mins require). Returns the codes in q.
void fit_scale_min(const float* x, int n, int hi, float& s, float& m, int* q);

// x[0, n) ~ d * grid[q], q in [0, 16), grid ascending (kIq4nlValues). Returns d and the codes.
float fit_grid(const float* x, int n, const int8_t* grid, int* q);

// The index of the grid value nearest to v (grid ascending, 16 values).
int nearest_in_grid(const int8_t* grid, float v);

}  // namespace qkv::kernels::quant::fit
