// qkv serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx N] [--kv f32|f16|q8_0]
//           [--dot exact|int8] [--threads N] [--api-key KEY] [--max-body BYTES] [--queue N]
//           [--template FILE] [--cors ORIGINS]
//   An OpenAI-compatible HTTP server over one model (docs/SERVER.md). Prints
//   "qkv serve: listening on http://HOST:PORT" on stderr once it accepts requests; SIGINT or
//   SIGTERM stops it.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "chat_source.h"
#include "command.h"
#include "default_model.h"
#include "qkv/server.h"

namespace qkv::app {
namespace cmd_serve {  // one per subcommand: the qkv target is a unity build
namespace {

struct ServeCliOptions {
  std::string model;
  std::string tokenizer;
  std::string template_file;
  DotProducts dot = DotProducts::exact;
  ServerOptions server;
};

void run(ServeCliOptions o) {
  // SIGINT and SIGTERM go to one thread that stops the server. They are blocked before anything
  // starts a thread (loading the model may: the int8 mode repacks weights on the worker
  // threads), so every other thread inherits the blocked mask; one thread created earlier would
  // take the signal's default action and kill the process.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const Model model = load_model_or_default(
      o.model,
      {.tokenizer_path = o.tokenizer, .require_tokenizer = true, .progress = {}, .dot = o.dot});
  if (model.is_decoder()) {
    std::optional<ModelChatTemplate> own;
    try {
      own = chat_template_of(model.file());
    } catch (const Error&) {
    }
    if (!o.template_file.empty()) {
      o.server.chat_template = read_text(o.template_file, "chat template");
    } else if (own) {
      o.server.chat_template = own->source;
    } else {
      std::fprintf(stderr, "qkv serve: the model has no chat template; chats use ChatML\n");
    }
    // The template's bos_token and eos_token: those its file names, else the tokenizer's, also
    // with --template (Llama 3's template writes {{ bos_token }} itself; it was rendered empty).
    if (own) {
      o.server.bos_text = own->bos;
      o.server.eos_text = own->eos;
    }
    const TokenizerSpec& spec = model.tokenizer().spec();
    if (o.server.bos_text.empty() && spec.bos >= 0) {
      o.server.bos_text = model.tokenizer().token(spec.bos);
    }
    if (o.server.eos_text.empty() && spec.eos >= 0) {
      o.server.eos_text = model.tokenizer().token(spec.eos);
    }
  } else if (!o.template_file.empty()) {
    o.server.chat_template = read_text(o.template_file, "chat template");
  }
  if (o.model.empty() && o.server.model_name.empty()) o.server.model_name = "qkv-stories";
  Server server(model, o.server);
  std::thread([&server, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "qkv serve: stopping (signal %d)\n", sig);
    server.stop();
  }).detach();
  std::fprintf(stderr, "qkv serve: %s\n", model.describe().c_str());
  std::fprintf(stderr, "qkv serve: listening on http://%s:%d\n", o.server.host.c_str(),
               server.port());
  std::fflush(stderr);
  server.run();
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ServeCliOptions>();
  ServerOptions& s = o->server;
  app.add_option("-m,--model", o->model,
                 "GGUF file, HF model folder or llama2.c .bin (default: the built-in model)");
  app.add_option("-t,--tokenizer", o->tokenizer,
                 "tokenizer file; default: the model's own or one beside it");
  app.add_option("--host", s.host, "address to listen on (loopback by default)")
      ->capture_default_str();
  app.add_option("--port", s.port, "TCP port; 0 = any free port (printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--parallel", s.n_parallel, "slots: requests generated at the same time")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--ctx", s.n_ctx, "context length per slot in tokens (default: the model's)");
  add_enum_option(app, "--kv", s.kv_type, "KV cache type", kKvNames);
  add_dot_option(app, o->dot);
  app.add_option("--threads", s.n_threads, "threads (0 = all)")->capture_default_str();
  app.add_option("--api-key", s.api_key,
                 "require 'Authorization: Bearer KEY' on every endpoint but /health");
  app.add_option("--max-body", s.max_body_bytes, "largest request body in bytes")
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--queue", s.max_queue, "requests that may wait for a slot before 503")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  app.add_option("--prefill-chunk", s.prefill_chunk,
                 "prompt tokens per forward pass between decode steps")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--template", o->template_file,
                 "chat template (Jinja) file; default: the model's, else ChatML");
  app.add_option("--cors", s.cors,
                 "web pages that may call the server from a browser (CORS): \"*\" any origin, "
                 "\"none\", or origins such as \"https://app.example,http://localhost:3000\"; "
                 "requests without an Origin (curl, SDKs) and the server's own page are always "
                 "served")
      ->capture_default_str();
  app.add_option("--alias", s.model_name, "model id in /v1/models (default: the file's name)");
  app.callback([o] { run(*o); });
}

Registrar reg("serve", "OpenAI-compatible HTTP server (chat, completions, embeddings)", setup);

}  // namespace
}  // namespace cmd_serve
}  // namespace qkv::app
