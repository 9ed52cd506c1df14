// Pieces shared by the ring and the sharded decode: the attention options of one (query chunk,
// key block) pair in the block's own coordinates, packing of K/V blocks, LSE merges.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qkv/attention.h"
#include "qkv/distributed.h"

namespace qkv::distributed {

// The options of attention() for queries [q_begin, q_begin + n_q) of the global problem against
// global keys [k_begin, k_begin + n_k), in the coordinates of that call: query positions shifted
// by -k_begin (q_offsets, which may then be negative), kv_lengths cut to the block, the explicit
// mask's view moved to the block's rows and columns. `global` is in global terms; q_pos0[b] is the
// global position of global query 0 of sequence b (q_offsets[b], or n_kv - n_q).
struct BlockOptions {
  AttentionOptions opt;
  std::vector<int32_t> q_offsets;   // [batch]
  std::vector<int32_t> kv_lengths;  // [batch] or empty
  bool empty = false;               // no query of the pair sees any key: skip the call

  BlockOptions(const AttentionOptions& global, std::span<const int64_t> q_pos0, int64_t q_begin,
               int64_t n_q, int64_t k_begin, int64_t n_k);
};

// The global position of query 0 of each sequence: q_offsets[b], or n_kv - n_q.
std::vector<int64_t> query_positions(const AttentionOptions& global, int64_t batch, int64_t n_q,
                                     int64_t n_kv);

// Blocks of k and v move as they are: with a block dtype (q8_0) head_dim and head_dim_v must be
// whole blocks. Checked before any transfer, on every rank alike; throws InvalidArgument.
void check_blocks(const char* what, const View4& k, const View4& v);

// tokens [t0, t0 + n) of a [batch, seq, heads, dim] view.
View4 rows(const View4& t, int64_t t0, int64_t n);
MutView4 rows(const MutView4& t, int64_t t0, int64_t n);

// Copies a view into dense [batch, seq, heads, dim] storage of its dtype at `dst`; returns bytes.
int64_t pack(const View4& t, void* dst);
int64_t packed_bytes(const View4& t);

// Online-softmax merge of a partial (out, lse) into an accumulator, for n_rows = batch * n_head *
// n_q rows: acc_out and part_out are dense [batch, n_q, n_head, dv], the lse [batch, n_head, n_q].
// A partial with lse = -inf (no key seen) changes nothing.
void merge_into(float* acc_out, float* acc_lse, const float* part_out, const float* part_lse,
                int64_t batch, int64_t n_q, int64_t n_head, int64_t dv);

// Writes dense [batch, n, heads, dim] fp32 rows into a strided view at token t0.
void store_rows(const float* src, const MutView4& dst, int64_t t0, int64_t n);

}  // namespace qkv::distributed
