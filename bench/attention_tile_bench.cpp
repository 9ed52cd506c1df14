// The prefill tile's pieces in isolation, on the avx2 target: S = Qs·Kᵀ, the online softmax and
// O = O·corr + P·V for one 128-row item against one 64-key tile, with the tile either the same
// buffer every time (hot in L1/L2) or rotating through `tiles` packed tiles (--tiles 512 at d 128
// is 38 MB, more than the L3), which shows what streaming the tiles costs.
//   build/release/bench/qkv_attention_tile_bench --benchmark_filter='Tile.*/d:128/'
// Counters: GFLOPs of the part run (2 · rows · keys · d per product) and its fraction of one
// core's fp32 FMA peak, measured once at startup; the softmax alone reports its time only.
#include <benchmark/benchmark.h>

#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/target_common.h"

#if QKV_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace qkv::kernels::cpu::tile_bench {
#include "kernels/cpu/simd_avx2.h"
#include "kernels/cpu/transpose8.h"
// clang-format off
#include "kernels/cpu/flash_impl.inc"
// clang-format on
}  // namespace qkv::kernels::cpu::tile_bench
#pragma GCC pop_options

namespace {

using namespace qkv::kernels::cpu::tile_bench;

constexpr int64_t kRows = 128;

struct TileBuffers {
  int64_t d, dv_pad, tile_floats, n_tiles;
  std::vector<float> q, s, o, corr, m, l, tiles;
  Rows rows;
  explicit TileBuffers(int64_t head_dim, int64_t n) : d(head_dim), dv_pad(head_dim), n_tiles(n) {
    tile_floats = d * kBk + kBk * dv_pad;
    q.assign(kRows * d, 0.01f);
    s.assign(kRows * kLds, 0.5f);
    o.assign(kRows * dv_pad, 0.f);
    corr.assign(kRows, 1.f);
    m.assign(kRows, 0.f);
    l.assign(kRows, 0.f);
    tiles.assign(n_tiles * tile_floats, 0.02f);
    rows.n = kRows, rows.m = m.data(), rows.l = l.data(), rows.corr = corr.data();
  }
  const float* kt(int64_t t) const { return tiles.data() + (t % n_tiles) * tile_floats; }
  const float* vp(int64_t t) const { return kt(t) + d * kBk; }
  void qk(int64_t t) { qk_tile(kRows, q.data(), d, kt(t), kBk, s.data(), kLds); }
  void softmax() {
    std::fill(m.begin(), m.end(), 0.f);  // keep the running max from drifting
    softmax_tile(rows, s.data(), kLds, kBk, false);
  }
  void pv(int64_t t) { pv_tile(kRows, s.data(), kLds, vp(t), dv_pad, o.data(), corr.data(), kBk); }
};

bool have_avx2(benchmark::State& state) {
  if (qkv::core::cpu_features().has_avx2_target()) return true;
  state.SkipWithError("this CPU has no AVX2 + FMA + F16C");
  return false;
}

template <int Part>  // 0: S = Qs·Kᵀ, 1: softmax, 2: P·V, 3: all three
void Tile(benchmark::State& state) {
  if (!have_avx2(state)) return;
  TileBuffers t(state.range(0), state.range(1));
  int64_t i = 0;
  for (auto _ : state) {
    if (Part == 0 || Part == 3) t.qk(i);
    if (Part == 1 || Part == 3) t.softmax();
    if (Part == 2 || Part == 3) t.pv(i);
    ++i;
    benchmark::ClobberMemory();
  }
  // FLOPs of the part run: 2 · rows · keys · d per product; the softmax alone reports time only.
  const double flops = (Part == 3 ? 4.0 : 2.0) * kRows * kBk * static_cast<double>(t.d);
  if (Part != 1) {
    static const double peak = fma_peak(0.3) * 1e9;  // one core, measured once per run
    state.counters["GFLOPs"] =
        benchmark::Counter(flops * state.iterations(), benchmark::Counter::kIsRate);
    state.counters["of_peak"] =
        benchmark::Counter(flops * state.iterations() / peak, benchmark::Counter::kIsRate);
  }
}

void Args(benchmark::internal::Benchmark* b) {
  for (int64_t d : {64, 128}) {
    for (int64_t tiles : {1, 512}) b->Args({d, tiles});
  }
  b->ArgNames({"d", "tiles"});
}

BENCHMARK(Tile<0>)->Name("TileQk")->Apply(Args);
BENCHMARK(Tile<1>)->Name("TileSoftmax")->Apply(Args);
BENCHMARK(Tile<2>)->Name("TilePv")->Apply(Args);
BENCHMARK(Tile<3>)->Name("TileAll")->Apply(Args);

}  // namespace
#endif

BENCHMARK_MAIN();
