// The int8 mode of the linear layers (LinearDot::int8) on interleaved weights (quant/repack.h):
// one weight of a llama-1b-like layer against m rows of x, m = 1 (decode) and m = 8 (8 batched
// decode streams, issue 20), per block type and thread count. Weights are cycled through copies
// totalling at least 160 MiB, so every call reads them from DRAM as decode does. Counters: rows/s
// (tokens/s of this one matrix) and GB/s of the GGUF weight bytes; the m = 8 / m = 1 ratio of
// rows/s is the batching gain.
//   build/release/bench/qkv_int8_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "core/half.h"
#include "kernels/linear.h"
#include "kernels/quant/blocks.h"

namespace {

using qkv::kernels::Linear;
using qkv::kernels::LinearDot;
using qkv::kernels::WeightType;
using qkv::kernels::WeightView;
namespace quant = qkv::kernels::quant;

constexpr int64_t kColdBytes = int64_t{160} << 20;

// (type, n_in, n_out): the Q4_K_M llama-1b projections (q / o, gate / up in Q4_K, down in Q6_K)
// and a Q5_K / IQ4_XS gate.
constexpr std::tuple<quant::QuantType, int64_t, int64_t> kShapes[] = {
    {quant::QuantType::q4_k, 2048, 2048},   {quant::QuantType::q4_k, 2048, 5632},
    {quant::QuantType::q6_k, 5632, 2048},   {quant::QuantType::q5_k, 2048, 5632},
    {quant::QuantType::iq4_xs, 2048, 5632},
};

// Random blocks with f16 d (and dmin) of 2^-7 (finite, like a model's).
std::vector<uint8_t> random_rows(quant::QuantType q, int64_t n_in, int64_t n_out, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t row = quant::quant_row_bytes(q, n_in), bb = quant::quant_block_bytes(q);
  std::vector<uint8_t> w(static_cast<size_t>(row * n_out));
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  const uint16_t h = qkv::core::f32_to_f16(1.0f / 128);
  std::vector<size_t> halves = {0};
  if (q == quant::QuantType::q4_k || q == quant::QuantType::q5_k) halves = {0, 2};
  if (q == quant::QuantType::q6_k) halves = {offsetof(quant::BlockQ6K, d)};
  for (int64_t b = 0; b < n_out * (n_in / quant::kQKK); ++b) {
    for (size_t off : halves) std::memcpy(w.data() + b * bb + off, &h, 2);
  }
  return w;
}

struct Set {
  std::vector<std::vector<uint8_t>> rows;
  std::vector<Linear> linear;
  int64_t bytes = 0;
};

const Set& weights(int shape) {
  static std::map<int, Set> cache;
  if (auto it = cache.find(shape); it != cache.end()) return it->second;
  const auto [q, n_in, n_out] = kShapes[shape];
  Set s;
  s.bytes = quant::quant_row_bytes(q, n_in) * n_out;
  const int copies = static_cast<int>(std::max<int64_t>(1, kColdBytes / s.bytes));
  for (int c = 0; c < copies; ++c) {
    s.rows.push_back(random_rows(q, n_in, n_out, static_cast<uint32_t>(c + 1)));
    const WeightView v{qkv::kernels::weight_type_of(q), n_out, n_in, s.rows.back().data(), 0};
    s.linear.emplace_back(v, nullptr, LinearDot::int8);
  }
  return cache.emplace(shape, std::move(s)).first->second;
}

// Args: shape, m, threads.
void Int8(benchmark::State& state) {
  const int shape = static_cast<int>(state.range(0));
  const int64_t m = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const auto [q, n_in, n_out] = kShapes[shape];
  const Set& s = weights(shape);
  std::vector<float> x(static_cast<size_t>(m * n_in)), y(static_cast<size_t>(m * n_out));
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.f, 1.f);
  for (float& v : x) v = g(rng);
  size_t c = 0;
  for (auto _ : state) {
    s.linear[c].forward(x.data(), m, n_in, y.data(), n_out, threads);
    c = (c + 1) % s.linear.size();
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(quant::quant_format(q).name) + " " + std::to_string(n_in) + "x" +
                 std::to_string(n_out));
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(m) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(s.bytes) * state.iterations(),
                         benchmark::Counter::kIsRate, benchmark::Counter::OneK::kIs1000);
}

void int8_args(benchmark::internal::Benchmark* b) {
  for (int s = 0; s < static_cast<int>(std::size(kShapes)); ++s) {
    for (int t : {1, 2}) {
      for (int m : {1, 8}) b->Args({s, m, t});
    }
  }
}

BENCHMARK(Int8)->Apply(int8_args)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
