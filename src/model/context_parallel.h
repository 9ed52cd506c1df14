// Context parallelism inside the decoder's forward pass (ContextParallel in model/forward.h,
// docs/DISTRIBUTED.md): which of a call's tokens this rank runs and where their K/V go, the
// attention of one layer over the ranks, the logits, and the observer's view on rank 0.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forward.h"
#include "qkv/attention.h"
#include "qkv/observer.h"

namespace qkv::model::cp {

// Rows of this rank in one call: the call's tokens [token0, token0 + n), at global positions
// pos0.., their K/V stored at cache row cache_row (-1: another rank stores them).
struct Piece {
  int64_t token0 = 0, n = 0, pos0 = 0, cache_row = -1;
};

struct Plan {
  bool prefill = false;       // the zig-zag split of a call from an empty sequence
  int64_t n_tokens = 0;       // the call's tokens (on every rank)
  int owner = -1;             // after the prefill: the rank that stores the new tokens' K/V
  std::vector<Piece> pieces;  // this rank's rows, in row order
  // Every rank's cache layout after the call (the same on all ranks).
  std::vector<std::vector<KeyRange>> ranges_after;
  int64_t rows() const;
};

// Checks that every rank makes the same call (count, tokens, all_logits, the sequence so far) and
// plans it. Throws InvalidArgument naming the rank that differs, or Error when a rank's share of
// the cache (capacity rows) would overflow.
Plan plan(ContextParallel& cp, std::span<const int32_t> tokens, bool all_logits, int64_t capacity);
// The layout after the call.
void commit(ContextParallel& cp, Plan&& plan);

// Per layer: whether rank 0's observer wants that layer's attention (asked on rank 0, sent to all).
// Throws InvalidArgument on every rank when that observer wants edits (Observer::wants_edits).
std::vector<char> watched_layers(ContextParallel& cp, Observer* observer, int n_layer);

// The attention of this rank's rows for one layer: the ring at the prefill, the sharded decode
// after. q [rows, n_head, head_dim] dense, out likewise; the cache holds this rank's K/V, the
// call's included. When `watch`, rank 0's observer says which rows and heads it wants
// (Observer::attention_rows); every rank computes their probabilities against its own keys from
// the rows' global log-sum-exp, and rank 0 assembles whole rows for on_attention_rows(). No key
// leaves its rank: rank 0 receives the probabilities and, at the prefill, the requested rows' q
// and lse (ContextParallel::observer_bytes_received counts it).
void attention(ContextParallel& cp, const Plan& plan, const float* q, int64_t n_head,
               int64_t head_dim, KvCache& cache, int layer, const AttentionOptions& opt, float* out,
               bool watch, Observer* observer, std::vector<float>& lse_buf);

// The rank that computes the logits of the call's last token (it holds that row).
int last_row_rank(const ContextParallel& cp, const Plan& plan);
// After the head: with all_logits, rank 0 gets every rank's rows in position order ([n_tokens,
// n_vocab]; the others keep nothing); else the last row goes from last_row_rank to every rank.
void share_logits(ContextParallel& cp, const Plan& plan, std::vector<float>& logits,
                  int64_t n_vocab, bool all_logits);

}  // namespace qkv::model::cp
