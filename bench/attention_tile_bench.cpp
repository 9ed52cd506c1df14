// The attention kernels' pieces in isolation, on the avx2 target.
//
// Prefill: S = Qs·Kᵀ, the online softmax and O = O·corr + P·V for one 128-row item against one
// 64-key tile, with the tile either the same buffer every time (hot in L1/L2) or rotating through
// `tiles` packed tiles (--tiles 512 at d 128 is 38 MB, more than the L3), which shows what
// streaming the tiles costs.
//   build/release/bench/qkv_attention_tile_bench --benchmark_filter='Tile.*/d:128/'
// Counters: GFLOPs of the part run (2 · rows · keys · d per product) and its fraction of one
// core's fp32 FMA peak, measured once at startup; the softmax alone reports its time only.
//
// Decode: one query per head against n_kv keys of an f16 [1, n_kv, kv heads, d] cache on huge
// pages, in the decode path's 16-key tiles: the whole tile (decode_tile), the scores alone (which
// also prefetch the tile's V rows), mask + softmax alone, and P·V alone. n_kv 256 keeps K and V in
// the caches, 32768 streams them from memory.
//   build/release/bench/qkv_attention_tile_bench --benchmark_filter='Decode'
// Counter: per_pair, the time per (key, kv head).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/large_buffer.h"
#include "kernels/cpu/target_common.h"

#if QKV_X86
QKV_TARGET_BEGIN(QKV_TARGET_AVX2)
namespace qkv::kernels::cpu::tile_bench {
#include "kernels/cpu/simd_avx2.h"
#include "kernels/cpu/transpose8.h"
// clang-format off
#include "kernels/cpu/flash_impl.inc"
#include "probes_impl.inc"
// clang-format on
}  // namespace qkv::kernels::cpu::tile_bench
QKV_TARGET_END

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
    static const double peak = probes::fma_peak(0.3) * 1e9;  // one core, measured once per run
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

// One decode item over every kv head of one sequence, as run_item sets it up for the vector
// decode path (G query rows per kv head, head_dim D fixed at compile time).
template <int G, int D>
struct DecodeSetup {
  static constexpr qkv::DType kDt = qkv::DType::f16;
  int64_t n_kv, kv_heads;
  qkv::core::LargeBuffer k, v;
  std::vector<float> q, out;
  qkv::kernels::AttentionProblem p;
  qkv::core::Arena arena;
  Buffers bu;
  DecodeSetup(int64_t n, int64_t hkv)
      : n_kv(n),
        kv_heads(hkv),
        k(static_cast<size_t>(n * hkv * D) * 2),
        v(static_cast<size_t>(n * hkv * D) * 2),
        q(static_cast<size_t>(G * hkv * D)),
        out(q.size()) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    for (uint16_t* t : {k.as<uint16_t>(), v.as<uint16_t>()})
      for (int64_t i = 0; i < n * hkv * D; ++i) t[i] = qkv::core::f32_to_f16(u(rng));
    for (float& x : q) x = u(rng);
    const int64_t heads = G * hkv;
    p = qkv::kernels::make_problem(qkv::View4::dense(q.data(), qkv::DType::f32, {1, 1, heads, D}),
                                   qkv::View4::dense(k.data(), kDt, {1, n, hkv, D}),
                                   qkv::View4::dense(v.data(), kDt, {1, n, hkv, D}),
                                   qkv::MutView4::dense(out.data(), {1, 1, heads, D}), {}, {});
    const int64_t rows = heads;
    bu = carve(arena, rows, D, D);
    for (int64_t r = 0; r < rows; ++r) {  // row r: kv head r / G, query head r (consecutive)
      bu.rows.head[r] = r, bu.rows.query[r] = 0, bu.rows.lo[r] = 0, bu.rows.hi[r] = n;
      for (int64_t c = 0; c < D; ++c) bu.qs[r * D + c] = q[r * D + c] * p.scale;
    }
  }
  void reset() {
    std::fill(bu.rows.m, bu.rows.m + bu.rows.n, -INFINITY);
    std::fill(bu.rows.l, bu.rows.l + bu.rows.n, 0.f);
    std::fill(bu.o, bu.o + bu.rows.n * D, 0.f);
  }
  template <int Part>  // 0: whole tile, 1: scores, 2: mask + softmax, 3: P·V
  void tile(int64_t j0, int64_t nk) {
    const int64_t ncols = round_up(nk, kNb);
    if constexpr (Part == 0) {
      decode_tile<G, D, kDt, false>(p, 0, 0, kv_heads, j0, nk, bu, D, ncols, decode_cache_large(p));
    } else if constexpr (Part == 1) {
      decode_qk_seq<G, D, kDt, false>(p, 0, 0, kv_heads, j0, nk, bu.qs, bu.s, kBk,
                                      decode_cache_large(p));
    } else if constexpr (Part == 2) {
      mask_tile(p, 0, bu.rows, j0, nk, ncols, bu.s, kBk);
      softmax_tile(bu.rows, bu.s, kBk, ncols, false);
    } else {
      for (int64_t n = 0; n < kv_heads; ++n) {
        const char* vb = reinterpret_cast<const char*>(v.data()) + row_offset(p.v, 0, j0, n) * 2;
        decode_pv<G, kDt>(vb, p.v.stride[1] * 2, nk, D, bu.s + n * G * kBk, kBk, bu.o + n * G * D,
                          D, bu.rows.corr + n * G);
      }
    }
  }
};

template <int G, int D, int Part>
void Decode(benchmark::State& state) {
  if (!have_avx2(state)) return;
  DecodeSetup<G, D> t(state.range(0), state.range(1));
  for (auto _ : state) {
    t.reset();
    for (int64_t j0 = 0; j0 < t.n_kv; j0 += kDecodeKeys)
      t.template tile<Part>(j0, std::min(kDecodeKeys, t.n_kv - j0));
    benchmark::ClobberMemory();
  }
  state.counters["per_pair"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * (t.n_kv * t.kv_heads),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void DecodeArgs(benchmark::internal::Benchmark* b, int64_t kv_heads) {
  for (int64_t n : {256, 32768}) b->Args({n, kv_heads});
  b->ArgNames({"n_kv", "kv_heads"});
}
void Mha(benchmark::internal::Benchmark* b) {
  DecodeArgs(b, 12);
}
void Gqa(benchmark::internal::Benchmark* b) {
  DecodeArgs(b, 8);
}

BENCHMARK(Decode<1, 64, 0>)->Name("DecodeMhaD64Tile")->Apply(Mha);
BENCHMARK(Decode<1, 64, 1>)->Name("DecodeMhaD64Scores")->Apply(Mha);
BENCHMARK(Decode<1, 64, 2>)->Name("DecodeMhaD64Softmax")->Apply(Mha);
BENCHMARK(Decode<1, 64, 3>)->Name("DecodeMhaD64Pv")->Apply(Mha);
BENCHMARK(Decode<4, 128, 0>)->Name("DecodeGqa4D128Tile")->Apply(Gqa);
BENCHMARK(Decode<4, 128, 1>)->Name("DecodeGqa4D128Scores")->Apply(Gqa);
BENCHMARK(Decode<4, 128, 2>)->Name("DecodeGqa4D128Softmax")->Apply(Gqa);
BENCHMARK(Decode<4, 128, 3>)->Name("DecodeGqa4D128Pv")->Apply(Gqa);

}  // namespace
#endif

BENCHMARK_MAIN();
