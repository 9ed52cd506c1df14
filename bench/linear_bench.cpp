// Linear layers y = x · Wᵀ: GEMM (prefill, m = 512) in GFLOP/s and matrix-vector (decode, m = 1)
// in GB/s of weights, per weight type and thread count, with ratios to this machine's measured
// peaks (FMA throughput, DRAM read bandwidth) and to the GEMM library's own sgemm/sgemv on fp32
// weights, timed in the same run.
//   nice -n -20 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
//       build/release/bench/qkv_linear_bench --benchmark_filter=Gemv --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include <sys/mman.h>

#include "core/half.h"
#include "core/parallel.h"
#include "kernels/cpu/linear_gemm.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/linear.h"
#include "kernels/quant/blocks.h"
#include "qkv_bench/probe.h"
#include "qkv_bench/probe_targets.h"

namespace {

using qkv::kernels::Linear;
using qkv::kernels::LinearPath;
using qkv::kernels::WeightType;
using qkv::kernels::WeightView;
constexpr size_t kQ8Bytes = sizeof(qkv::kernels::quant::BlockQ8_0);

// n_in x n_out of GPT-2 124M (qkv, attn out, mlp up, mlp down, LM head) and of a LLaMA-1B-like
// model (q/o, k/v with GQA, up/gate, down, LM head).
constexpr int64_t kShapes[][2] = {{768, 2304},  {768, 768},   {768, 3072}, {3072, 768},
                                  {768, 50257}, {2048, 2048}, {2048, 512}, {2048, 8192},
                                  {8192, 2048}, {2048, 32000}};
constexpr int kNumShapes = 10;
// Weights are cycled through copies totalling at least this much, so decode reads DRAM as it does
// in a model whose layers together exceed the 32 MiB L3, not a cache-resident matrix.
constexpr int64_t kColdBytes = int64_t{160} << 20;

// Read bandwidth of a plain read loop over 4 KiB pages (the probe uses huge pages, which block
// formats read in place from a model file's mapping do not get): what their layout allows.
double read_gbps_4k(int threads) {
  static std::map<int, double> cache;
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  const int64_t n = int64_t{1} << 26;  // 256 MiB of floats
  float* buf = static_cast<float*>(std::aligned_alloc(4096, static_cast<size_t>(n) * 4));
  madvise(buf, static_cast<size_t>(n) * 4, MADV_NOHUGEPAGE);
  std::memset(buf, 0, static_cast<size_t>(n) * 4);
  const auto& ops = qkv::bench::probe_ops_selected();
  const int64_t per = n / threads / 64 * 64;
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    std::vector<float> sink(static_cast<size_t>(threads));
    const auto t0 = std::chrono::steady_clock::now();
    qkv::core::parallel_for_dynamic(
        threads, threads, [&](int64_t t, int) { sink[t] = ops.read_sum(buf + per * t, per); });
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(sink.data());
    best = std::max(best, static_cast<double>(per) * threads * 4 / dt * 1e-9);
  }
  std::free(buf);
  return cache[threads] = best;
}

const qkv::kernels::MachinePeak& peak(int threads) {
  static std::map<int, qkv::kernels::MachinePeak> cache;
  auto it = cache.find(threads);
  if (it == cache.end())
    it = cache.emplace(threads, qkv::kernels::measure_machine_peak(threads)).first;
  return it->second;
}

// Copies of one random weight [n_out, n_in] in `type`, held as the runtime holds a model's
// weights: fp32/f16/bf16 in memory advised to use huge pages (Linear copies them out of the file
// mapping; f16/bf16 into the interleaved layout, as models load them), the block formats in 4 KiB
// pages (read in place from the file mapping).
struct Weights {
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<uint8_t, Free>> copies;
  std::vector<Linear> linear;
  int64_t bytes = 0;
  Weights(WeightType type, int64_t n_in, int64_t n_out, int n_copies) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    const int64_t row = qkv::kernels::weight_row_bytes(type, n_in);
    bytes = row * n_out;
    std::vector<uint8_t> w(static_cast<size_t>(bytes));
    for (int64_t o = 0; o < n_out; ++o) {
      uint8_t* r = w.data() + o * row;
      for (int64_t k = 0; k < n_in; ++k) {
        const float v = u(rng);
        uint16_t h = type == WeightType::f16 ? qkv::core::f32_to_f16(v) : qkv::core::f32_to_bf16(v);
        if (type == WeightType::f32) std::memcpy(r + 4 * k, &v, 4);
        if (type == WeightType::f16 || type == WeightType::bf16) std::memcpy(r + 2 * k, &h, 2);
        if (type == WeightType::q8_0) {
          if (k % 32 == 0) {
            h = qkv::core::f32_to_f16(1.0f / 127);
            std::memcpy(r + k / 32 * kQ8Bytes, &h, 2);
          }
          r[k / 32 * kQ8Bytes + 2 + k % 32] = static_cast<uint8_t>(static_cast<int8_t>(v * 127));
        }
      }
    }
    const bool huge = !qkv::kernels::weight_quant_type(type).has_value();
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t size = (static_cast<size_t>(bytes) + kHuge - 1) / kHuge * kHuge;
    for (int c = 0; c < n_copies; ++c) {
      auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHuge, size));
      if (!p) throw std::bad_alloc();
      madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
      std::memcpy(p, w.data(), static_cast<size_t>(bytes));
      copies.emplace_back(p);
      linear.emplace_back(WeightView{type, n_out, n_in, p, 0}, nullptr,
                          qkv::kernels::LinearDot::exact, qkv::kernels::LinearLayout::interleaved);
    }
  }
};

template <typename F>
double median_seconds(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Seconds of the library's fp32 sgemm (m > 1) or sgemv (m == 1) on the same shape, cold weights
// for sgemv as for ours; cached per (shape, m, threads).
double library_seconds(int shape, int64_t m, int threads) {
  static std::map<std::tuple<int, int64_t, int>, double> cache;
  const auto key = std::make_tuple(shape, m, threads);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const int64_t n_in = kShapes[shape][0], n_out = kShapes[shape][1];
  const int64_t bytes = n_in * n_out * 4;
  const int n_copies = m == 1 ? static_cast<int>(std::max<int64_t>(1, kColdBytes / bytes + 1)) : 1;
  Weights w(WeightType::f32, n_in, n_out, n_copies);
  std::vector<float> x(static_cast<size_t>(m * n_in), 0.5f), y(static_cast<size_t>(m * n_out));
  int next = 0;
  const auto run = [&] {
    const auto* wp = reinterpret_cast<const float*>(w.copies[next].get());
    next = (next + 1) % n_copies;
    if (m == 1) {
      qkv::kernels::cpu::sgemv_n(n_out, n_in, wp, n_in, x.data(), y.data(), threads);
    } else {
      qkv::kernels::cpu::sgemm_nt(m, n_out, n_in, x.data(), n_in, wp, n_in, y.data(), n_out,
                                  threads);
    }
  };
  run();
  const double flop = 2.0 * m * n_in * n_out;
  const int reps = static_cast<int>(std::clamp(3e9 / flop, 3.0, 200.0));
  const double s = median_seconds(reps, run);
  cache.emplace(key, s);
  return s;
}

// Args: shape, weight type, threads, m, path (0 automatic, 1 gemv, 2 gemm).
void Linear_(benchmark::State& state) {
  const int shape = static_cast<int>(state.range(0));
  const auto type = static_cast<WeightType>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  const int64_t m = state.range(3);
  const auto path = static_cast<LinearPath>(state.range(4));
  const int64_t n_in = kShapes[shape][0], n_out = kShapes[shape][1];
  const int64_t bytes = qkv::kernels::weight_row_bytes(type, n_in) * n_out;
  const bool decode = m <= 16;
  const int n_copies = decode ? static_cast<int>(std::max<int64_t>(1, kColdBytes / bytes + 1)) : 1;
  Weights w(type, n_in, n_out, n_copies);
  std::vector<float> x(static_cast<size_t>(m * n_in), 0.5f), y(static_cast<size_t>(m * n_out));
  const auto& pk = peak(threads);
  const double lib = library_seconds(shape, m, threads);
  int next = 0;
  const auto& target = qkv::kernels::cpu::linear_target_selected();
  for (auto _ : state) {
    w.linear[next].forward_on(target, path, x.data(), m, n_in, y.data(), n_out, threads);
    next = (next + 1) % n_copies;
  }
  const double flop = 2.0 * m * n_in * n_out;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flop * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  // Ratios need the per-iteration time, which the counters above only know after the run;
  // they are finished in the reporter below from these two.
  state.counters["lib_us"] = lib * 1e6;
  state.counters["peak_gflops"] = pk.fma_gflops;
  state.counters["peak_gbps"] = pk.read_gbps;
  state.counters["peak_gbps_4k"] = read_gbps_4k(threads);
  state.SetLabel(std::string(qkv::kernels::weight_type_name(type)) + " " + std::to_string(n_in) +
                 "x" + std::to_string(n_out));
}

// Adds the ratios (of_peak, of_bw, vs_lib) that need the measured time of each run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> out = runs;
    for (Run& r : out) {
      if (r.iterations == 0 || !r.counters.count("lib_us")) continue;
      const double us = r.GetAdjustedRealTime() * (r.time_unit == benchmark::kMillisecond   ? 1e3
                                                   : r.time_unit == benchmark::kMicrosecond ? 1.0
                                                                                            : 1e-3);
      const double gflops = r.counters["GFLOP/s"], gbps = r.counters["GB/s"];
      r.counters["of_peak"] = gflops / r.counters["peak_gflops"].value;
      r.counters["of_bw"] = gbps / r.counters["peak_gbps"].value;
      r.counters["of_bw4k"] = gbps / r.counters["peak_gbps_4k"].value;
      r.counters["vs_lib"] = r.counters["lib_us"].value / us;
      r.counters.erase("peak_gflops");
      r.counters.erase("peak_gbps");
      r.counters.erase("peak_gbps_4k");
    }
    ConsoleReporter::ReportRuns(out);
  }
};

void gemm_args(benchmark::internal::Benchmark* b) {
  for (int t : {1, 2})
    for (int s = 0; s < kNumShapes; ++s)
      for (int type = 0; type < 4; ++type) b->Args({s, type, t, 512, 0});
}
void gemv_args(benchmark::internal::Benchmark* b) {
  for (int t : {1, 2})
    for (int s = 0; s < kNumShapes; ++s)
      for (int type = 0; type < 4; ++type) b->Args({s, type, t, 1, 0});
}
// m from 1 to 64 on both paths, for the crossover (LLaMA 2048x2048 and GPT-2 768x3072).
void crossover_args(benchmark::internal::Benchmark* b) {
  for (int t : {1, 2})
    for (int s : {2, 5})
      for (int type = 0; type < 4; ++type)
        for (int m : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64})
          for (int path : {1, 2}) b->Args({s, type, t, m, path});
}

BENCHMARK(Linear_)->Name("Gemm")->Apply(gemm_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Linear_)->Name("Gemv")->Apply(gemv_args)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(Linear_)
    ->Name("Crossover")
    ->Apply(crossover_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::printf("linear backend: %s\n", std::string(qkv::kernels::linear_backend_name()).c_str());
  for (int t : {1, 2}) {
    const auto& p = peak(t);
    std::printf(
        "machine peak, %d thread(s): %.1f GFLOP/s fp32 FMA, %.1f GB/s read (huge pages), %.1f GB/s "
        "read (4 KiB pages) (%s)\n",
        t, p.fma_gflops, p.read_gbps, read_gbps_4k(t), p.target);
  }
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
}
