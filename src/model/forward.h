// The model layer's interface to the runtime: the KV cache and the forward passes.
// (The public qkv::Session in the runtime layer is built on these.)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/large_buffer.h"
#include "kernels/linear.h"
#include "qkv/distributed.h"
#include "qkv/model.h"
#include "qkv/observer.h"

namespace qkv::model {

// Per layer K [n_ctx, n_head_kv, head_dim] and V [n_ctx, n_head_kv, head_dim_v], f32, f16 or q8_0
// blocks, in core::LargeBuffer (huge pages for the blocks a long-context decode streams).
class KvCache {
 public:
  KvCache(const Model& model, int64_t n_ctx, KvType type);
  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_past() const { return n_past_; }
  void set_n_past(int64_t n) { n_past_ = n; }
  KvType type() const { return type_; }
  DType dtype() const {
    return type_ == KvType::f16 ? DType::f16 : type_ == KvType::q8_0 ? DType::q8_0 : DType::f32;
  }
  std::byte* k(int layer) { return k_[static_cast<size_t>(layer)].data(); }
  std::byte* v(int layer) { return v_[static_cast<size_t>(layer)].data(); }
  // The K or V rows of `layer` from position pos on.
  std::byte* k_at(int layer, int64_t pos) { return k(layer) + dtype_bytes(dtype(), pos * k_row_); }
  std::byte* v_at(int layer, int64_t pos) { return v(layer) + dtype_bytes(dtype(), pos * v_row_); }
  int64_t k_row() const { return k_row_; }  // elements per position (n_head_kv * head_dim)
  int64_t v_row() const { return v_row_; }
  size_t bytes() const;

 private:
  int64_t n_ctx_ = 0, n_past_ = 0, k_row_ = 0, v_row_ = 0;
  KvType type_ = KvType::f32;
  std::vector<core::LargeBuffer> k_, v_;
};

// Where a forward pass spent its time (seconds), accumulated over calls.
struct ForwardTimes {
  double linear = 0;     // all matrix products (incl. the LM head)
  double attention = 0;  // the attention kernel
  double other = 0;      // norms, RoPE, activations, embeddings, cache writes
  int64_t tokens = 0;
};

// Scratch of the forward passes: the activations of one call (each [n, width], grown to the
// largest call made with it) and the linear layers' per-thread weight panels. A Session owns one,
// so that a long-lived process can see and free what its sessions hold.
struct Workspace {
  std::vector<float> x, h, q, k, v, att, proj, up, gate, lse, rows;
  std::vector<float> logits;  // a batched step's packed last rows [B, n_vocab]
  kernels::LinearScratch linear;
  size_t bytes() const;  // capacity held
  void release();        // frees everything; the next call grows it again
};

// One sequence split over the ranks of an MPI job ("context parallelism", docs/DISTRIBUTED.md):
// every rank holds the weights and runs the same calls with the same tokens. A call from an
// empty sequence (the prefill) runs on each rank only its zig-zag shard of the tokens
// (zigzag_shard) at their global positions, attention passing K/V around the ring
// (ring_attention). Later calls (decode steps) run their tokens on every rank; their K/V is stored
// by one rank, the owner, and attention reduces every rank's partial over its shard of the cache
// (sharded_decode_attention). The owner keeps taking the new tokens until it has taken kRun of
// them in a row; then the rank holding the fewest tokens takes over (the lowest one on ties), so
// that the shards stay within kRun + 2 tokens of each other and each holds few ranges of keys.
// Every rank keeps the whole layout (the same on all ranks), so that each can tell what the
// others hold. The KV cache of a rank holds its own tokens only, in the order of `ranges`.
struct ContextParallel {
  static constexpr int64_t kRun = 256;
  ContextParallel(Communicator& c, int64_t context) : comm(&c), n_ctx(context) { reset(); }
  Communicator* comm;
  int64_t n_ctx = 0;   // the whole sequence's context length (each cache holds a share)
  int64_t n_past = 0;  // tokens of the whole sequence so far
  // Per rank: the global positions of its cache rows, in cache order.
  std::vector<std::vector<KeyRange>> ranges;
  int run_owner = -1;     // the rank taking new tokens; -1: none yet
  int64_t run_taken = 0;  // tokens it has taken in this run
  // Bytes this rank received to hand attention rows to rank 0's observer (probabilities, and the
  // queries and log-sum-exp of requested rows it does not hold); reset() keeps it.
  int64_t observer_bytes_received = 0;
  void reset();
  int64_t held(int rank) const;  // tokens in that rank's cache
  // Cache rows one rank needs for a sequence of n_ctx tokens: its share and a run of slack.
  static int64_t local_capacity(int64_t n_ctx, int n_ranks);
};

// How a forward pass runs; the defaults are what a plain caller wants.
struct ForwardOptions {
  int n_threads = 0;              // 0: all hardware threads
  Observer* observer = nullptr;   // offered every intermediate (qkv/observer.h)
  ForwardTimes* times = nullptr;  // accumulates where the time went
  // The attention kernel; Backend::reference (the double-precision oracle) is for parity tests of
  // what runs on top of attention.
  Backend attention_backend = Backend::automatic;
  Workspace* workspace = nullptr;  // null: scratch allocated for this call only
  // The matrix products' path. LinearPath::gemv keeps every row on the matrix-vector kernels,
  // whose result for a row does not depend on the other rows or their number (a server's
  // batch-invariant decode steps); automatic picks the fastest path for the row count.
  kernels::LinearPath linear_path = kernels::LinearPath::automatic;
  // Split the sequence over the ranks of an MPI job (decoder_forward with one sequence only). Then
  // tokens are the whole sequence's new tokens on every rank, and the logits: the last row on
  // every rank, or with all_logits every row in position order on rank 0 (empty elsewhere).
  // Attention goes to rank 0's observer only, as probability rows assembled from every rank's keys
  // (Observer::attention_rows; no key is gathered); activation events are not offered.
  ContextParallel* context_parallel = nullptr;
  // Decoders: start at layer `layer` from a residual stream the caller kept, [rows of all steps,
  // n_embd] (the embeddings for layer 0, else layer_out of layer - 1), instead of embedding the
  // tokens; layer = n_layer runs the final norm and the head only. The layers below are not run
  // and their KV cache rows are not written: right when the rows kept come from a run of the same
  // tokens at the same positions whose cache rows are still there, or when nothing reads them (a
  // prompt rerun from an empty cache reads only the layers it runs). Reruns after an
  // intervention at `layer` (qkv::ablate_heads) start there.
  // Decoders without all_logits: the last layer runs the attention, its projection and the MLP
  // for each sequence's last row only (the K/V of every row are still computed and cached). The
  // logits are those of a full pass up to the matrix products' rounding for one row; observers
  // see the last layer's activations from attn_out on for that row only (first_position says
  // which). Saves most of a layer for callers that run many passes for one row's logits
  // (qkv::ablate_heads, patch_activations).
  bool last_rows_only = false;
  // With attn_out as well ([rows of all steps, n_head * head_dim], the attention output of
  // `layer` kept from a run of the same residual stream), layer `layer` starts at its attention
  // output: its norm, q, K, V and attention are not run (nor its cache rows written), since an
  // edit of attn_out or anything after it (an ablated head) cannot change them. Observers see
  // that layer's activations from attn_out on. With last_rows_only and the last layer, only the
  // last row of each sequence runs at all.
  struct Resume {
    int layer = 0;
    std::span<const float> residual;  // empty: embed the tokens (layer must be 0)
    std::span<const float> attn_out;  // empty: run layer `layer` whole
  } resume{};
};

// Decoder (GPT-2, LLaMA): runs `tokens` at positions cache.n_past().., appends their K/V to the
// cache and writes logits: [tokens.size(), n_vocab] when all_logits, else the last row only.
// Throws qkv::Error when n_past + tokens would exceed the cache, naming the limit.
void decoder_forward(const Model& model, KvCache& cache, std::span<const int32_t> tokens,
                     bool all_logits, std::vector<float>& logits,
                     const ForwardOptions& options = {});

// One sequence of a batched decoder pass: its cache, the tokens it appends (at positions
// cache->n_past()..) and where its logits go ([tokens, n_vocab] when all_logits, else the last
// row). `observer` sees this sequence's events only (positions are this sequence's own).
struct SequenceStep {
  KvCache* cache = nullptr;
  std::span<const int32_t> tokens;
  bool all_logits = false;
  std::vector<float>* logits = nullptr;
  Observer* observer = nullptr;
};

// Several sequences of one model in one pass: the rows of all of them go through each matrix
// product together (the weights are read once), attention runs per sequence on its own cache.
// Row-wise steps and attention do not mix sequences, so with options.linear_path = gemv each
// sequence's logits are bitwise what it gets alone. options.observer is ignored (use the steps').
// Checks every step (tokens, context) before running any.
void decoder_forward_batch(const Model& model, std::span<const SequenceStep> steps,
                           const ForwardOptions& options = {});

// Encoder (BERT): one sequence, bidirectional. hidden: [n, n_embd] of the last layer; pooled
// (when not null and the model has a pooler): tanh(W · hidden[0] + b).
void encoder_forward(const Model& model, std::span<const int32_t> tokens,
                     std::span<const int32_t> token_types, std::vector<float>& hidden,
                     std::vector<float>* pooled, const ForwardOptions& options = {});
bool has_pooler(const Model& model);

}  // namespace qkv::model
