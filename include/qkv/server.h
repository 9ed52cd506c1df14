// qkv — an OpenAI-compatible HTTP server over one model (`qkv serve`, docs/SERVER.md).
//
//   qkv::ServerOptions o;
//   o.port = 0;                          // any free port
//   qkv::Server server(model, o);        // binds; throws qkv::Error when it cannot
//   std::printf("%d\n", server.port());
//   server.run();                        // serves until stop() (from another thread or a signal)
//
// Endpoints: POST /v1/chat/completions, /v1/completions, /v1/embeddings, /tokenize, /detokenize;
// GET /v1/models, /health, /metrics; OPTIONS (CORS preflights) on each. Generation runs on one scheduler thread over `n_parallel`
// slots (one KV cache each); requests beyond the slots wait in a queue of `max_queue`, and past
// it get 503 with Retry-After.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qkv/model.h"

namespace qkv {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                 // 0: any free port (Server::port() says which)
  int n_parallel = 4;              // slots: requests generated at the same time
  int64_t n_ctx = 0;               // per slot; 0: the model's trained context
  KvType kv_type = KvType::f32;
  int n_threads = 0;    // 0: all hardware threads
  std::string api_key;  // non-empty: every endpoint but /health needs "Bearer KEY"
  int64_t max_body_bytes = int64_t{1} << 20;
  int max_queue = 64;      // requests waiting for a slot before 503
  std::string model_name;  // the id in /v1/models and responses; empty: the file's stem
  // The model's chat template (Jinja) and its BOS/EOS texts; an empty template: ChatML.
  std::string chat_template;
  std::string bos_text;
  std::string eos_text;
  int64_t prefill_chunk = 64;  // prompt tokens per forward pass between decode steps
  // Which web pages from other origins may call the server from a browser (CORS): "*" any,
  // "none", or origins separated by commas ("https://app.example,http://localhost:3000").
  // Requests without an Origin header (curl, SDKs) and the server's own page are always served.
  std::string cors = "*";
};

class Server {
 public:
  // Binds host:port (throws qkv::Error naming the address when it cannot) and starts the
  // scheduler; no request is served before run().
  Server(Model model, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  // Serves until stop(); returns after in-flight requests are answered or cancelled.
  void run();
  // Safe from any thread and from a signal-handling thread; run() then returns.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qkv
