// AdamW with decoupled weight decay, global gradient-norm clipping and a warm-up + cosine
// learning-rate schedule.
#pragma once

#include <cstdint>
#include <vector>

#include "train/gpt.h"

namespace qkv::learn {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // on tensors with ParamTensor::decay (matrices, embeddings)
};

// Learning rate at `step` (0-based) of `steps`: linear warm-up from lr / warmup to lr over
// `warmup` steps, then cosine decay to min_lr at the last step.
double learning_rate(int64_t step, int64_t steps, int64_t warmup, double lr, double min_lr);

// Scales `grads` so their global L2 norm is at most max_norm (no-op for max_norm <= 0).
// Returns the norm before clipping.
double clip_grad_norm(std::vector<float>& grads, double max_norm);

class AdamW {
 public:
  AdamW() = default;
  AdamW(int64_t n_params, const AdamWOptions& options);

  // One update of params from grads with learning rate lr; increments step().
  void update(std::vector<float>& params, const std::vector<float>& grads,
              const std::vector<ParamTensor>& tensors, double lr);

  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  std::vector<float>& m() { return m_; }  // first moments
  std::vector<float>& v() { return v_; }  // second moments
  const AdamWOptions& options() const { return options_; }

 private:
  AdamWOptions options_;
  std::vector<float> m_, v_;
  int64_t step_ = 0;
};

}  // namespace qkv::learn
