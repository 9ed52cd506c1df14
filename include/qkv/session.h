// qkv — running a model: a KV cache, prefill then token-by-token decode, sampling, generation
// with streaming output, and sentence embeddings.
//
//   qkv::Model model = qkv::Model::load("model.gguf");
//   qkv::Session session(model, {.n_ctx = 1024});
//   qkv::GenerateOptions g;
//   g.max_new_tokens = 100;
//   g.sampling.temperature = 0;                           // greedy
//   g.on_text = [](std::string_view s) { std::cout << s << std::flush; return true; };
//   qkv::GenerateResult r = session.generate("Once upon a time", g);
//
//   std::vector<float> e = qkv::embed(bert_model, "a sentence");   // L2-normalised
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/distributed.h"
#include "qkv/model.h"
#include "qkv/observer.h"

namespace qkv {

struct SessionOptions {
  int64_t n_ctx = 0;  // 0: the model's trained context length
  KvType kv_type = KvType::f32;
  int n_threads = 0;  // 0: all hardware threads
  Observer* observer = nullptr;
  // The attention kernel of every layer. Backend::reference runs the naive double-precision
  // oracle (slow: for parity tests, e.g. captured maps against the reference's probabilities).
  Backend attention_backend = Backend::automatic;
  // Context parallelism (decoders; docs/DISTRIBUTED.md): the sequence is split over the ranks of
  // this MPI job, every rank making the same calls with the same tokens. The prefill (the first
  // eval() of an empty session) runs each rank's zig-zag shard of the tokens, attention over the
  // ring; later calls run on every rank against the KV cache sharded over them. Each rank's cache
  // holds its tokens only (about n_ctx / ranks). eval() returns the last row on every rank; with
  // all_logits, every row on rank 0 and nothing on the others. Rank 0's observer gets attention
  // as probability rows (Observer::attention_rows), computed where the keys are; activation
  // events and edits are not offered. Any KV cache type (q8_0 needs head_dim a multiple of 32, as
  // in one process). Null: one process.
  Communicator* context_parallel = nullptr;
};

struct SamplingParams {
  float temperature = 0.8f;    // 0: greedy (argmax)
  int top_k = 40;              // 0: off
  float top_p = 0.95f;         // 1: off
  float min_p = 0.05f;         // 0: off; keeps tokens with p >= min_p * p_max
  float repeat_penalty = 1.f;  // 1: off; divides positive logits (multiplies negative ones)
  int repeat_last_n = 64;      // how many recent tokens the penalty looks at
  uint64_t seed = 0;           // the same seed gives the same tokens
};

// Picks tokens from logits. Order: repetition penalty, temperature, top-k, softmax, top-p,
// min-p, then a draw from the renormalised distribution with a seeded generator.
class Sampler {
 public:
  explicit Sampler(SamplingParams params);
  ~Sampler();
  Sampler(Sampler&&) noexcept;
  Sampler& operator=(Sampler&&) noexcept;
  // Throws InvalidArgument on bad parameters (negative temperature, top_p outside (0, 1], ...).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings (not included in the text)
  bool stop_at_eos = true;
  bool add_special = true;    // BOS when the tokenizer asks for it
  bool parse_special = true;  // special tokens written in the prompt are single tokens
  // Receives the text as it is generated (complete UTF-8 characters only, stop strings held
  // back until they can be ruled out). Return false to stop.
  std::function<bool(std::string_view)> on_text;
};

struct GenerateResult {
  enum class Stop : uint8_t { length, eos, stop_string, context_full, callback };
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> ids;  // generated
  std::string text;          // generated text (without the prompt)
  Stop stop = Stop::length;
  double prefill_seconds = 0;  // the prompt's forward pass
  double decode_seconds = 0;   // the rest: sampling every generated token, the decode steps
  double prefill_tokens_per_second() const;
  double decode_tokens_per_second() const;
};
std::string_view stop_reason_name(GenerateResult::Stop s);

// Where a Session's forward passes spent their time, summed over every eval() and encode() since
// the session was made or reset_stats() (generate() runs eval()). For benchmarks and profiling.
struct SessionStats {
  double matmul_seconds = 0;     // the matrix products (the LM head included)
  double attention_seconds = 0;  // the attention kernel
  double other_seconds = 0;      // norms, RoPE, activations, embeddings, KV cache writes
  int64_t tokens = 0;            // tokens run through the model
  // Context parallelism: bytes this rank received to hand attention rows to rank 0's observer
  // (docs/DISTRIBUTED.md, "Explain stays exact"); 0 otherwise.
  int64_t observer_bytes_received = 0;
};

class Session {
 public:
  explicit Session(Model model, SessionOptions options = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  const Model& model() const;
  int64_t n_ctx() const;
  int64_t n_past() const;  // tokens in the KV cache
  int n_threads() const;   // SessionOptions::n_threads resolved (0: all hardware threads)
  void reset();            // empties the cache
  // Keeps the first n tokens of the cache (0 <= n <= n_past()) and forgets the rest, so a
  // prompt that shares a prefix with what the cache holds runs only from there.
  void truncate(int64_t n);

  // Decoders: runs `tokens` at positions n_past().. (prefill when several, decode when one),
  // appends them to the cache and returns logits: [tokens.size(), n_vocab] when all_logits,
  // else the last row [n_vocab]. Throws qkv::Error when the context would overflow, naming the
  // limit and how to raise it. Encoders (BERT) throw; use encode().
  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false);

  // Encoders: the last layer's hidden states [n, n_embd] of one sequence (bidirectional; the
  // cache is not used). token_types may be empty (all 0).
  std::span<const float> encode(std::span<const int32_t> tokens,
                                std::span<const int32_t> token_types = {});
  // BERT pooler output (tanh(W · h[CLS] + b)) of the last encode(); throws when the model has none.
  std::span<const float> pooled() const;

  // Tokenizes the prompt (BOS as the tokenizer says), runs it in one batch after what is already
  // in the cache (call reset() first for an independent prompt), then samples token by token.
  // EOS (and, for llama2.c models, BOS) ends generation and is left out of ids and text.
  // Throws qkv::Error when the prompt alone overflows the context; running out of context
  // while generating ends with Stop::context_full.
  GenerateResult generate(std::string_view prompt, const GenerateOptions& options = {});
  GenerateResult generate(std::span<const int32_t> prompt_ids, const GenerateOptions& options = {});

  SessionStats stats() const;
  void reset_stats();

  // The forward passes' scratch (activations of the largest batch run so far, converted weight
  // panels per thread) stays with the session between calls; a long-lived process can bound it:
  // workspace_bytes() is what it holds now, release_workspace() frees it (the next call grows it
  // again). The KV cache is not part of it.
  size_t workspace_bytes() const;
  void release_workspace();

 private:
  friend std::vector<std::span<const float>> eval_batch(
      std::span<Session* const> sessions, std::span<const std::span<const int32_t>> tokens);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Decoders: one step of several sessions of the same model together, tokens[i] appended to
// sessions[i] (each session at most once). The rows of all the sessions share each matrix
// product, so the weights are read once per step instead of once per session; attention runs on
// each session's own cache. Batch-invariant: a session's logits are bitwise the same whichever
// other sessions share the call, because the products stay on the matrix-vector kernels, whose
// arithmetic for a row is fixed (for fp32 weights this forgoes the BLAS single-row path that
// eval() takes); they equal eval()'s within rounding. Returns each session's logits [n_vocab],
// valid until that session's next call. Threads, timers and scratch are sessions[0]'s; each
// session's own observer sees its events. Checks everything before running anything: throws
// InvalidArgument for an empty or repeated session, a size mismatch, an encoder, sessions of
// different models or an id outside the vocabulary, and Error when a context is full.
std::vector<std::span<const float>> eval_batch(std::span<Session* const> sessions,
                                               std::span<const int32_t> tokens);
// The same with a run of tokens per session: tokens[i] (at least one) appended to sessions[i],
// so that prompt chunks of some sessions and decode steps of others share one pass (its rows
// share each matrix product). Returns each session's logits of its last token, bitwise the same
// whatever the other runs are. (qkv serve keeps prompt chunks in passes of their own: on 2 cores
// a shared pass made the median time to first token of 8 streams that start together longer for
// the same throughput, docs/PERFORMANCE.md.)
std::vector<std::span<const float>> eval_batch(std::span<Session* const> sessions,
                                               std::span<const std::span<const int32_t>> tokens);

// cls: the last hidden state of [CLS] (as sentence-transformers' CLS pooling, e.g. BGE);
// mean: the mean of all token states; pooler: BERT's pooler output (Session::pooled()).
enum class Pooling : uint8_t { cls, mean, pooler };
struct EmbedOptions {
  Pooling pooling = Pooling::cls;
  bool normalize = true;      // L2
  bool parse_special = true;  // special tokens written in the text ([SEP]) are single tokens
  int n_threads = 0;
};
// A sentence embedding from an encoder model (BERT): [n_embd].
std::vector<float> embed(const Model& model, std::string_view text,
                         const EmbedOptions& options = {});
// The same for token ids as given (no [CLS] or [SEP] added; parse_special unused). Throws
// InvalidArgument for no ids.
std::vector<float> embed(const Model& model, std::span<const int32_t> ids,
                         const EmbedOptions& options = {});

}  // namespace qkv
