// qkv generate [-m MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]
//              [--repeat-penalty R] [--repeat-last-n N] [--seed S] [--stop STR]... [--ctx N]
//              [--kv f32|f16|q8_0] [--dot exact|int8] [--threads N] [-t TOKENIZER] [--no-bos] [--ignore-eos]
//              [--explain HTML] [--npy-stream FILE] [--chat [--system S] [--template FILE]]
//              [--context-parallel]
//   Writes the prompt and then the generated text to stdout as it streams (as llama2.c's run
//   prints a story), with a newline at the end; status, progress and timings go to stderr.
//   --chat: PROMPT is one user turn; the model's chat template makes the prompt (with the
//   optional system message) and only the reply is printed; --template FILE.jinja replaces the
//   model's template (as in `qkv chat`), the model's BOS/EOS texts still filling its variables.
//   --context-parallel (under mpirun -np N): the prompt's tokens are split over the ranks for the
//   prefill, decode runs against the KV cache sharded over them; rank 0 prints and writes files.
//   Without -m, the built-in model (qkv-stories, trained by `qkv train`; docs/TRAINING.md).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>

#include "chat_source.h"
#include "command.h"
#include "default_model.h"
#include "qkv/chat.h"
#include "qkv/explain.h"
#include "qkv/file_io.h"
#include "qkv/session.h"

namespace qkv::app {
namespace cmd_generate {  // one per subcommand: the qkv target is a unity build
namespace {

struct GenerateCliOptions {
  std::string model;
  std::string tokenizer;
  std::string prompt;
  int64_t n = 256;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  int64_t ctx = 0;
  KvType kv = KvType::f32;
  DotProducts dot = DotProducts::exact;
  int threads = 0;
  bool no_bos = false;
  bool no_parse_special = false;
  bool ignore_eos = false;
  std::string explain_html;   // --explain: attention maps of the prompt and every generated token
  std::string npy_stream;     // --npy-stream: the same maps, every row written as it is produced
  bool chat = false;          // --chat: the prompt is a user turn in the model's chat template
  std::string system;         // --system: a system message before it
  std::string template_file;  // --template: a Jinja file instead of the model's template
  bool context_parallel = false;
};

// The prompt text the model's chat template makes of one user turn (and a system message), as
// transformers' apply_chat_template(add_generation_prompt=True) renders it.
std::string chat_prompt(const Model& model, const GenerateCliOptions& o) {
  if (o.template_file.empty()) return chat_prompt_text(model.file(), "", o.system, o.prompt);
  bool is_default = false;
  const ModelChatTemplate t =
      chat_template_or_default(model.file(), o.template_file, "qkv generate", is_default);
  return chat_prompt_text(t, "", o.system, o.prompt);
}

using Clock = std::chrono::steady_clock;

// "\rloading 45%" lines on stderr, only once a load has taken long enough to be worth watching.
std::function<void(double)> load_progress() {
  const auto t0 = Clock::now();
  return [t0, shown = false](double fraction) mutable {
    if (std::chrono::duration<double>(Clock::now() - t0).count() < 0.5 && !shown) return;
    shown = true;
    std::fprintf(stderr, "\rloading weights: %3.0f%%%s", fraction * 100, fraction >= 1 ? "\n" : "");
  };
}

void run(const CLI::App& app, GenerateCliOptions o) {
  if (o.prompt == "-") {
    o.prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  Communicator* const comm =
      context_parallel_job(app, o.context_parallel, {{"the prompt's text", o.prompt}});
  const bool out = is_output_rank(comm);
  if (!o.system.empty() && !o.chat) throw Error("--system needs --chat");
  if (!o.template_file.empty() && !o.chat) throw Error("--template needs --chat");
  if (!o.seed) {
    o.seed = std::random_device{}();
    // Every rank samples the same tokens from the same logits: rank 0's seed for all.
    if (comm) comm->broadcast(&*o.seed, sizeof(uint64_t), 0);
    if (out) {
      std::fprintf(stderr, "seed: %llu (pass --seed to repeat this run)\n",
                   static_cast<unsigned long long>(*o.seed));
    }
  }
  o.sampling.seed = *o.seed;
  Sampler check(o.sampling);  // bad sampling options fail before the model loads

  const Model model = load_model_or_default(
      o.model, {.tokenizer_path = o.tokenizer,
                .require_tokenizer = true,
                .progress = out ? load_progress() : std::function<void(double)>{},
                .dot = o.dot});
  if (out) std::fprintf(stderr, "model: %s\n", model.describe().c_str());
  if (!model.is_decoder()) {
    throw Error(std::string(architecture_name(model.architecture())) +
                " is an encoder and cannot generate text; use `qkv embed`");
  }
  // --explain: exact attention maps of every layer and head, recomputed from the kernel's LSE
  // as the run goes (the forward passes themselves stay on the fast path).
  // --npy-stream alone keeps nothing in memory (max_floats 0): memory independent of the length.
  // Context parallel: the maps come to rank 0, which alone captures and writes them.
  std::optional<AttentionCapture> capture;
  if (out && (!o.explain_html.empty() || !o.npy_stream.empty())) {
    CaptureOptions co;
    co.stream_npy = o.npy_stream;
    if (o.explain_html.empty()) co.max_floats = 0;
    capture.emplace(model, std::move(co));
  }
  Session session(model, {.n_ctx = o.ctx,
                          .kv_type = o.kv,
                          .n_threads = o.threads,
                          .observer = capture ? &*capture : nullptr,
                          .context_parallel = comm});
  // --chat: the template writes BOS and the turn markers itself, so the text is encoded as
  // transformers encodes a rendered chat: no BOS added, special tokens in the text matched.
  const std::string prompt_text = o.chat ? chat_prompt(model, o) : o.prompt;
  if (o.chat && out)
    std::fprintf(stderr, "chat: prompt of %zu bytes from the model's chat template\n",
                 prompt_text.size());
  const std::vector<int32_t> ids = model.tokenizer().encode(
      prompt_text,
      {.add_special = !o.no_bos && !o.chat, .parse_special = o.chat || !o.no_parse_special});
  check_same_inputs(comm, "qkv generate --context-parallel", model, ids);
  if (out) {
    std::fprintf(stderr, "prompt: %zu tokens, context %lld, kv %s%s%s\n", ids.size(),
                 static_cast<long long>(session.n_ctx()), enum_name(kKvNames, o.kv).c_str(),
                 comm ? (" over " + std::to_string(comm->size()) + " ranks").c_str() : "",
                 ids.size() >= 256 ? " (prefill running...)" : "");
  }

  GenerateOptions g;
  g.max_new_tokens = o.n;
  g.sampling = o.sampling;
  g.stop = o.stop;
  g.stop_at_eos = !o.ignore_eos;
  // The prompt goes out with the first text (or at the end), so an error before generation
  // leaves stdout empty.
  bool prompt_shown = false;
  const auto show_prompt = [&] {
    if (prompt_shown || o.chat || !out) return;
    std::fwrite(o.prompt.data(), 1, o.prompt.size(), stdout);
    prompt_shown = true;
  };
  g.on_text = [&](std::string_view text) {
    if (!out) return true;
    show_prompt();
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  const GenerateResult r = session.generate(std::span<const int32_t>(ids), g);
  show_prompt();
  if (!out) {
    // The last sampled token's row of the maps needs every rank (see below).
    if (!o.explain_html.empty() || !o.npy_stream.empty()) {
      if (!r.ids.empty() &&
          session.n_past() < static_cast<int64_t>(r.prompt_ids.size() + r.ids.size()) &&
          session.n_past() < session.n_ctx()) {
        session.eval(std::span<const int32_t>(&r.ids.back(), 1));
      }
    }
    return;
  }
  std::fputc('\n', stdout);
  std::fflush(stdout);
  std::fprintf(stderr,
               "prefill: %zu tokens in %.3f s (%.1f tokens/s); decode: %zu tokens in %.3f s "
               "(%.1f tokens/s); stop: %s\n",
               r.prompt_ids.size(), r.prefill_seconds, r.prefill_tokens_per_second(), r.ids.size(),
               r.decode_seconds, r.decode_tokens_per_second(),
               std::string(stop_reason_name(r.stop)).c_str());
  if (capture) {
    std::vector<int32_t> run = r.prompt_ids;
    run.insert(run.end(), r.ids.begin(), r.ids.end());
    // generate() samples the last token without running it; run it so it has a map row too.
    if (!r.ids.empty() && session.n_past() < static_cast<int64_t>(run.size()) &&
        session.n_past() < session.n_ctx()) {
      session.eval(std::span<const int32_t>(&r.ids.back(), 1));
    }
    run.resize(static_cast<size_t>(session.n_past()));
    const Explanation e =
        explanation_from(model, std::move(run), static_cast<int64_t>(r.prompt_ids.size()),
                         std::move(*capture), r.prefill_seconds + r.decode_seconds);
    if (e.capture.streamed()) {
      write_tokens_json(o.npy_stream + ".tokens.json", e);
      std::fprintf(stderr, "explain: %s; tokens in %s.tokens.json\n",
                   e.capture.streamed()->note().c_str(), o.npy_stream.c_str());
    }
    if (!o.explain_html.empty()) {
      write_output_file(o.explain_html, render_html(e));
      std::fprintf(stderr, "explain: %s (%s)\n", o.explain_html.c_str(),
                   e.capture.memory_note().c_str());
    }
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  add_model_option(app, o->model, /*builtin_default=*/true);
  add_tokenizer_option(app, o->tokenizer);
  app.add_option("-p,--prompt", o->prompt, "prompt text (\"-\" reads standard input)");
  app.add_option("-n,--n-predict", o->n, "most tokens to generate")->capture_default_str();
  add_sampling_options(app, o->sampling);
  app.add_option("--seed", o->seed, "random seed (default: a fresh one, printed)")
      ->check(seed_check());
  app.add_option("--stop", o->stop, "stop at this text (not printed); repeatable")
      ->allow_extra_args(false);
  app.add_option("--explain", o->explain_html,
                 "write an HTML report of the attention maps of the prompt and every generated "
                 "token (all layers and heads; qkv explain selects)");
  app.add_option("--npy-stream", o->npy_stream,
                 "write the attention maps of every layer and head, row by row as they are "
                 "produced, to FILE: float32 [layers, heads, tokens, tokens] (qkv explain --npy), "
                 "and FILE.tokens.json; with or without --explain");
  app.add_option("--ctx", o->ctx, "context length in tokens (default: the model's)");
  add_enum_option(app, "--kv", o->kv, "KV cache type", kKvNames);
  add_dot_option(app, o->dot);
  add_threads_option(app, o->threads);
  app.add_flag("--no-bos", o->no_bos, "do not add BOS before the prompt");
  app.add_flag("--no-parse-special", o->no_parse_special,
               "tokenize special tokens written in the prompt (<|endoftext|>) as plain text");
  app.add_flag("--ignore-eos", o->ignore_eos, "keep generating after EOS");
  app.add_flag("--chat", o->chat,
               "PROMPT is a user turn: the model's chat template (GGUF tokenizer.chat_template, HF "
               "tokenizer_config.json) makes the prompt; only the reply is printed");
  app.add_option("--system", o->system, "with --chat: a system message before the user turn");
  app.add_option("--template", o->template_file,
                 "with --chat: Jinja chat template file to use instead of the model's");
  add_context_parallel_flag(app, o->context_parallel);
  app.callback([o, &app] { run_job(app, o->context_parallel, [&] { run(app, *o); }); });
}

Registrar reg("generate", "Generate text from a prompt with a decoder model", setup);

}  // namespace
}  // namespace cmd_generate
}  // namespace qkv::app
