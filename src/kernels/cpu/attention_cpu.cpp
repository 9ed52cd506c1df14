// CPU backend: picks the SIMD target, cuts the problem into work items, runs them on threads and
// merges split-KV partial results by their log-sum-exp.
#include "kernels/cpu/attention_cpu.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "core/arena.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/cpu/plan.h"
#include "kernels/cpu/targets.h"

namespace qkv::kernels {
namespace cpu {
namespace {

// Query rows per prefill item: each K/V tile packed is used by 128 rows (64 rows measured 5-25%
// slower at 2 threads, most for long causal sequences: docs/PERFORMANCE.md), and S, the Kᵀ and V
// tiles and the output rows of one item stay within L2 for head_dim up to 256.
constexpr int64_t kBlockRows = 128;
// Rows up to which the direct (decode) path is used; must match kDirectRows in flash_impl.inc.
constexpr int64_t kDirectRows = 8;
// Smallest key range worth a split of its own: merging costs O(rows * head_dim_v) per split.
constexpr int64_t kMinSplitKeys = 512;
// Decode chunk: K and V bytes of all kv heads read by one item. Reuse within an item comes from
// its 16-key sub-tiles, so the chunk only sets the number of partials to merge: 256 KiB chunks
// made the (serial) merge cost 20% of a 32k-key decode; 2 MiB leaves enough items to balance
// two threads (decode 32k f16, 12 heads, d 64: 12.9 -> 16-17 GB/s).
constexpr int64_t kDecodeChunkBytes = 2 << 20;
// Most bytes of shared K/V tiles (Plan::packed) held at once; more pairs run in groups.
constexpr int64_t kPackBytes = int64_t{128} << 20;

// The shared-tile budget; QKV_PACK_MIB overrides it (0: one pair per group).
int64_t pack_budget() {
  if (const char* env = std::getenv("QKV_PACK_MIB"))
    return std::max<int64_t>(std::atoll(env), 0) << 20;
  return kPackBytes;
}

}  // namespace

const TargetOps& target_selected() {
  static const TargetOps& ops = pick_target<TargetOps>(
      {&target_generic(), &target_avx2(), &target_avx512()}, selected_target());
  return ops;
}

namespace {

// The row sets of p: every (sequence, head, query) row in exactly one, in the shape its path
// wants. Sets plan.direct and plan.max_rows.
std::vector<Item> plan_rowsets(const AttentionProblem& p, Plan& plan) {
  std::vector<Item> rowsets;
  const int64_t decode_rows = p.group * p.n_q;
  if (decode_rows <= kDirectRows) {
    // Few queries: one item per kv head holds every query head of its group, so each K/V row is
    // read once for all of them (GQA), straight from the cache.
    plan.direct = p.k.stride[3] == 1 && p.v.stride[3] == 1;
    plan.max_rows = decode_rows;
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t hk = 0; hk < p.n_head_kv; ++hk) {
        rowsets.push_back(Item{.b = b,
                               .hk = hk,
                               .h0 = hk * p.group,
                               .n_heads = p.group,
                               .i0 = 0,
                               .n_queries = p.n_q,
                               .k_begin = 0,
                               .k_end = p.n_kv});
      }
    }
  } else {
    plan.max_rows = kBlockRows;
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t h = 0; h < p.n_head; ++h) {
        for (int64_t i0 = 0; i0 < p.n_q; i0 += kBlockRows) {
          rowsets.push_back(Item{.b = b,
                                 .hk = h / p.group,
                                 .h0 = h,
                                 .n_heads = 1,
                                 .i0 = i0,
                                 .n_queries = std::min(kBlockRows, p.n_q - i0),
                                 .k_begin = 0,
                                 .k_end = p.n_kv});
        }
      }
    }
  }
  return rowsets;
}

// Work items: the row sets, their keys split into plan.n_split ranges where that keeps the
// threads busy (or streams a decode cache in order), each with its estimated cost; item_rowset[n]
// is the row set of items[n]. Sets plan.n_split and, when it is > 1, the partial-result slots.
void plan_items(const AttentionProblem& p, int threads, const std::vector<Item>& rowsets,
                Plan& plan, std::vector<Item>& items, std::vector<int64_t>& item_rowset) {
  const int64_t n_rowsets = static_cast<int64_t>(rowsets.size());
  if (plan.direct) {
    // Decode: split the keys into chunks of about kDecodeChunkBytes of K and V over all kv heads,
    // one item per (sequence, chunk) covering every kv head, so the cache streams from memory in
    // order; partial results are merged by LSE (merge_partials).
    const int64_t row_bytes =
        p.n_head_kv * (dtype_bytes(p.k.dtype, p.head_dim) + dtype_bytes(p.v.dtype, p.head_dim_v));
    const int64_t chunk_keys =
        std::max<int64_t>(64, kDecodeChunkBytes / std::max<int64_t>(row_bytes, 1));
    plan.n_split = std::max<int64_t>(1, (p.n_kv + chunk_keys - 1) / chunk_keys);
    const int64_t chunk = (p.n_kv + plan.n_split - 1) / plan.n_split;
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t s = 0; s < plan.n_split; ++s) {
        Item it = rowsets[b * p.n_head_kv];
        it.n_kv_heads = p.n_head_kv;
        it.split = s;
        it.k_begin = std::min(s * chunk, p.n_kv);
        it.k_end = std::min((s + 1) * chunk, p.n_kv);
        it.cost = static_cast<double>(it.k_end - it.k_begin);
        items.push_back(it);
        item_rowset.push_back(b * p.n_head_kv);
      }
    }
  } else {
    // Too few row sets to keep every thread busy: split the keys and merge by LSE afterwards.
    const int64_t want_items = 4 * static_cast<int64_t>(threads);
    if (threads > 1 && n_rowsets < want_items && p.n_kv >= 2 * kMinSplitKeys) {
      plan.n_split = std::min((want_items + n_rowsets - 1) / n_rowsets, p.n_kv / kMinSplitKeys);
    }
    const int64_t chunk = (p.n_kv + plan.n_split - 1) / plan.n_split;
    // Items with their estimated cost; the interval rules are monotone in the query index, so
    // the first and last query bound the keys an item touches.
    items.reserve(static_cast<size_t>(n_rowsets * plan.n_split));
    for (int64_t rs = 0; rs < n_rowsets; ++rs) {
      for (int64_t s = 0; s < plan.n_split; ++s) {
        Item it = rowsets[rs];
        it.split = s;
        it.k_begin = std::min(s * chunk, p.n_kv);
        it.k_end = std::min((s + 1) * chunk, p.n_kv);
        int64_t lo_first, hi_first, lo_last, hi_last;
        p.key_range(it.b, it.i0, &lo_first, &hi_first);
        p.key_range(it.b, it.i0 + it.n_queries - 1, &lo_last, &hi_last);
        const int64_t lo = std::max(std::min(lo_first, lo_last), it.k_begin);
        const int64_t hi = std::min(std::max(hi_first, hi_last), it.k_end);
        it.cost = static_cast<double>(it.n_heads * it.n_queries) *
                  static_cast<double>(std::max<int64_t>(hi - lo, 0) + 16);
        items.push_back(it);
        item_rowset.push_back(rs);
      }
    }
  }
  if (plan.n_split > 1) {
    const size_t slots = static_cast<size_t>(n_rowsets * plan.n_split * plan.max_rows);
    float* buf = core::thread_arena(1).get_as<float>(slots * static_cast<size_t>(p.head_dim_v + 1));
    plan.part_o = buf;
    plan.part_lse = buf + slots * static_cast<size_t>(p.head_dim_v);
  }
}

// Packs every tile of K and V of the (sequence, kv head) pairs [pair0, pair1) into shared tiles
// (Plan::packed) and points the plan at them.
void pack_group(const AttentionProblem& p, const TargetOps& ops, int threads,
                const PackShape& shape, int64_t pair0, int64_t pair1, Plan& plan) {
  float* packed = core::thread_arena(2).get_as<float>(
      static_cast<size_t>((pair1 - pair0) * plan.packed_tiles * shape.tile_floats));
  // Units: one tile of one sequence for the group's kv heads of that sequence, so that a unit
  // reads a contiguous stretch of a [batch, seq, head, dim] tensor.
  std::vector<std::array<int64_t, 3>> units;  // b, first kv head, kv heads
  for (int64_t b = pair0 / p.n_head_kv; b * p.n_head_kv < pair1; ++b) {
    const int64_t hk0 = std::max(pair0, b * p.n_head_kv) - b * p.n_head_kv;
    const int64_t hk1 = std::min(pair1, (b + 1) * p.n_head_kv) - b * p.n_head_kv;
    for (int64_t t = 0; t < plan.packed_tiles; ++t) units.push_back({b, hk0, hk1 - hk0});
  }
  core::parallel_for_dynamic(static_cast<int64_t>(units.size()), threads, [&](int64_t u, int) {
    const auto [b, hk0, n_hk] = units[static_cast<size_t>(u)];
    const int64_t tile = u % plan.packed_tiles;
    const int64_t pair = b * p.n_head_kv + hk0;
    ops.pack_tile(p, b, hk0, n_hk, tile, plan.packed_tiles,
                  packed + ((pair - pair0) * plan.packed_tiles + tile) * shape.tile_floats);
  });
  plan.packed = packed;
  plan.packed_pair0 = pair0;
}

// Runs the items of the pairs [pair0, pair1) on the threads, heaviest first: with items handed
// out in order, this is greedy longest-processing-time scheduling, which keeps causal attention
// (costs from 1 to n) balanced across threads.
void run_group(const AttentionProblem& p, const TargetOps& ops, int threads, const Plan& plan,
               const std::vector<Item>& items, const std::vector<int64_t>& item_rowset,
               int64_t pair0, int64_t pair1) {
  std::vector<int64_t> order;
  for (size_t i = 0; i < items.size(); ++i) {
    const int64_t pair = items[i].b * p.n_head_kv + items[i].hk;
    if (pair >= pair0 && pair < pair1) order.push_back(static_cast<int64_t>(i));
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return items[a].cost > items[b].cost; });
  core::parallel_for_dynamic(static_cast<int64_t>(order.size()), threads, [&](int64_t n, int) {
    const int64_t idx = order[n];
    ops.run_item(plan, items[idx], item_rowset[idx], core::thread_arena(0));
  });
}

// Merges the plan.n_split partial results of each row into out (and lse):
// out = sum_s w_s o_s / sum_s w_s with w_s = exp(lse_s - max lse); lse = max + log(sum w).
void merge_partials(const AttentionProblem& p, const Plan& plan, const std::vector<Item>& rowsets) {
  const int64_t dv = p.head_dim_v;
  const int64_t n_rowsets = static_cast<int64_t>(rowsets.size());
  for (int64_t rs = 0; rs < n_rowsets; ++rs) {
    const Item& it = rowsets[rs];
    const int64_t R = it.n_heads * it.n_queries;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h = it.h0 + r / it.n_queries, i = it.i0 + r % it.n_queries;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < plan.n_split; ++s) {
        mx = std::max(mx, plan.part_lse[(rs * plan.n_split + s) * plan.max_rows + r]);
      }
      float* dst = p.out.data + it.b * p.out.stride[0] + i * p.out.stride[1] + h * p.out.stride[2];
      for (int64_t c = 0; c < dv; ++c) dst[c * p.out.stride[3]] = 0.f;
      float lse = mx;
      if (mx != -std::numeric_limits<float>::infinity()) {
        double wsum = 0;
        for (int64_t s = 0; s < plan.n_split; ++s) {
          const int64_t slot = (rs * plan.n_split + s) * plan.max_rows + r;
          const float w = std::exp(plan.part_lse[slot] - mx);
          if (w == 0.f) continue;
          wsum += w;
          const float* o = plan.part_o + slot * dv;
          for (int64_t c = 0; c < dv; ++c) dst[c * p.out.stride[3]] += w * o[c];
        }
        const float inv = static_cast<float>(1.0 / wsum);
        for (int64_t c = 0; c < dv; ++c) dst[c * p.out.stride[3]] *= inv;
        lse = mx + static_cast<float>(std::log(wsum));
      }
      if (p.lse) p.lse[(it.b * p.n_head + h) * p.n_q + i] = lse;
    }
  }
}

}  // namespace
}  // namespace cpu

std::string_view cpu_target_name() {
  return cpu::target_selected().name;
}

std::string_view cpu_bf16_path(int64_t head_dim) {
  return cpu::target_selected().bf16_path(head_dim);
}

void attention_cpu(const AttentionProblem& p) {
  attention_cpu_on(p, cpu::target_selected());
}

// Plan (row sets, then items), then per group of (sequence, kv head) pairs: pack the shared
// tiles, run the items; then merge split keys' partial results.
void attention_cpu_on(const AttentionProblem& p, const cpu::TargetOps& ops) {
  const int threads = core::resolve_threads(p.opt.n_threads);
  cpu::Plan plan;
  plan.p = &p;
  const std::vector<cpu::Item> rowsets = cpu::plan_rowsets(p, plan);
  std::vector<cpu::Item> items;
  std::vector<int64_t> item_rowset;
  cpu::plan_items(p, threads, rowsets, plan, items, item_rowset);

  // Shared tiles: when several items read the same kv head (query blocks, GQA groups), its K and
  // V tiles are packed once, not once per item. Packing had cost up to a third of the prefill time
  // (docs/PERFORMANCE.md). Pairs (sequence, kv head) are taken in groups whose tiles fit in
  // kPackBytes; each group is packed, then its items run.
  const int64_t n_pairs = p.batch * p.n_head_kv;
  int64_t pairs_per_group = n_pairs;
  cpu::PackShape shape;
  if (!plan.direct && static_cast<int64_t>(items.size()) > n_pairs) {
    shape = ops.pack_shape(p);  // tile_floats 0: the target packs per item (bf16 rounding path)
    plan.packed_tiles = (p.n_kv + shape.tile_keys - 1) / shape.tile_keys;
    const int64_t pair_bytes = plan.packed_tiles * shape.tile_floats * 4;
    pairs_per_group =
        std::clamp<int64_t>(cpu::pack_budget() / std::max<int64_t>(pair_bytes, 1), 1, n_pairs);
  }
  for (int64_t pair0 = 0; pair0 < n_pairs; pair0 += pairs_per_group) {
    const int64_t pair1 = std::min(pair0 + pairs_per_group, n_pairs);
    if (shape.tile_floats > 0) cpu::pack_group(p, ops, threads, shape, pair0, pair1, plan);
    cpu::run_group(p, ops, threads, plan, items, item_rowset, pair0, pair1);
  }

  if (plan.n_split > 1) cpu::merge_partials(p, plan, rowsets);
}

void attention_probs_cpu(const AttentionProblem& p, const float* lse, int64_t batch, int64_t head,
                         std::span<const int64_t> rows, float* probs) {
  cpu::target_selected().probs_rows(p, lse, batch, head, rows.data(),
                                    static_cast<int64_t>(rows.size()), probs,
                                    core::thread_arena(0));
}

}  // namespace qkv::kernels
