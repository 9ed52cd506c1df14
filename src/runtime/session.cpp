// Session: the KV cache of one conversation over a shared Model, eval() for decoders and
// encode()/pooled() for encoders (include/qkv/session.h). Generation is in generate.cpp.
#include <optional>

#include "core/error.h"
#include "core/parallel.h"
#include "model/forward.h"
#include "model/model_impl.h"
#include "qkv/session.h"
#include "runtime/session_impl.h"

namespace qkv {

namespace {

// Learned position embeddings (GPT-2, BERT) have no rows past the trained context; RoPE
// (LLaMA) extends to any position, though quality past the trained length is the user's risk.
bool has_learned_positions(const Model& m) {
  return m.rope_style() == RopeStyle::none;
}

int64_t choose_n_ctx(const Model& m, int64_t requested) {
  const int64_t trained = m.config().n_ctx;
  if (requested < 0) {
    core::throw_invalid("context length ", requested,
                        ": expected > 0, or 0 for the model's trained context (", trained, ")");
  }
  if (requested == 0) {
    if (trained <= 0) {
      core::throw_invalid("the model file states no context length; give one");
    }
    return trained;
  }
  if (trained > 0 && requested > trained && has_learned_positions(m)) {
    core::throw_invalid("context length ", requested, " exceeds the ", trained, " positions that ",
                        architecture_name(m.architecture()),
                        " learned (it has learned position embeddings); use a context length of ",
                        "at most ", trained);
  }
  return requested;
}

}  // namespace

Session::Session(Model model, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.n_ctx = choose_n_ctx(model, options.n_ctx);
  if (options.n_threads < 0) {
    core::throw_invalid("thread count ", options.n_threads,
                        ": expected >= 0 (0 = all hardware threads)");
  }
  s.n_threads = core::resolve_threads(options.n_threads);
  s.options = options;
  s.model = std::move(model);
  if (options.context_parallel) {
    if (!s.model.is_decoder()) {
      core::throw_invalid("context parallelism splits a decoder's sequence; ",
                          architecture_name(s.model.architecture()), " is an encoder");
    }
    s.cp.emplace(*options.context_parallel, s.n_ctx);
    s.cache.emplace(
        s.model, model::ContextParallel::local_capacity(s.n_ctx, options.context_parallel->size()),
        options.kv_type);
    return;
  }
  if (s.model.is_decoder()) s.cache.emplace(s.model, s.n_ctx, options.kv_type);
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

const Model& Session::model() const {
  return impl_->model;
}
int64_t Session::n_ctx() const {
  return impl_->n_ctx;
}
int Session::n_threads() const {
  return impl_->n_threads;
}
int64_t Session::n_past() const {
  if (impl_->cp) return impl_->cp->n_past;
  return impl_->cache ? impl_->cache->n_past() : 0;
}

void Session::reset() {
  if (impl_->cache) impl_->cache->set_n_past(0);
  if (impl_->cp) impl_->cp->reset();
  impl_->has_pooled = false;
}

void Session::truncate(int64_t n) {
  if (n < 0 || n > n_past()) {
    core::throw_invalid("Session::truncate: ", n,
                        " tokens; expected 0 <= n <= n_past() = ", n_past());
  }
  if (impl_->cp && n != n_past()) {
    if (n != 0) {
      core::throw_invalid("Session::truncate: a context-parallel session keeps all of its ",
                          n_past(), " tokens or none (truncate(0)); ", n, " asked");
    }
    reset();
    return;
  }
  if (impl_->cache) impl_->cache->set_n_past(n);
}

void Session::Impl::check_tokens(std::span<const int32_t> tokens, const char* what) const {
  if (tokens.empty()) core::throw_invalid(what, ": no tokens");
  const int64_t n_vocab = model.config().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      core::throw_invalid(what, ": token ", i, " = ", tokens[i], " is outside the vocabulary [0, ",
                          n_vocab, ")");
    }
  }
}

std::string Session::Impl::overflow_message(int64_t n_new) const {
  const int64_t past = cp ? cp->n_past : cache ? cache->n_past() : 0;
  const int64_t trained = model.config().n_ctx;
  std::string how =
      has_learned_positions(model)
          ? core::concat("; this model has learned positions and cannot go past ", trained,
                         " (shorten the input, or start again from an empty context)")
          : core::concat("; raise the context length",
                         trained > 0 ? core::concat(" (trained context ", trained, ")") : "");
  return core::concat("context full: ", past, " tokens in the cache + ", n_new,
                      " new > the context length of ", n_ctx, " tokens", how);
}

std::span<const float> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  Impl& s = *impl_;
  if (!s.cache) {
    core::throw_invalid("Session::eval: ", architecture_name(s.model.architecture()),
                        " is an encoder; use Session::encode()");
  }
  s.check_tokens(tokens, "Session::eval");
  if (n_past() + static_cast<int64_t>(tokens.size()) > s.n_ctx) {
    throw Error(s.overflow_message(static_cast<int64_t>(tokens.size())));
  }
  model::decoder_forward(s.model, *s.cache, tokens, all_logits, s.logits, s.forward_options());
  return s.logits;
}

std::vector<std::span<const float>> eval_batch(std::span<Session* const> sessions,
                                               std::span<const int32_t> tokens) {
  if (sessions.empty()) core::throw_invalid("eval_batch: no sessions");
  if (tokens.size() != sessions.size()) {
    core::throw_invalid("eval_batch: ", tokens.size(), " tokens for ", sessions.size(),
                        " sessions; pass one token per session");
  }
  std::vector<std::span<const int32_t>> runs(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) runs[i] = tokens.subspan(i, 1);
  return eval_batch(sessions, runs);
}

std::vector<std::span<const float>> eval_batch(std::span<Session* const> sessions,
                                               std::span<const std::span<const int32_t>> tokens) {
  if (sessions.empty()) core::throw_invalid("eval_batch: no sessions");
  if (tokens.size() != sessions.size()) {
    core::throw_invalid("eval_batch: ", tokens.size(), " runs of tokens for ", sessions.size(),
                        " sessions; pass one run per session");
  }
  std::vector<model::SequenceStep> steps(sessions.size());
  const Model::Impl* first_model = nullptr;
  for (size_t i = 0; i < sessions.size(); ++i) {
    if (!sessions[i]) core::throw_invalid("eval_batch: session ", i, " is null");
    Session::Impl& s = *sessions[i]->impl_;
    if (s.cp) {
      core::throw_invalid("eval_batch: session ", i,
                          " is context parallel; run it with Session::eval()");
    }
    if (!s.cache) {
      core::throw_invalid("eval_batch: ", architecture_name(s.model.architecture()),
                          " is an encoder; use Session::encode()");
    }
    const Model::Impl* mi = &ModelAccess::impl(s.model);
    if (first_model && mi != first_model) {
      core::throw_invalid("eval_batch: session ", i, " runs another model than session 0");
    }
    first_model = mi;
    for (size_t j = 0; j < i; ++j) {
      if (sessions[j] == sessions[i]) {
        core::throw_invalid("eval_batch: session ", i, " is session ", j, " again");
      }
    }
    const std::span<const int32_t> run = tokens[i];
    if (run.empty()) core::throw_invalid("eval_batch: session ", i, " has no tokens to run");
    s.check_tokens(run, "eval_batch");
    const auto len = static_cast<int64_t>(run.size());
    if (s.cache->n_past() + len > s.n_ctx) throw Error(s.overflow_message(len));
    steps[i] = {&*s.cache, run, false, &s.logits, s.options.observer};
  }
  model::ForwardOptions opt = sessions[0]->impl_->forward_options();
  opt.observer = nullptr;
  opt.linear_path = kernels::LinearPath::gemv;
  model::decoder_forward_batch(sessions[0]->impl_->model, steps, opt);
  std::vector<std::span<const float>> out;
  out.reserve(sessions.size());
  for (Session* s : sessions) out.emplace_back(s->impl_->logits);
  return out;
}

std::span<const float> Session::encode(std::span<const int32_t> tokens,
                                       std::span<const int32_t> token_types) {
  Impl& s = *impl_;
  if (s.cache) {
    core::throw_invalid("Session::encode: ", architecture_name(s.model.architecture()),
                        " is a decoder; use Session::eval()");
  }
  s.check_tokens(tokens, "Session::encode");
  if (!token_types.empty() && token_types.size() != tokens.size()) {
    core::throw_invalid("Session::encode: ", token_types.size(), " token types for ", tokens.size(),
                        " tokens; pass one per token or none");
  }
  if (static_cast<int64_t>(tokens.size()) > s.n_ctx) {
    throw Error(s.overflow_message(static_cast<int64_t>(tokens.size())));
  }
  s.has_pooled = false;
  const bool pooler = model::has_pooler(s.model);
  model::encoder_forward(s.model, tokens, token_types, s.hidden, pooler ? &s.pooled : nullptr,
                         s.forward_options());
  s.has_pooled = pooler;
  return s.hidden;
}

SessionStats Session::stats() const {
  const model::ForwardTimes& t = impl_->times;
  return {t.linear, t.attention, t.other, t.tokens,
          impl_->cp ? impl_->cp->observer_bytes_received : 0};
}

void Session::reset_stats() {
  impl_->times = {};
  if (impl_->cp) impl_->cp->observer_bytes_received = 0;
}

size_t Session::workspace_bytes() const {
  return impl_->workspace.bytes();
}

void Session::release_workspace() {
  impl_->workspace.release();
}

std::span<const float> Session::pooled() const {
  const Impl& s = *impl_;
  if (!model::has_pooler(s.model)) {
    throw Error(core::concat("Session::pooled: the model (", s.model.describe(),
                             ") has no pooler; use the hidden states from encode()"));
  }
  if (!s.has_pooled) throw Error("Session::pooled: call encode() first");
  return s.pooled;
}

}  // namespace qkv
