#include "model/blocks.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <vector>

#include "core/parallel.h"

namespace qkv::model {

namespace {

// Element-wise work below this many values runs on the calling thread: a parallel region costs
// a few microseconds, more than the loop itself (decode-sized rows).
constexpr int64_t kParallelMin = 1 << 15;

void for_chunks(int64_t count, int n_threads, const std::function<void(int64_t, int64_t)>& fn) {
  const int threads = core::resolve_threads(n_threads);
  if (count < kParallelMin || threads <= 1) {
    fn(0, count);
    return;
  }
  const int64_t chunk = 1 << 13;
  core::parallel_for_dynamic((count + chunk - 1) / chunk, threads, [&](int64_t c, int) {
    fn(c * chunk, std::min(count, (c + 1) * chunk));
  });
}

void for_rows(int64_t n, int64_t width, int n_threads,
              const std::function<void(int64_t, int64_t)>& fn) {
  const int threads = core::resolve_threads(n_threads);
  if (n * width < kParallelMin || threads <= 1) {
    fn(0, n);
    return;
  }
  const int64_t rows = std::max<int64_t>(1, (1 << 13) / std::max<int64_t>(width, 1));
  core::parallel_for_dynamic((n + rows - 1) / rows, threads,
                             [&](int64_t c, int) { fn(c * rows, std::min(n, (c + 1) * rows)); });
}

// exp(x) for float, written so the compiler vectorises it: 2^round(x log2 e) from the exponent
// bits times a degree-7 Taylor polynomial of e^g, |g| <= ln2 / 2 (relative error < 1e-7).
inline float exp_fast(float x) {
  // maxps/minps (std::fmin does not vectorise; these selects need -fno-trapping-math, see
  // CMakeLists.txt)
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float t = x * 1.44269504088896341f;
  const float r = (t + 12582912.0f) - 12582912.0f;  // round to nearest (|t| < 2^22)
  const float g = x - r * 0.693147180559945309f;
  float p = 1.0f / 5040.0f;
  p = p * g + 1.0f / 720.0f;
  p = p * g + 1.0f / 120.0f;
  p = p * g + 1.0f / 24.0f;
  p = p * g + 1.0f / 6.0f;
  p = p * g + 0.5f;
  p = p * g + 1.0f;
  p = p * g + 1.0f;
  const int32_t e = static_cast<int32_t>(r);
  return std::bit_cast<float>(std::bit_cast<int32_t>(p) + (e << 23));
}

// The element-wise loops, compiled for AVX2+FMA and for baseline x86-64 and picked at load
// time (the library is built without -march): 8-wide instead of 4-wide exp polynomials.
#define QKV_ELEMENTWISE __attribute__((target_clones("avx2,fma", "default")))

QKV_ELEMENTWISE void gelu_tanh_span(float* x, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = x[i];
    const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    // tanh(u) = 1 - 2 / (exp(2u) + 1); 0.5 v (1 + tanh(u)) = v - v / (exp(2u) + 1)
    x[i] = v - v / (exp_fast(2.0f * u) + 1.0f);
  }
}

// d gelu / dx = 0.5 (1 + t) + 0.5 v (1 - t²) u'(v), t = tanh(u), u' = s (1 + 3 a v²).
QKV_ELEMENTWISE void gelu_tanh_backward_span(const float* x, float* dy, int64_t begin,
                                             int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = x[i];
    const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    const float t = 1.0f - 2.0f / (exp_fast(2.0f * u) + 1.0f);
    const float du = 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * v * v);
    dy[i] *= 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
  }
}

QKV_ELEMENTWISE void gelu_tanh_mul_span(float* gate, const float* up, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = gate[i];
    const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    gate[i] = (v - v / (exp_fast(2.0f * u) + 1.0f)) * up[i];
  }
}

QKV_ELEMENTWISE void silu_mul_span(float* gate, const float* up, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + exp_fast(-g)) * up[i];
  }
}

}  // namespace

void layer_norm(const float* x, int64_t n, int64_t n_embd, const Norm& norm, float eps, float* out,
                int n_threads) {
  for_rows(n, n_embd, n_threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * n_embd;
      float* oi = out + i * n_embd;
      double sum = 0, sq = 0;
      for (int64_t j = 0; j < n_embd; ++j) sum += xi[j];
      const float mean = static_cast<float>(sum / static_cast<double>(n_embd));
      for (int64_t j = 0; j < n_embd; ++j) {
        const float d = xi[j] - mean;
        sq += static_cast<double>(d) * d;
      }
      const float inv = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(n_embd) + eps));
      const float* w = norm.w.data();
      const float* b = norm.b.empty() ? nullptr : norm.b.data();
      for (int64_t j = 0; j < n_embd; ++j) {
        oi[j] = (xi[j] - mean) * inv * w[j] + (b ? b[j] : 0.0f);
      }
    }
  });
}

void rms_norm(const float* x, int64_t n, int64_t n_embd, const Norm& norm, float eps, float* out,
              int n_threads) {
  for_rows(n, n_embd, n_threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * n_embd;
      float* oi = out + i * n_embd;
      double sq = 0;
      for (int64_t j = 0; j < n_embd; ++j) sq += static_cast<double>(xi[j]) * xi[j];
      const float inv = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(n_embd) + eps));
      const float* w = norm.w.data();
      for (int64_t j = 0; j < n_embd; ++j) oi[j] = xi[j] * inv * w[j];
    }
  });
}

void rope(float* x, int64_t n, int64_t ld, int64_t n_head, int64_t head_dim, int64_t pos0,
          std::span<const float> inv_freq, RopeStyle style) {
  if (style == RopeStyle::none) return;
  const int64_t half = head_dim / 2;
  std::vector<float> cs(static_cast<size_t>(2 * half));
  for (int64_t i = 0; i < n; ++i) {
    const float pos = static_cast<float>(pos0 + i);
    for (int64_t j = 0; j < half; ++j) {
      // The angle in fp32 as llama2.c and transformers compute it; cos/sin in double.
      const float angle = pos * inv_freq[static_cast<size_t>(j)];
      cs[static_cast<size_t>(2 * j)] = static_cast<float>(std::cos(static_cast<double>(angle)));
      cs[static_cast<size_t>(2 * j + 1)] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    for (int64_t h = 0; h < n_head; ++h) {
      float* v = x + i * ld + h * head_dim;
      for (int64_t j = 0; j < half; ++j) {
        const float c = cs[static_cast<size_t>(2 * j)], s = cs[static_cast<size_t>(2 * j + 1)];
        // interleaved: pairs (2j, 2j+1); half: pairs (j, j + head_dim/2)
        float* a = style == RopeStyle::interleaved ? v + 2 * j : v + j;
        float* b = style == RopeStyle::interleaved ? v + 2 * j + 1 : v + j + half;
        const float x0 = *a, x1 = *b;
        *a = x0 * c - x1 * s;
        *b = x0 * s + x1 * c;
      }
    }
  }
}

void gelu_tanh(float* x, int64_t count, int n_threads) {
  for_chunks(count, n_threads, [&](int64_t begin, int64_t end) { gelu_tanh_span(x, begin, end); });
}

void gelu_tanh_backward(const float* x, float* dy, int64_t count, int n_threads) {
  for_chunks(count, n_threads,
             [&](int64_t begin, int64_t end) { gelu_tanh_backward_span(x, dy, begin, end); });
}

void gelu_erf(float* x, int64_t count, int n_threads) {
  for_chunks(count, n_threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
    }
  });
}

void tanh_inplace(float* x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) x[i] = std::tanh(x[i]);
}

void gelu_tanh_mul(float* gate, const float* up, int64_t count, int n_threads) {
  for_chunks(count, n_threads,
             [&](int64_t begin, int64_t end) { gelu_tanh_mul_span(gate, up, begin, end); });
}

void silu_mul(float* gate, const float* up, int64_t count, int n_threads) {
  for_chunks(count, n_threads,
             [&](int64_t begin, int64_t end) { silu_mul_span(gate, up, begin, end); });
}

void add_inplace(float* x, const float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) x[i] += y[i];
}

}  // namespace qkv::model
