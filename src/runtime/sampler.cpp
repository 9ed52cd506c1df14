// Sampler: repetition penalty, temperature, top-k, softmax, top-p, min-p, seeded draw
// (include/qkv/session.h). The order and the penalty rule follow llama.cpp's samplers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "qkv/session.h"

namespace qkv {

namespace {

void validate(const SamplingParams& p) {
  using core::throw_invalid;
  if (!std::isfinite(p.temperature) || p.temperature < 0) {
    throw_invalid("sampling: temperature = ", p.temperature,
                  "; expected a finite value >= 0 (0 = greedy)");
  }
  if (p.top_k < 0) throw_invalid("sampling: top_k = ", p.top_k, "; expected >= 0 (0 = off)");
  if (!(p.top_p > 0 && p.top_p <= 1)) {
    throw_invalid("sampling: top_p = ", p.top_p, "; expected a value in (0, 1] (1 = off)");
  }
  if (!(p.min_p >= 0 && p.min_p <= 1)) {
    throw_invalid("sampling: min_p = ", p.min_p, "; expected a value in [0, 1] (0 = off)");
  }
  if (!std::isfinite(p.repeat_penalty) || p.repeat_penalty <= 0) {
    throw_invalid("sampling: repeat_penalty = ", p.repeat_penalty,
                  "; expected a finite value > 0 (1 = off)");
  }
  if (p.repeat_last_n < 0) {
    throw_invalid("sampling: repeat_last_n = ", p.repeat_last_n, "; expected >= 0");
  }
}

// First index of the largest value (ties go to the lowest id, as llama2.c's argmax).
int32_t argmax(const std::vector<float>& x) {
  return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
}

}  // namespace

struct Sampler::Impl {
  SamplingParams params;
  std::mt19937_64 rng;
  std::vector<float> logits;   // [n_vocab] working copy
  std::vector<int32_t> order;  // candidate ids, best first
  std::vector<double> probs;   // [candidates]

  // A uniform double in [0, 1) from the top 53 bits: unlike std::uniform_real_distribution,
  // the same on every standard library, so a seed gives the same tokens everywhere.
  double uniform() { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
};

Sampler::Sampler(SamplingParams params) : impl_(std::make_unique<Impl>()) {
  validate(params);
  impl_->params = params;
  impl_->rng.seed(params.seed);
}

Sampler::~Sampler() = default;
Sampler::Sampler(Sampler&&) noexcept = default;
Sampler& Sampler::operator=(Sampler&&) noexcept = default;

int32_t Sampler::sample(std::span<const float> logits_in, std::span<const int32_t> history) {
  Impl& s = *impl_;
  const SamplingParams& p = s.params;
  const auto n_vocab = static_cast<int64_t>(logits_in.size());
  if (n_vocab == 0) core::throw_invalid("Sampler::sample: logits are empty");
  s.logits.assign(logits_in.begin(), logits_in.end());

  // Repetition penalty over the distinct ids among the last repeat_last_n tokens.
  if (p.repeat_penalty != 1.f && p.repeat_last_n > 0 && !history.empty()) {
    const size_t n = std::min(history.size(), static_cast<size_t>(p.repeat_last_n));
    std::unordered_set<int32_t> seen;
    for (int32_t id : history.subspan(history.size() - n)) {
      if (id < 0 || id >= n_vocab) {
        core::throw_invalid("Sampler::sample: history token ", id, " is outside [0, ", n_vocab,
                            ")");
      }
      if (!seen.insert(id).second) continue;
      float& l = s.logits[static_cast<size_t>(id)];
      l = l > 0 ? l / p.repeat_penalty : l * p.repeat_penalty;
    }
  }

  if (p.temperature == 0) return argmax(s.logits);

  // Candidates sorted by logit, best first (ties: lower id first, so the order is the same
  // on every platform); top-k keeps the first k.
  const int64_t k = p.top_k > 0 ? std::min<int64_t>(p.top_k, n_vocab) : n_vocab;
  s.order.resize(static_cast<size_t>(n_vocab));
  std::iota(s.order.begin(), s.order.end(), 0);
  const auto better = [&](int32_t a, int32_t b) {
    const float la = s.logits[static_cast<size_t>(a)], lb = s.logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::partial_sort(s.order.begin(), s.order.begin() + k, s.order.end(), better);
  s.order.resize(static_cast<size_t>(k));

  // Softmax at the temperature, in double so that long tails sum exactly enough for top-p.
  const double inv_t = 1.0 / p.temperature;
  const double max_l = s.logits[static_cast<size_t>(s.order[0])];
  s.probs.resize(s.order.size());
  double sum = 0;
  for (size_t i = 0; i < s.order.size(); ++i) {
    s.probs[i] = std::exp((s.logits[static_cast<size_t>(s.order[i])] - max_l) * inv_t);
    sum += s.probs[i];
  }
  for (double& q : s.probs) q /= sum;

  // top-p: the shortest prefix whose mass reaches top_p (at least one token).
  size_t keep = s.probs.size();
  if (p.top_p < 1) {
    double cum = 0;
    for (size_t i = 0; i < s.probs.size(); ++i) {
      cum += s.probs[i];
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  // min-p: tokens at least min_p times as likely as the best one (probs[0]).
  if (p.min_p > 0) {
    const double floor = p.min_p * s.probs[0];
    size_t i = 1;
    while (i < keep && s.probs[i] >= floor) ++i;
    keep = i;
  }

  double mass = 0;
  for (size_t i = 0; i < keep; ++i) mass += s.probs[i];
  const double u = s.uniform() * mass;
  double cum = 0;
  for (size_t i = 0; i < keep; ++i) {
    cum += s.probs[i];
    if (u < cum) return s.order[i];
  }
  return s.order[keep - 1];  // u rounded up to the full mass
}

}  // namespace qkv
