// qkv — observing a forward pass: every named intermediate and every attention call, as it
// happens; and intervening in it: an observer that wants edits may replace any activation.
//
// The runtime calls an Observer (when one is set) after each step of a forward pass. Activation
// names are the same for every architecture where the step exists:
// clang-format off
//   embed                   token (+ position, + token type) embeddings (BERT: after its LayerNorm)
//   attn_norm, q, k, v      per layer: normed input; projections after bias and RoPE
//   attn_out                attention output before the output projection [n, n_head*head_dim_v]
//   attn_proj               after the output projection (and bias)
//   attn_resid              the residual stream after the attention block (BERT: after LayerNorm)
//   ffn_norm                normed input of the MLP (pre-norm models)
//   ffn_gate, ffn_up, ffn_act  the MLP's gate and up projections and the activated product
//   ffn_out                 after the down projection (and bias)
//   layer_out               the residual stream leaving the layer (a "hidden state")
//   final_norm              after the final norm (decoders)
//   logits                  the rows of logits computed
//   pooled                  BERT pooler output
// clang-format on
// Layer-less activations have layer = -1.
//
// Edits (ablation, activation patching): an observer whose wants_edits() is true gets every
// activation above a second time, in on_edit(), with its rows writable; what it leaves there is
// what the rest of the pass computes from (the KV cache gets edited k and v rows, the logits
// returned are edited logits). The head h of attn_out is columns h*head_dim .. (h+1)*head_dim:
// zeroing them removes that head's output. In a batched pass (several sequences) an observer
// sees and edits only its own sequence's rows. Observers that want no edits (the default) are
// never handed a writable pointer, and a pass without observers pays nothing.
//
// Attention events carry q, k and v as the kernel saw them and the per-row log-sum-exp it
// returned, so exact probabilities can be recomputed with qkv::attention_probs() (qkv/attention.h)
// while the run itself stays on the fast path.
//
// A context-parallel pass (SessionOptions::context_parallel) spreads the keys over the ranks of an
// MPI job, so no process could hand out every key. It asks rank 0's observer which query rows and
// heads of a layer it wants (attention_rows()); every rank computes the probabilities of those rows
// against its own keys, from each row's global log-sum-exp, and rank 0's observer gets the rows
// assembled (on_attention_rows()), exactly as attention_probs() over all keys would give them.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "qkv/attention.h"
#include "qkv/dtype.h"

namespace qkv {

struct ActivationEvent {
  std::string_view name;
  int layer = -1;
  int64_t first_position = 0;   // position of row 0
  int64_t n_rows = 0;           // tokens
  int64_t width = 0;            // values per row
  const float* data = nullptr;  // [n_rows, width], dense, valid during the call only
};

struct AttentionEvent {
  int layer = 0;
  int64_t first_position = 0;  // position of query row 0 (= n_kv - n_q)
  // q [1, n_q, n_head, head_dim], k [1, n_kv, n_head_kv, head_dim], v [1, n_kv, n_head_kv,
  // head_dim_v]: every key up to and including the newest query (the KV cache).
  View4 q, k, v;
  const float* out = nullptr;                 // [n_q, n_head * head_dim_v]
  std::span<const float> lse;                 // [n_head, n_q]
  const AttentionOptions* options = nullptr;  // as passed to attention()
};

// What an observer wants of one layer's attention as probabilities (Observer::attention_rows).
struct AttentionRowsRequest {
  std::vector<int64_t> positions;  // query positions; those outside the call's rows are ignored
  std::vector<int> heads;          // query heads
};

// Probabilities of a run of requested query rows of one head: [positions.size(), n_kv], keys
// 0 .. n_kv - 1 (every key up to and including the newest query), masked keys 0.
struct AttentionRowsEvent {
  int layer = 0;
  int head = 0;
  int64_t n_kv = 0;
  std::span<const int64_t> positions;  // ascending
  const float* probs = nullptr;        // valid during the call only
};

class Observer {
 public:
  virtual ~Observer() = default;
  // Asked once per forward pass; false skips all activation events (and their cost).
  virtual bool wants_activations() { return false; }
  virtual void on_activation(const ActivationEvent& /*event*/) {}
  // Asked once per forward pass; true offers every activation to on_edit() (after on_activation()
  // when that is wanted too), `data` the event's rows, writable until the call returns.
  virtual bool wants_edits() { return false; }
  virtual void on_edit(const ActivationEvent& /*event*/, float* /*data*/) {}
  // Asked per layer and forward pass.
  virtual bool wants_attention(int /*layer*/) { return false; }
  virtual void on_attention(const AttentionEvent& /*event*/) {}
  // Context parallelism asks this instead of calling on_attention(), for each layer that
  // wants_attention(): the rows among first_position .. first_position + n_q - 1 and the heads
  // wanted as probabilities. They come to on_attention_rows() head by head (ascending), each head's
  // rows ascending in one or more runs (a run holds about 2^20 probabilities). Return false (the
  // default) when the observer needs q, k and v themselves: the pass then throws InvalidArgument
  // naming the layer.
  virtual bool attention_rows(int /*layer*/, int64_t /*first_position*/, int64_t /*n_q*/,
                              AttentionRowsRequest& /*request*/) {
    return false;
  }
  virtual void on_attention_rows(const AttentionRowsEvent& /*event*/) {}
};

}  // namespace qkv
