// Kernel benchmarks: prefill and decode shapes, with GFLOP/s and GB/s counters.
//   build/release/bench/qkv_attention_bench --benchmark_filter=Prefill
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/half.h"
#include "qkv/attention.h"

namespace {

struct Problem {
  std::vector<float> q, out, lse;
  std::vector<uint16_t> k, v;
  qkv::View4 qv, kv, vv;
  qkv::MutView4 ov;
  Problem(int64_t n_q, int64_t n_kv, int64_t heads, int64_t kv_heads, int64_t d) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    q.resize(n_q * heads * d);
    out.resize(q.size());
    lse.resize(n_q * heads);
    k.resize(n_kv * kv_heads * d);
    v.resize(k.size());
    for (auto& x : q) x = u(rng);
    for (auto& x : k) x = qkv::f32_to_f16(u(rng));
    for (auto& x : v) x = qkv::f32_to_f16(u(rng));
    qv = qkv::View4::dense(q.data(), qkv::DType::f32, {1, n_q, heads, d});
    kv = qkv::View4::dense(k.data(), qkv::DType::f16, {1, n_kv, kv_heads, d});
    vv = qkv::View4::dense(v.data(), qkv::DType::f16, {1, n_kv, kv_heads, d});
    ov = qkv::MutView4::dense(out.data(), {1, n_q, heads, d});
  }
};

// Args: n, head_dim, causal, threads. 12 heads.
void Prefill(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1);
  Problem p(n, n, 12, 12, d);
  qkv::AttentionOptions opt;
  opt.causal = state.range(2) != 0;
  opt.n_threads = static_cast<int>(state.range(3));
  for (auto _ : state) qkv::attention(p.qv, p.kv, p.vv, p.ov, p.lse, opt);
  state.counters["GFLOP/s"] =
      benchmark::Counter(qkv::attention_flops(1, 12, n, n, d, opt.causal) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(Prefill)
    ->Args({2048, 64, 0, 1})
    ->Args({2048, 64, 1, 1})
    ->Args({2048, 128, 0, 1})
    ->Args({2048, 64, 0, 2})
    ->Args({2048, 64, 1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Args: n_kv, threads. One query, GQA 32/8, head_dim 128, f16 K/V.
void Decode(benchmark::State& state) {
  const int64_t n = state.range(0);
  Problem p(1, n, 32, 8, 128);
  qkv::AttentionOptions opt;
  opt.causal = true;
  opt.n_threads = static_cast<int>(state.range(1));
  for (auto _ : state) qkv::attention(p.qv, p.kv, p.vv, p.ov, p.lse, opt);
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(p.k.size() * 4) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(Decode)
    ->Args({4096, 1})
    ->Args({32768, 1})
    ->Args({32768, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
