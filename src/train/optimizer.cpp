#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace qkv::learn {

double learning_rate(int64_t step, int64_t steps, int64_t warmup, double lr, double min_lr) {
  if (warmup > 0 && step < warmup) {
    return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  }
  const int64_t decay_steps = steps - warmup;
  if (decay_steps <= 1) return lr;
  double progress = static_cast<double>(step - warmup) / static_cast<double>(decay_steps - 1);
  progress = std::min(1.0, std::max(0.0, progress));
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

double clip_grad_norm(std::vector<float>& grads, double max_norm) {
  double sum = 0;
  for (float g : grads) sum += static_cast<double>(g) * g;
  const double norm = std::sqrt(sum);
  if (max_norm > 0 && norm > max_norm) {
    const auto scale = static_cast<float>(max_norm / (norm + 1e-6));
    for (float& g : grads) g *= scale;
  }
  return norm;
}

AdamW::AdamW(int64_t n_params, const AdamWOptions& options)
    : options_(options),
      m_(static_cast<size_t>(n_params), 0.f),
      v_(static_cast<size_t>(n_params), 0.f) {}

void AdamW::update(std::vector<float>& params, const std::vector<float>& grads,
                   const std::vector<ParamTensor>& tensors, double lr) {
  if (params.size() != grads.size() || params.size() != m_.size()) {
    core::throw_invalid("AdamW: ", params.size(), " parameters, ", grads.size(), " gradients, ",
                        m_.size(), " optimizer moments");
  }
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double c2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  const auto fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
  const auto step_size = static_cast<float>(lr / c1);
  const auto inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(c2));
  const auto eps = static_cast<float>(options_.eps);
  for (const ParamTensor& t : tensors) {
    const float decay = t.decay ? static_cast<float>(lr * options_.weight_decay) : 0.f;
    float* p = params.data() + t.offset;
    const float* g = grads.data() + t.offset;
    float* m = m_.data() + t.offset;
    float* v = v_.data() + t.offset;
    for (int64_t i = 0; i < t.size; ++i) {
      m[i] = fb1 * m[i] + (1.f - fb1) * g[i];
      v[i] = fb2 * v[i] + (1.f - fb2) * g[i] * g[i];
      p[i] -= decay * p[i];
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + eps);
    }
  }
}

}  // namespace qkv::learn
