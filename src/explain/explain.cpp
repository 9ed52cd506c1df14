// explain(): a text through a Session with an AttentionCapture attached; token strings and words.
#include <algorithm>
#include <cctype>
#include <chrono>

#include "model/model_impl.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {

std::vector<int32_t> word_ids(const Tokenizer& tokenizer, std::span<const int32_t> ids) {
  std::vector<int32_t> out;
  int32_t word = -1;
  bool prev_own = false;  // the previous token was a word of its own (special, punctuation)
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string b = tokenizer.token_bytes(ids[i]);
    const bool special = tokenizer.is_special(ids[i]);
    const bool punct = !b.empty() && std::all_of(b.begin(), b.end(), [](char c) {
      return std::ispunct(static_cast<unsigned char>(c)) != 0;
    });
    const bool starts = i == 0 || special || punct || prev_own ||
                        (!b.empty() && std::isspace(static_cast<unsigned char>(b[0])) != 0);
    if (starts) ++word;
    out.push_back(word);
    prev_own = special || punct;
  }
  return out;
}

std::vector<int64_t> layer_windows(const Model& model) {
  const Model::Impl& m = ModelAccess::impl(model);
  std::vector<int64_t> w;
  for (const auto& layer : m.layers) w.push_back(layer.sliding ? m.config.sliding_window : 0);
  return w;
}

Explanation explain(const Model& model, std::string_view text, const ExplainOptions& options) {
  if (options.max_new_tokens < 0) {
    throw InvalidArgument("explain: max_new_tokens = " + std::to_string(options.max_new_tokens) +
                          "; expected >= 0 (qkv explain -n)");
  }
  const Tokenizer& tok = model.tokenizer();
  std::vector<int32_t> prompt = tok.encode(
      text, {.add_special = options.add_special, .parse_special = options.parse_special});
  if (prompt.empty()) throw InvalidArgument("explain: the text gives no tokens; pass some text");
  // Context parallel: only rank 0's capture sees events (model/forward.h); the others keep and
  // write nothing.
  CaptureOptions capture = options.capture;
  if (options.context_parallel && capture.detail_layer >= 0) {
    throw InvalidArgument(
        "explain: the detail head (CaptureOptions::detail_layer) needs the q, k and v of every "
        "position, which context parallelism spreads over the ranks; capture it without "
        "context_parallel");
  }
  if (options.context_parallel && options.context_parallel->rank() != 0) {
    capture.stream_npy.clear();
    capture.max_floats = 0;
    capture.block_size = 0;
  }
  Explanation e{.ids = {},
                .tokens = {},
                .word_ids = {},
                .n_prompt = 0,
                .model = {},
                .run_seconds = 0,
                .observer_bytes_received = 0,
                .capture = AttentionCapture(model, std::move(capture)),
                .layer_windows = layer_windows(model)};
  e.model = model.describe();
  e.n_prompt = static_cast<int64_t>(prompt.size());
  e.ids = prompt;
  const int64_t n_new = model.is_decoder() ? options.max_new_tokens : 0;
  int64_t n_ctx = options.n_ctx;
  if (n_ctx == 0) {
    const auto n_prompt = static_cast<int64_t>(prompt.size());
    const int64_t trained = model.config().n_ctx;
    // Checked here rather than left to the session, whose message would suggest raising a
    // context length that the caller did not set; and -n past the context would otherwise stop
    // early without a word.
    if (trained > 0 && n_prompt > trained) {
      throw InvalidArgument("explain: the text is " + std::to_string(n_prompt) +
                            " tokens, past the model's context of " + std::to_string(trained) +
                            " tokens; shorten the text");
    }
    if (trained > 0 && n_new > trained - n_prompt) {  // not n_prompt + n_new: -n INT64_MAX
      throw InvalidArgument("explain: max_new_tokens = " + std::to_string(n_new) + ": the text's " +
                            std::to_string(n_prompt) +
                            " tokens and the new ones pass the model's "
                            "context of " +
                            std::to_string(trained) + " tokens; at most " +
                            std::to_string(trained - n_prompt) + " fit (qkv explain -n)");
    }
    n_ctx = n_prompt + n_new;
  }
  Session session(model, {.n_ctx = n_ctx,
                          .kv_type = options.kv_type,
                          .n_threads = options.n_threads,
                          .observer = &e.capture,
                          .context_parallel = options.context_parallel});
  const auto t0 = std::chrono::steady_clock::now();
  if (!model.is_decoder()) {
    session.encode(prompt);
  } else if (n_new == 0) {
    session.eval(prompt);
  } else {
    GenerateOptions g;
    g.max_new_tokens = n_new;
    g.sampling = options.sampling;
    g.add_special = options.add_special;
    g.stop_at_eos = options.stop_at_eos;
    const GenerateResult r = session.generate(std::span<const int32_t>(prompt), g);
    e.ids.insert(e.ids.end(), r.ids.begin(), r.ids.end());
    // generate() samples the last token without running it; run it so it has a row too.
    if (!r.ids.empty() && session.n_past() < static_cast<int64_t>(e.ids.size()) &&
        session.n_past() < session.n_ctx()) {
      session.eval(std::span<const int32_t>(&r.ids.back(), 1));
    }
  }
  e.run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  e.observer_bytes_received = session.stats().observer_bytes_received;
  e.capture.finish_stream();
  // Tokens that were run, one per map row (a full context can leave the last sampled one out).
  if (model.is_decoder()) e.ids.resize(static_cast<size_t>(session.n_past()));
  for (int32_t id : e.ids) e.tokens.push_back(token_label(tok.token_bytes(id)));
  e.word_ids = word_ids(tok, e.ids);
  return e;
}

Explanation explanation_from(const Model& model, std::vector<int32_t> ids, int64_t n_prompt,
                             AttentionCapture capture, double run_seconds) {
  const Tokenizer& tok = model.tokenizer();
  Explanation e{.ids = std::move(ids),
                .tokens = {},
                .word_ids = {},
                .n_prompt = n_prompt,
                .model = model.describe(),
                .run_seconds = run_seconds,
                .observer_bytes_received = 0,
                .capture = std::move(capture),
                .layer_windows = layer_windows(model)};
  e.capture.finish_stream();
  for (int32_t id : e.ids) e.tokens.push_back(token_label(tok.token_bytes(id)));
  e.word_ids = word_ids(tok, e.ids);
  return e;
}

}  // namespace qkv
