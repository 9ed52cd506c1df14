// qkv perplexity -m MODEL -f TEXT [--ctx 512] [--chunks N] [--threads N] [--kv f32|f16|q8_0]
//                 [--dot exact|int8]
//   Perplexity of a text as llama.cpp's llama-perplexity measures it, so the two numbers can be
//   compared: the text is tokenized once (BOS as the tokenizer says), cut into windows of --ctx
//   tokens (the tail that does not fill a window is dropped; at least two windows are needed);
//   each window runs from an empty cache, its first token replaced by BOS when the tokenizer
//   adds one, and only its second half is scored: the logits at positions ctx/2 .. ctx-2
//   predict the tokens at ctx/2+1 .. ctx-1. PPL = exp(mean negative log-likelihood) and its ±
//   is the standard error of that mean times PPL (llama.cpp's "Final estimate"). Progress: a bar
//   redrawn on stderr on a terminal; otherwise llama.cpp's running "[chunk]ppl," values.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "default_model.h"
#include "qkv/file_io.h"
#include "qkv/session.h"

namespace qkv::app {
namespace cmd_perplexity {  // one per subcommand: the qkv target is a unity build
namespace {

struct PerplexityOptions {
  std::string model, tokenizer, file;
  int64_t ctx = 512;
  int64_t chunks = -1;
  KvType kv = KvType::f32;
  DotProducts dot = DotProducts::exact;
  int threads = 0;
};

// -log softmax(logits)[target], in double (the sums over a vocabulary of 10^5 lose digits in
// float).
double negative_log_likelihood(const float* logits, int64_t n_vocab, int32_t target) {
  float max = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  return std::log(sum) - static_cast<double>(logits[target] - max);
}

void run(const PerplexityOptions& o) {
  if (o.ctx < 4) throw Error("--ctx: expected at least 4 tokens, found " + std::to_string(o.ctx));
  const Model model = load_model_or_default(
      o.model,
      {.tokenizer_path = o.tokenizer, .require_tokenizer = true, .progress = {}, .dot = o.dot});
  if (!model.is_decoder()) {
    throw Error(std::string(architecture_name(model.architecture())) +
                " is an encoder: it has no next-token logits");
  }
  const std::string text = read_input_file(o.file);
  const Tokenizer& tok = model.tokenizer();
  std::vector<int32_t> tokens = tok.encode(text, {.add_special = true, .parse_special = false});
  // The tokenizer's BOS, if it adds one: what it puts before an empty text.
  const std::vector<int32_t> empty = tok.encode("", {.add_special = true});
  const bool add_bos = empty.size() == 1;
  const int64_t n_ctx = o.ctx;
  const auto n_tokens = static_cast<int64_t>(tokens.size());
  if (n_tokens < 2 * n_ctx) {
    throw Error(o.file + " tokenizes to " + std::to_string(n_tokens) +
                " tokens; perplexity with --ctx " + std::to_string(n_ctx) + " needs at least " +
                std::to_string(2 * n_ctx) + " (a longer text or a smaller --ctx)");
  }
  int64_t n_chunk = n_tokens / n_ctx;
  if (o.chunks > 0) n_chunk = std::min(n_chunk, o.chunks);
  const int64_t first = n_ctx / 2;
  const int64_t n_vocab = model.config().n_vocab;
  std::fprintf(stderr,
               "perplexity: %lld tokens, %lld chunks of %lld, scoring the last %lld of each\n",
               static_cast<long long>(n_tokens), static_cast<long long>(n_chunk),
               static_cast<long long>(n_ctx), static_cast<long long>(n_ctx - first - 1));
  Session session(model, {.n_ctx = n_ctx, .kv_type = o.kv, .n_threads = o.threads});
  const bool tty = isatty(fileno(stderr)) != 0;
  const auto t0 = std::chrono::steady_clock::now();
  double nll = 0.0, nll2 = 0.0;
  int64_t count = 0;
  for (int64_t c = 0; c < n_chunk; ++c) {
    std::vector<int32_t> window(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (add_bos) window[0] = empty[0];
    session.reset();
    const std::span<const float> logits = session.eval(window, /*all_logits=*/true);
    for (int64_t i = first; i < n_ctx - 1; ++i) {
      const int32_t target = tokens[static_cast<size_t>(c * n_ctx + i + 1)];
      const double v = negative_log_likelihood(logits.data() + i * n_vocab, n_vocab, target);
      nll += v;
      nll2 += v * v;
      ++count;
    }
    const double ppl = std::exp(nll / static_cast<double>(count));
    if (tty) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * (c + 1) / n_chunk);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double eta = s / static_cast<double>(c + 1) * static_cast<double>(n_chunk - c - 1);
      std::fprintf(stderr, "\r[%s%s] %lld/%lld  PPL %.4f  %.1f s, ETA %.1f s\x1b[K",
                   std::string(static_cast<size_t>(filled), '=').c_str(),
                   std::string(static_cast<size_t>(kWidth - filled), ' ').c_str(),
                   static_cast<long long>(c + 1), static_cast<long long>(n_chunk), ppl, s, eta);
    } else {
      std::fprintf(stderr, "[%lld]%.4f,", static_cast<long long>(c + 1), ppl);
    }
    std::fflush(stderr);
  }
  std::fprintf(stderr, "\n");
  const double mean = nll / static_cast<double>(count);
  const double ppl = std::exp(mean);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  const double err = var > 0.0 ? std::sqrt(var / static_cast<double>(count - 1)) * ppl : 0.0;
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, err);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  add_model_option(app, o->model, /*builtin_default=*/true);
  add_tokenizer_option(app, o->tokenizer);
  app.add_option("-f,--file", o->file, "the text to score")->required();
  app.add_option("-c,--ctx", o->ctx, "window length in tokens; the second half of each is scored")
      ->capture_default_str();
  app.add_option("--chunks", o->chunks, "score at most this many windows (default: all)");
  add_enum_option(app, "--kv", o->kv, "KV cache type", kKvNames);
  add_dot_option(app, o->dot);
  add_threads_option(app, o->threads);
  app.callback([o] { run(*o); });
}

Registrar reg("perplexity", "Perplexity of a text, windowed and scored as llama-perplexity does",
              setup);

}  // namespace
}  // namespace cmd_perplexity
}  // namespace qkv::app
