// The shared blocks of the forward passes: norms, RoPE, activations, residual adds.
// Rows are tokens; `ld` is the distance between rows in floats.
#pragma once

#include <cstdint>
#include <span>

#include "model/model_impl.h"

namespace qkv::model {

// out[i] = (x[i] - mean) / sqrt(var + eps) * w + b, per row of n_embd. out may be x.
void layer_norm(const float* x, int64_t n, int64_t n_embd, const Norm& norm, float eps, float* out,
                int n_threads);
// out[i] = x[i] / sqrt(mean(x^2) + eps) * w. out may be x.
void rms_norm(const float* x, int64_t n, int64_t n_embd, const Norm& norm, float eps, float* out,
              int n_threads);
// Rotates `n_head` heads of `head_dim` in each of n rows (row i at position pos0 + i), in place.
// x rows are ld floats apart, heads head_dim apart.
void rope(float* x, int64_t n, int64_t ld, int64_t n_head, int64_t head_dim, int64_t pos0,
          std::span<const float> inv_freq, RopeStyle style);

// In place over n * width values (rows dense).
void gelu_tanh(float* x, int64_t count, int n_threads);  // GPT-2 "gelu_new"
// Training: dy[i] *= gelu_tanh'(x[i]).
void gelu_tanh_backward(const float* x, float* dy, int64_t count, int n_threads);
void gelu_erf(float* x, int64_t count, int n_threads);  // BERT "gelu"
void tanh_inplace(float* x, int64_t count);
// gate[i] = gelu_tanh(gate[i]) * up[i] (Gemma's GeGLU)
void gelu_tanh_mul(float* gate, const float* up, int64_t count, int n_threads);
// gate[i] = silu(gate[i]) * up[i] (SwiGLU)
void silu_mul(float* gate, const float* up, int64_t count, int n_threads);
// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t count);

}  // namespace qkv::model
