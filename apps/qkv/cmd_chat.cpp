// qkv chat [-m MODEL] [--system S] [--template FILE.jinja] [-n N] [--temp T] [--top-k K]
//          [--top-p P] [--min-p P] [--repeat-penalty R] [--repeat-last-n N] [--seed S] [--ctx N]
//          [--kv f32|f16|q8_0] [--dot exact|int8] [--threads N] [-t TOKENIZER]
//   A conversation with a decoder model: each line read from standard input is a user turn, and
//   the reply streams to stdout (a newline after it). The prompt of every turn is the whole
//   conversation in the model's chat template (GGUF tokenizer.chat_template, HF
//   tokenizer_config.json; ChatML, as `qkv serve` uses, when the model has none), but only the
//   tokens after what the KV cache already holds are run: the history is not prefilled again.
//   A line ending in "\" continues on the next. A line starting with "/" is a command: /reset (a
//   new conversation), /save FILE (the conversation as a JSON array of {"role", "content"}
//   messages), /help, /quit; another is refused, naming them, and is not sent. A line starting
//   with "//" is text beginning with "/" (the first "/" dropped).
//   Ctrl-C stops a reply (the part written so far stays in the conversation); Ctrl-C at the
//   prompt, /quit or the end of the input leaves. Standard input may be a pipe (scripted turns).
//   Per-turn counts and speeds go to stderr.
//   Without -m, the built-in model (qkv-stories, trained by `qkv train`; docs/TRAINING.md).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "chat_source.h"
#include "command.h"
#include "default_model.h"
#include "qkv/chat.h"
#include "qkv/file_io.h"
#include "qkv/session.h"

namespace qkv::app {
namespace cmd_chat {  // one per subcommand: the qkv target is a unity build
namespace {

struct ChatCliOptions {
  std::string model;
  std::string tokenizer;
  std::string template_file;
  std::string system;
  int64_t n = 512;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  int64_t ctx = 0;
  KvType kv = KvType::f32;
  DotProducts dot = DotProducts::exact;
  int threads = 0;
  bool ignore_eos = false;
};

// SIGINT: while a reply is generated it asks the generation loop to stop; at the prompt it ends
// the program (the handler only touches these flags and async-signal-safe calls).
volatile std::sig_atomic_t g_generating = 0;
volatile std::sig_atomic_t g_stop_reply = 0;

extern "C" void on_sigint(int) {
  if (g_generating) {
    g_stop_reply = 1;
    return;
  }
  static const char kBye[] = "\n";
  [[maybe_unused]] const ssize_t n = write(STDERR_FILENO, kBye, sizeof(kBye) - 1);
  _exit(130);
}

// The conversation and what the session's KV cache holds of it.
class Conversation {
 public:
  Conversation(const Model& model, Session& session, ModelChatTemplate tmpl, bool is_default,
               std::string system)
      : model_(model),
        session_(session),
        tmpl_(std::move(tmpl)),
        template_(tmpl_.source),
        is_default_(is_default),
        system_(std::move(system)) {
    reset();
  }

  void reset() {
    messages_.clear();
    if (!system_.empty()) messages_.push_back({"system", system_});
  }

  const std::vector<ChatMessage>& messages() const { return messages_; }

  // Adds the user turn, generates the reply (streamed to stdout) and adds it. A template that
  // refuses the conversation, or a conversation longer than the context, leaves it unchanged.
  void turn(const std::string& user, const ChatCliOptions& o) {
    messages_.push_back({"user", user});
    std::vector<int32_t> ids;
    try {
      ids = prompt_ids();
      if (static_cast<int64_t>(ids.size()) >= session_.n_ctx()) {
        throw Error("the conversation is " + std::to_string(ids.size()) +
                    " tokens and the context length is " + std::to_string(session_.n_ctx()) +
                    "; /reset starts a new one (or raise the context length with --ctx)");
      }
    } catch (const Error&) {
      messages_.pop_back();
      throw;
    }
    // The cache keeps the longest prefix it shares with this prompt; at least the last token
    // runs again, for the logits the first reply token is sampled from.
    size_t keep = 0;
    while (keep < held_.size() && keep < ids.size() && held_[keep] == ids[keep]) ++keep;
    keep = std::min(keep, ids.size() - 1);
    session_.truncate(static_cast<int64_t>(keep));
    held_.resize(keep);

    GenerateOptions g;
    g.max_new_tokens = o.n;
    g.sampling = o.sampling;
    g.stop_at_eos = !o.ignore_eos;
    if (is_default_) g.stop.emplace_back(default_chat_stop());
    g.on_text = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return g_stop_reply == 0;
    };
    session_.reset_stats();
    g_stop_reply = 0;
    g_generating = 1;
    GenerateResult r;
    try {
      r = session_.generate(std::span<const int32_t>(ids.data() + keep, ids.size() - keep), g);
    } catch (...) {
      g_generating = 0;
      held_.clear();
      session_.reset();
      messages_.pop_back();
      throw;
    }
    g_generating = 0;
    std::fputc('\n', stdout);
    std::fflush(stdout);
    // The cache holds the prompt and the reply's tokens up to the last one sampled (generate()
    // runs each sampled token before sampling the next; the last, or EOS, it does not run).
    held_ = ids;
    held_.insert(held_.end(), r.ids.begin(), r.ids.end());
    held_.resize(static_cast<size_t>(session_.n_past()));
    messages_.push_back({"assistant", r.text});
    const SessionStats st = session_.stats();
    std::fprintf(stderr,
                 "[prompt %zu tokens: %zu reused, %zu prefilled in %.3f s; reply %zu tokens in "
                 "%.3f s (%.1f tokens/s); run %lld; stop: %s]\n",
                 ids.size(), keep, ids.size() - keep, r.prefill_seconds, r.ids.size(),
                 r.decode_seconds, r.decode_tokens_per_second(), static_cast<long long>(st.tokens),
                 r.stop == GenerateResult::Stop::callback
                     ? "interrupted"
                     : std::string(stop_reason_name(r.stop)).c_str());
  }

 private:
  // The conversation rendered with a generation prompt, encoded as transformers encodes a
  // rendered chat: no BOS added (the template writes it), special tokens in the text matched.
  std::vector<int32_t> prompt_ids() const {
    ChatTemplateInputs in;
    in.messages = messages_;
    in.add_generation_prompt = true;
    in.bos_token = tmpl_.bos;
    in.eos_token = tmpl_.eos;
    const std::string text = template_.render(in);
    return model_.tokenizer().encode(text, {.add_special = false, .parse_special = true});
  }

  const Model& model_;
  Session& session_;
  ModelChatTemplate tmpl_;
  ChatTemplate template_;
  bool is_default_;
  std::string system_;
  std::vector<ChatMessage> messages_;
  std::vector<int32_t> held_;  // the tokens in the session's KV cache
};

std::string messages_json(const std::vector<ChatMessage>& messages) {
  nlohmann::json j = nlohmann::json::array();
  for (const ChatMessage& m : messages) j.push_back({{"role", m.role}, {"content", m.content}});
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

constexpr const char* kHelp =
    "/reset: a new conversation; /save FILE: the conversation as JSON; /help; /quit: leave.\n"
    "A line starting with // sends text that begins with / (the first / dropped).\n"
    "A line ending in \\ continues on the next. Ctrl-C stops a reply; at the prompt it leaves.\n";
constexpr const char* kCommands = "/reset, /save FILE, /help, /quit";

void run(ChatCliOptions o) {
  if (!o.seed) o.seed = std::random_device{}();
  o.sampling.seed = *o.seed;
  Sampler check(o.sampling);  // bad sampling options fail before the model loads

  const Model model = load_model_or_default(
      o.model,
      {.tokenizer_path = o.tokenizer, .require_tokenizer = true, .progress = {}, .dot = o.dot});
  if (!model.is_decoder()) {
    throw Error(std::string(architecture_name(model.architecture())) +
                " is an encoder and cannot chat; use `qkv embed`");
  }
  bool is_default = false;
  ModelChatTemplate tmpl =
      chat_template_or_default(model.file(), o.template_file, "qkv chat", is_default);
  Session session(model, {.n_ctx = o.ctx, .kv_type = o.kv, .n_threads = o.threads});
  Conversation chat(model, session, std::move(tmpl), is_default, o.system);
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::fprintf(stderr, "model: %s; context %lld, seed %llu\n", model.describe().c_str(),
               static_cast<long long>(session.n_ctx()), static_cast<unsigned long long>(*o.seed));
  if (interactive) std::fputs(kHelp, stderr);

  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESTART;  // the read at the prompt goes on after a reply's Ctrl-C
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);

  std::string line;
  while (true) {
    if (interactive) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    std::string input;
    bool got = false;
    while (std::getline(std::cin, line)) {
      got = true;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty() && line.back() == '\\') {
        input += line.substr(0, line.size() - 1) + "\n";
        continue;
      }
      input += line;
      break;
    }
    if (!got) break;  // end of input
    if (input.empty()) continue;
    if (input.rfind("//", 0) == 0) {
      input.erase(0, 1);  // text that begins with "/"
    } else if (input[0] == '/') {
      const size_t end = input.find_first_of(" \t\n");
      const std::string name = input.substr(0, end);
      std::string rest = end == std::string::npos ? "" : input.substr(end);
      rest.erase(0, rest.find_first_not_of(" \t\n"));
      if (name == "/quit" || name == "/exit") break;
      if (name == "/help") {
        std::fputs(kHelp, stderr);
      } else if (name == "/reset") {
        chat.reset();
        std::fputs("[a new conversation]\n", stderr);
      } else if (name == "/save") {
        if (rest.empty()) {
          std::fputs("[/save needs a file name: /save FILE]\n", stderr);
          continue;
        }
        try {
          write_output_file(rest, messages_json(chat.messages()));
          std::fprintf(stderr, "[saved %zu messages to %s]\n", chat.messages().size(),
                       printable(rest).c_str());
        } catch (const Error& e) {
          std::fprintf(stderr, "[/save: %s]\n", printable(e.what()).c_str());
        }
      } else {
        std::fprintf(stderr,
                     "[unknown command %s (not sent); the commands are %s; start a line with // "
                     "to send text that begins with /]\n",
                     printable(name).c_str(), kCommands);
      }
      continue;
    }
    try {
      chat.turn(input, o);
    } catch (const Error& e) {
      // The turn is dropped; the conversation goes on.
      std::fprintf(stderr, "[error: %s]\n", printable(e.what()).c_str());
    }
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ChatCliOptions>();
  add_model_option(app, o->model, /*builtin_default=*/true);
  add_tokenizer_option(app, o->tokenizer);
  app.add_option("--system", o->system, "a system message at the start of the conversation");
  app.add_option("--template", o->template_file,
                 "Jinja chat template file (default: the model's; ChatML when it has none)");
  app.add_option("-n,--n-predict", o->n, "most tokens per reply")->capture_default_str();
  add_sampling_options(app, o->sampling);
  app.add_option("--seed", o->seed, "random seed (default: a fresh one, printed)")
      ->check(seed_check());
  app.add_option("--ctx", o->ctx, "context length in tokens (default: the model's)");
  add_enum_option(app, "--kv", o->kv, "KV cache type", kKvNames);
  add_dot_option(app, o->dot);
  add_threads_option(app, o->threads);
  app.add_flag("--ignore-eos", o->ignore_eos, "keep generating after EOS (until -n)");
  app.footer(
      "Each line of standard input is a user turn (a line ending in \\ continues on the next).\n"
      "Lines starting with / are commands: /reset (a new conversation), /save FILE (the\n"
      "conversation as JSON), /help, /quit. Another /word is refused and not sent; start a line\n"
      "with // to send text that begins with / (the first / is dropped).");
  app.callback([o] { run(*o); });
}

Registrar reg("chat", "Chat with a decoder model (multi-turn, streaming, the KV cache reused)",
              setup);

}  // namespace
}  // namespace cmd_chat
}  // namespace qkv::app
