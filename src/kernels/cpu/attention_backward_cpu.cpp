// CPU backward pass of attention: cuts the problem into work items that each own some dk/dv rows,
// runs them on threads, and compiles the tiled kernel (attention_backward_impl.inc) per target.
#include "kernels/cpu/target_common.h"  // standard headers, before any `#pragma GCC target`

#include <vector>

#include "core/parallel.h"
#include "kernels/cpu/attention_backward_cpu.h"

namespace qkv::kernels::cpu {

namespace backward_generic {
#include "kernels/cpu/simd_generic.h"
// clang-format off
#include "kernels/cpu/attention_backward_impl.inc"
// clang-format on
}  // namespace backward_generic

#if QKV_X86
QKV_TARGET_BEGIN(QKV_TARGET_AVX2)
namespace backward_avx2 {
#include "kernels/cpu/simd_avx2.h"
// clang-format off
#include "kernels/cpu/attention_backward_impl.inc"
// clang-format on
}  // namespace backward_avx2
QKV_TARGET_END
#endif

namespace {

// One target's item runner (attention_backward_impl.inc).
using RunItem = void (*)(const BackwardProblem&, int64_t, int64_t, int64_t, int64_t, float*,
                         core::Arena&);
constexpr RunItem kBackwardGeneric = backward_generic::run_item;
#if QKV_X86
constexpr RunItem kBackwardAvx2 = backward_avx2::run_item;
constexpr TargetTable<RunItem> kBackwardTargets = {&kBackwardGeneric, &kBackwardAvx2, nullptr};
#else
constexpr TargetTable<RunItem> kBackwardTargets = {&kBackwardGeneric, nullptr, nullptr};
#endif

// Keys per item when the keys of one (sequence, kv head) are split: a multiple of the key tile.
constexpr int64_t kKeyTile = 64;
// Memory for the per-thread dq partials (below) beyond which the keys are not split.
constexpr double kMaxPartialBytes = 256.0 * 1024 * 1024;

struct Item {
  int64_t b, hk, k_begin, k_end;
  double cost;
};

void run(const BackwardProblem& bp, RunItem run_item) {
  const AttentionProblem& p = bp.p;
  const int threads = core::resolve_threads(p.opt.n_threads);

  // dq. The items own dk/dv rows (one key range of one kv head), so dk/dv never race. A dq row
  // gets contributions from every key, so:
  //  - with enough (sequence, kv head) pairs to keep the threads busy, one item takes all keys of
  //    a pair and owns the dq rows of its query heads: no extra memory, no reduction;
  //  - otherwise (one long sequence, MQA) the keys are split, each thread adds into its own dense
  //    dq partial and the partials are summed at the end: O(threads * |dq|) memory and a cheap
  //    reduction, instead of a second pass over the query blocks that would recompute S, P and dP
  //    (7 products instead of 5).
  // "Enough" is 4 items per thread, the forward's rule for splitting keys (attention_cpu.cpp).
  const int64_t owners = p.batch * p.n_head_kv;
  int64_t n_split = 1;
  // The partials cost threads * |dq| floats; past kMaxPartialBytes the pairs run whole instead.
  const double partial_bytes = 4.0 * threads * static_cast<double>(p.batch * p.n_head * p.n_q) *
                               static_cast<double>(p.head_dim);
  if (threads > 1 && owners < 4 * static_cast<int64_t>(threads) &&
      partial_bytes <= kMaxPartialBytes) {
    const int64_t tiles = std::max<int64_t>(1, (p.n_kv + kKeyTile - 1) / kKeyTile);
    n_split = std::min((4 * static_cast<int64_t>(threads) + owners - 1) / owners, tiles);
  }
  const int64_t per_item = (p.n_kv + n_split - 1) / n_split;
  const int64_t chunk = std::max<int64_t>(1, (per_item + kKeyTile - 1) / kKeyTile) * kKeyTile;
  n_split = std::max<int64_t>(1, (p.n_kv + chunk - 1) / chunk);

  // Per-thread dq partials, [threads][batch, n_head, n_q, head_dim], when the keys are split.
  const int64_t part_size = n_split > 1 ? p.batch * p.n_head * p.n_q * p.head_dim : 0;
  float* parts = core::thread_arena(1).get_as<float>(static_cast<size_t>(threads * part_size + 1));
  if (n_split > 1) std::fill(parts, parts + threads * part_size, 0.f);

  // Items, heaviest first (greedy balancing): the cost is the number of (query, key) pairs the
  // interval rules allow in the item's key range.
  std::vector<Item> items;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t hk = 0; hk < p.n_head_kv; ++hk) {
      for (int64_t s = 0; s < n_split; ++s) {
        Item it{.b = b,
                .hk = hk,
                .k_begin = std::min(s * chunk, p.n_kv),
                .k_end = std::min((s + 1) * chunk, p.n_kv),
                .cost = 0};
        for (int64_t i = 0; i < p.n_q; ++i) {
          int64_t lo, hi;
          p.key_range(b, i, &lo, &hi);
          it.cost += static_cast<double>(
              std::max<int64_t>(0, std::min(hi, it.k_end) - std::max(lo, it.k_begin)));
        }
        items.push_back(it);
      }
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.cost > b.cost; });
  core::parallel_for_dynamic(static_cast<int64_t>(items.size()), threads, [&](int64_t n, int t) {
    const Item& it = items[static_cast<size_t>(n)];
    run_item(bp, it.b, it.hk, it.k_begin, it.k_end, n_split > 1 ? parts + t * part_size : nullptr,
             core::thread_arena(0));
  });
  if (n_split == 1) return;

  // dq = sum of the per-thread partials.
  const MutView4& dq = bp.dq;
  core::parallel_for_dynamic(p.batch * p.n_head, threads, [&](int64_t bh, int) {
    const int64_t b = bh / p.n_head, h = bh % p.n_head;
    for (int64_t i = 0; i < p.n_q; ++i) {
      float* dst = dq.data + b * dq.stride[0] + i * dq.stride[1] + h * dq.stride[2];
      const int64_t off = (bh * p.n_q + i) * p.head_dim;
      for (int64_t c = 0; c < p.head_dim; ++c) {
        float acc = 0.f;
        for (int t = 0; t < threads; ++t) acc += parts[t * part_size + off + c];
        dst[c * dq.stride[3]] = acc;
      }
    }
  });
}

}  // namespace

}  // namespace qkv::kernels::cpu

namespace qkv::kernels {

void attention_backward_cpu_on(const BackwardProblem& bp, std::string_view target) {
  // Per target (cpu/targets.h); the avx2 code also serves avx512 machines.
  const cpu::Target t = target == "avx512" ? cpu::Target::avx512
                        : target == "avx2" ? cpu::Target::avx2
                                           : cpu::Target::generic;
  cpu::run(bp, cpu::pick_target(cpu::kBackwardTargets, t));
}

void attention_backward_cpu(const BackwardProblem& bp) {
  attention_backward_cpu_on(bp, cpu::target_name(cpu::selected_target()));
}

}  // namespace qkv::kernels
