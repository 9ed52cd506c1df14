// Helpers for the model tests: an observer that records named activations and exact attention
// probabilities, and error measures.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "qkv/attention.h"
#include "qkv/observer.h"

namespace qkv::test {

// Records every activation (keyed "name" or "name.l<layer>") and, per layer, the attention
// probabilities [n_head, n_q, n_kv] recomputed from the kernel's log-sum-exp.
class Recorder : public Observer {
 public:
  bool wants_activations() override { return true; }
  void on_activation(const ActivationEvent& e) override {
    const std::string key =
        e.layer >= 0 ? std::string(e.name) + ".l" + std::to_string(e.layer) : std::string(e.name);
    acts[key].assign(e.data, e.data + e.n_rows * e.width);
  }
  bool wants_attention(int) override { return true; }
  void on_attention(const AttentionEvent& e) override {
    const int64_t n_q = e.q.shape[1], n_head = e.q.shape[2], n_kv = e.k.shape[1];
    std::vector<float>& p = probs[e.layer];
    p.assign(static_cast<size_t>(n_head * n_q * n_kv), 0.f);
    std::vector<int64_t> rows(static_cast<size_t>(n_q));
    for (int64_t i = 0; i < n_q; ++i) rows[static_cast<size_t>(i)] = i;
    for (int64_t h = 0; h < n_head; ++h) {
      attention_probs(e.q, e.k, e.lse, 0, h, rows, p.data() + h * n_q * n_kv, *e.options);
    }
  }
  std::map<std::string, std::vector<float>> acts;
  std::map<int, std::vector<float>> probs;
};

// max |a - b| / max |b|: the error relative to the reference's scale.
inline double rel_error(std::span<const float> a, std::span<const float> b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

inline double abs_error(std::span<const float> a, std::span<const float> b) {
  double diff = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
  }
  return diff;
}

}  // namespace qkv::test
