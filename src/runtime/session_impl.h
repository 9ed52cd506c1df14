// Session's state, shared by session.cpp and generate.cpp.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/forward.h"
#include "qkv/session.h"

namespace qkv {

struct Session::Impl {
  Model model;
  SessionOptions options;
  int64_t n_ctx = 0;
  int n_threads = 1;
  std::optional<model::KvCache> cache;  // decoders only
  // SessionOptions::context_parallel: the sequence's layout over the ranks; the cache holds this
  // rank's tokens.
  std::optional<model::ContextParallel> cp;
  std::vector<float> logits;  // [n, n_vocab] or [n_vocab] of the last eval()
  std::vector<float> hidden;  // [n, n_embd] of the last encode()
  std::vector<float> pooled;  // [n_embd]
  bool has_pooled = false;
  model::ForwardTimes times;   // since construction or reset_stats()
  model::Workspace workspace;  // the forward passes' scratch

  // Throws InvalidArgument for an empty list or an id outside the vocabulary.
  void check_tokens(std::span<const int32_t> tokens, const char* what) const;
  // "context full: ..." naming the limit and how to raise it.
  std::string overflow_message(int64_t n_new) const;
  // The forward passes' options: this session's threads, observer, timers and attention backend.
  model::ForwardOptions forward_options() {
    model::ForwardOptions o;
    o.n_threads = n_threads;
    o.observer = options.observer;
    o.times = &times;
    o.attention_backend = options.attention_backend;
    o.workspace = &workspace;
    o.context_parallel = cp ? &*cp : nullptr;
    return o;
  }
};

}  // namespace qkv
