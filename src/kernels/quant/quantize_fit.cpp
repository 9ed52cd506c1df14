// Scale fitting for the K and IQ4 quantizers (quantize_fit.h).
#include "kernels/quant/quantize_fit.h"

namespace qkv::kernels::quant::fit {

namespace {

// Candidate scales put the value of largest magnitude at code end + k / 10 for k in
// [-kSteps, kSteps]: at the end of the range and up to one code either side of it, so both
// clipping the extreme value a little and spreading the codes a little are tried.
constexpr int kSteps = 10;

float signed_absmax(const float* x, int n) {
  float amax = 0.0f, m = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      m = x[i];
    }
  }
  return m;
}

}  // namespace

float fit_scale(const float* x, int n, int lo, int hi, int* q) {
  const float m = signed_absmax(x, n);
  // Codes 0 stand when no candidate has a finite error (values that are NaN or infinite).
  std::fill(q, q + n, 0);
  if (m == 0.0f) return 0.0f;
  int cand[256];
  // Least squares: for codes q the best d is sum(xq) / sum(qq) and the error sum(xx) minus
  // sum(xq)^2 / sum(qq), so the best candidate maximises sum(xq)^2 / sum(qq).
  double best_num = -1.0, best_den = 1.0;
  float best_d = 0.0f;
  auto consider = [&](float inv) {
    double sxq = 0.0, sqq = 0.0;
    for (int i = 0; i < n; ++i) {
      cand[i] = round_clamp(x[i] * inv, lo, hi);
      sxq += static_cast<double>(x[i]) * cand[i];
      sqq += static_cast<double>(cand[i]) * cand[i];
    }
    if (sqq > 0.0 && sxq * sxq * best_den > best_num * sqq) {
      best_num = sxq * sxq;
      best_den = sqq;
      best_d = static_cast<float>(sxq / sqq);
      std::copy(cand, cand + n, q);
    }
  };
  for (const int end : {lo, hi}) {
    for (int k = -kSteps; k <= kSteps; ++k) {
      const float c = static_cast<float>(end) + 0.1f * static_cast<float>(k);
      if (c * static_cast<float>(end) <= 0.0f) continue;
      consider(c / m);
    }
  }
  // A few rounds of re-rounding at the fitted scale (never worse: a candidate only wins when its
  // error is lower).
  for (int it = 0; it < 3 && best_d != 0.0f; ++it) consider(1.0f / best_d);
  return best_d;
}

void fit_scale_min(const float* x, int n, int hi, float& s, float& m, int* q) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  mn = std::min(mn, 0.0f);
  s = 0.0f;
  m = -mn;
  std::fill(q, q + n, 0);
  if (mx == mn) return;  // every x equal to mn <= 0: x = -m exactly
  double best_err = 0.0;
  for (int i = 0; i < n; ++i) best_err += static_cast<double>(x[i] - mn) * (x[i] - mn);
  int cand[256];
  // Codes -> the least-squares (s, b) of x ~ s q + b with b <= 0; keep it if its error is lower.
  auto consider = [&](float inv, float offset) {
    double sq = 0.0, sqq = 0.0, sx = 0.0, sxq = 0.0;
    for (int i = 0; i < n; ++i) {
      cand[i] = round_clamp((x[i] - offset) * inv, 0, hi);
      sq += cand[i];
      sqq += static_cast<double>(cand[i]) * cand[i];
      sx += x[i];
      sxq += static_cast<double>(x[i]) * cand[i];
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0.0) return;
    double fs = (n * sxq - sq * sx) / det;
    double fb = (sqq * sx - sq * sxq) / det;
    if (fb > 0.0) {
      fb = 0.0;
      fs = sxq / sqq;
    }
    if (fs <= 0.0) return;
    double err = 0.0;
    for (int i = 0; i < n; ++i) {
      const double e = fs * cand[i] + fb - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      s = static_cast<float>(fs);
      m = static_cast<float>(-fb);
      std::copy(cand, cand + n, q);
    }
  };
  for (int k = -kSteps; k <= kSteps; ++k) {
    const float c = static_cast<float>(hi) + 0.1f * static_cast<float>(k);
    if (c <= 0.0f) continue;
    consider(c / (mx - mn), mn);
  }
  for (int it = 0; it < 3 && s > 0.0f; ++it) consider(1.0f / s, -m);
}

int nearest_in_grid(const int8_t* grid, float v) {
  // Binary search over the 15 midpoints between neighbours.
  int lo = 0, hi = 15;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (v > 0.5f * static_cast<float>(grid[mid] + grid[mid + 1])) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

float fit_grid(const float* x, int n, const int8_t* grid, int* q) {
  const float m = signed_absmax(x, n);
  // The code of the grid value nearest zero stands when m is 0 (scale 0: every value decodes to
  // 0) or no candidate has a finite error (values that are NaN or infinite).
  std::fill(q, q + n, nearest_in_grid(grid, 0.0f));
  if (m == 0.0f) return 0.0f;
  int cand[256];
  double best_num = -1.0, best_den = 1.0;
  float best_d = 0.0f;
  auto consider = [&](float inv) {
    double sxv = 0.0, svv = 0.0;
    for (int i = 0; i < n; ++i) {
      cand[i] = nearest_in_grid(grid, x[i] * inv);
      const double v = grid[cand[i]];
      sxv += x[i] * v;
      svv += v * v;
    }
    if (svv > 0.0 && sxv * sxv * best_den > best_num * svv) {
      best_num = sxv * sxv;
      best_den = svv;
      best_d = static_cast<float>(sxv / svv);
      std::copy(cand, cand + n, q);
    }
  };
  // The grid's ends are -127 and 113: put the extreme value near either, steps of one unit
  // (about a tenth of the spacing of the outer codes).
  for (const int end : {static_cast<int>(grid[0]), static_cast<int>(grid[15])}) {
    for (int k = -kSteps; k <= kSteps; ++k) {
      const float c = static_cast<float>(end + k);
      if (c * static_cast<float>(end) <= 0.0f) continue;
      consider(c / m);
    }
  }
  for (int it = 0; it < 3 && best_d != 0.0f; ++it) consider(1.0f / best_d);
  return best_d;
}

}  // namespace qkv::kernels::quant::fit
