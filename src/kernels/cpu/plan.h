// How one attention call is cut into work items, shared by the dispatcher and the SIMD targets.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "kernels/attention_problem.h"

namespace qkv::kernels::cpu {

// One unit of work: rows = n_heads consecutive query heads (all reading kv head `hk`) times
// n_queries consecutive queries, against keys [k_begin, k_end). With n_kv_heads > 1 (decode, direct
// path only) the item covers kv heads hk .. hk + n_kv_heads - 1 with their whole groups (n_heads
// = group) and row sets rowset .. rowset + n_kv_heads - 1, so that one thread reads a contiguous
// stretch of a [batch, n_kv, n_head_kv, dim] cache once, in order.
struct Item {
  int64_t b = 0, hk = 0;
  int64_t h0 = 0, n_heads = 1;
  int64_t i0 = 0, n_queries = 0;
  int64_t k_begin = 0, k_end = 0;
  int64_t split = 0;  // index of the key range when the keys are split across items
  double cost = 0;    // estimated work, for ordering
  int64_t n_kv_heads = 1;
};

struct Plan {
  const AttentionProblem* p = nullptr;
  int64_t n_split = 1;  // key ranges per row set; > 1 writes partial results to be merged
  // Partial results when n_split > 1, indexed by (row set, split):
  //   part_o   [n_rowsets, n_split, rows, head_dim_v]  normalised output of the key range
  //   part_lse [n_rowsets, n_split, rows]
  float* part_o = nullptr;
  float* part_lse = nullptr;
  int64_t max_rows = 0;
  bool direct = false;  // read K/V rows in place (decode) instead of packing tiles
  // Shared tiles (tile path, fp32 mode; null: each item packs its own). Every tile of K (as Kᵀ)
  // and V of the (sequence, kv head) pairs [packed_pair0, packed_pair0 + n) is packed once, before
  // the items of those pairs run, and read by all of them: pair (b * n_head_kv + hk), tile t at
  //   packed + ((pair - packed_pair0) * packed_tiles + t) * PackShape::tile_floats.
  const float* packed = nullptr;
  int64_t packed_pair0 = 0;
  int64_t packed_tiles = 0;
};

// The layout of one shared tile of a target (see Plan::packed).
struct PackShape {
  int64_t tile_keys = 0;  // keys per tile
  int64_t tile_floats =
      0;  // floats per tile: Kᵀ then V, both padded as the micro-kernels read them
};

// Per-target entry points (target_*.cpp).
struct TargetOps {
  const char* name;
  // Runs one item: writes out/lse, or the partial slots when plan.n_split > 1.
  void (*run_item)(const Plan& plan, const Item& item, int64_t rowset, core::Arena& arena);
  // Exact probabilities of rows of one (b, h): see attention_probs().
  void (*probs_rows)(const AttentionProblem& p, const float* lse, int64_t b, int64_t h,
                     const int64_t* rows, int64_t n_rows, float* probs, core::Arena& arena);
  // The shared tile layout for problem p, and the packing of tile `tile` of kv heads
  // hk0 .. hk0 + n_hk - 1 of sequence b into `dst` (the first of those heads' slots, consecutive
  // pairs `tiles_per_pair` tiles apart).
  PackShape (*pack_shape)(const AttentionProblem& p);
  void (*pack_tile)(const AttentionProblem& p, int64_t b, int64_t hk0, int64_t n_hk, int64_t tile,
                    int64_t tiles_per_pair, float* dst);
  // The arithmetic of the bf16 mode's prefill tiles for head_dim: "amx", "avx512_bf16" or
  // "rounding" (bf16-rounded operands, fp32 FMAs).
  const char* (*bf16_path)(int64_t head_dim);
};

// The tables of each target (cpu/targets.h); avx2 and avx512 are the generic one on non-x86 CPUs.
const TargetOps& target_generic();
const TargetOps& target_avx2();
const TargetOps& target_avx512();
// The table of selected_target().
const TargetOps& target_selected();

}  // namespace qkv::kernels::cpu
