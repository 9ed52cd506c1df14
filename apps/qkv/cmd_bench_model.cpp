// qkv bench model -m MODEL [--prompt N] [--gen N] [--threads N] [--kv f32|f16|q8_0]
//                 [--dot exact|int8] [--reps N]
//   Prefill and decode tokens/s of a model on random tokens, where the time goes (matrix
//   products, attention, the rest), and the rates against this machine's measured FMA peak
//   (prefill) and read bandwidth (decode: weight bytes per token).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "command.h"
#include "qkv/attention.h"
#include "qkv/error.h"
#include "qkv/model.h"
#include "qkv/session.h"
#include "qkv_bench/probe.h"  // the machine's peaks (bench/support)

namespace qkv::app {
namespace cmd_bench_model {  // one per subcommand: the qkv target is a unity build
namespace {

struct ModelBenchArgs {
  std::string model, tokenizer;
  KvType kv = KvType::f32;
  DotProducts dot = DotProducts::exact;
  int64_t prompt = 512, gen = 128;
  int threads = 0, reps = 3;
  bool json = false;
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One phase (prefill or decode): the wall time of each repetition, and where the forward passes
// spent it, summed over the repetitions (Session::stats).
struct Phase {
  std::vector<double> seconds;
  SessionStats times;

  void add(const SessionStats& s) {
    times.matmul_seconds += s.matmul_seconds;
    times.attention_seconds += s.attention_seconds;
    times.other_seconds += s.other_seconds;
    times.tokens += s.tokens;
  }
  double total() const {
    return times.matmul_seconds + times.attention_seconds + times.other_seconds;
  }
};

// Fractions of a phase's measured time in the matrix products, attention and the rest (summing
// to 1; all 0 for a phase that did not run).
nlohmann::json shares(const Phase& p) {
  const double total = p.total();
  const double f = total > 0 ? 1.0 / total : 0.0;
  return {{"matmul", p.times.matmul_seconds * f},
          {"attention", p.times.attention_seconds * f},
          {"other", p.times.other_seconds * f}};
}

void print_phase(const char* name, const Phase& p, int64_t tokens, double rate_value,
                 const char* rate_unit, double limit, const char* limit_name) {
  const double t = median_of(p.seconds);
  const double total = p.total();
  std::printf(
      "%-8s %6lld tokens  %8.2f ms  %9.1f tokens/s  %8.1f %s = %5.1f%% of %s  "
      "(matmul %4.1f%%, attention %4.1f%%, other %4.1f%%)\n",
      name, (long long)tokens, t * 1e3, static_cast<double>(tokens) / t, rate_value, rate_unit,
      100 * rate_value / limit, limit_name, 100 * p.times.matmul_seconds / total,
      100 * p.times.attention_seconds / total, 100 * p.times.other_seconds / total);
}

void check_args(const ModelBenchArgs& a) {
  if (a.prompt <= 0 || a.gen < 0 || a.reps <= 0) {
    throw InvalidArgument("--prompt and --reps must be positive, --gen not negative");
  }
}

// Learned positions end at the trained context (RoPE runs past it, at the user's risk).
void check_context(const Model& model, const ModelBenchArgs& a) {
  const ModelConfig& c = model.config();
  if (c.n_ctx <= 0 || model.rope_style() != RopeStyle::none) return;
  if (model.is_decoder() && a.prompt + a.gen > c.n_ctx) {
    throw InvalidArgument("--prompt + --gen = " + std::to_string(a.prompt + a.gen) +
                          " exceeds the model's " + std::to_string(c.n_ctx) + " positions");
  }
  if (!model.is_decoder() && a.prompt > c.n_ctx) {
    throw InvalidArgument("--prompt = " + std::to_string(a.prompt) +
                          " tokens exceeds the model's " + std::to_string(c.n_ctx) + " positions");
  }
}

std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (auto& t : out) t = tok(rng);
  return out;
}

// Runs the repetitions: each encodes the prompt (encoders), or prefills it into an empty cache and
// then decodes `gen` tokens greedily (decoders).
void run_phases(Session& session, const ModelBenchArgs& a, const std::vector<int32_t>& prompt,
                Phase& prefill, Phase& decode) {
  const bool decoder = session.model().is_decoder();
  for (int r = 0; r < a.reps; ++r) {
    session.reset();
    session.reset_stats();
    auto t0 = std::chrono::steady_clock::now();
    std::span<const float> logits;
    if (decoder) {
      logits = session.eval(prompt);
    } else {
      session.encode(prompt);
    }
    prefill.seconds.push_back(seconds_since(t0));
    prefill.add(session.stats());
    if (!decoder) continue;
    session.reset_stats();
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < a.gen; ++i) {
      const int32_t next[1] = {
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin())};
      logits = session.eval(next);
    }
    if (a.gen > 0) {
      decode.seconds.push_back(seconds_since(t0));
      decode.add(session.stats());
    }
  }
}

void run(const ModelBenchArgs& a) {
  check_args(a);
  const auto t_load = std::chrono::steady_clock::now();
  LoadOptions load;
  load.tokenizer_path = a.tokenizer;
  load.dot = a.dot;
  const Model model = Model::load(a.model, load);
  const double load_s = seconds_since(t_load);
  const ModelConfig& c = model.config();
  check_context(model, a);
  const std::vector<int32_t> prompt = random_tokens(a.prompt, c.n_vocab);
  Session session(model, {.n_ctx = model.is_decoder() ? a.prompt + a.gen : 0,
                          .kv_type = a.kv,
                          .n_threads = a.threads});
  const int threads = session.n_threads();
  const kernels::MachinePeak peak = kernels::measure_machine_peak(threads);
  const Model::MatrixTotals weights = model.matrix_totals();

  Phase prefill, decode;
  run_phases(session, a, prompt, prefill, decode);

  // Prefill FLOPs: the matrix products (the LM head only for the last row) and causal attention.
  const int64_t head_macs = model.is_decoder() ? c.n_vocab * c.n_embd : 0;
  const double prefill_flops =
      2.0 * static_cast<double>(weights.macs - head_macs) * static_cast<double>(a.prompt) +
      2.0 * static_cast<double>(head_macs) +
      static_cast<double>(c.n_layer) *
          attention_flops(1, c.n_head, a.prompt, a.prompt, c.head_dim, model.is_decoder());
  const double t_pre = median_of(prefill.seconds);
  const double pre_gflops = prefill_flops / t_pre / 1e9;
  const double t_tok = a.gen > 0 && !decode.seconds.empty()
                           ? median_of(decode.seconds) / static_cast<double>(a.gen)
                           : 0;
  const double dec_gbps = t_tok > 0 ? static_cast<double>(weights.bytes) / t_tok / 1e9 : 0;
  if (a.json) {
    nlohmann::json j = {{"model", a.model},
                        {"describe", model.describe()},
                        {"threads", threads},
                        {"kernels", matmul_backend_name()},
                        {"dot", enum_name(kDotNames, a.dot)},
                        {"load_s", load_s},
                        {"prompt", a.prompt},
                        {"gen", a.gen},
                        {"prefill_tokens_per_s", static_cast<double>(a.prompt) / t_pre},
                        {"prefill_gflops", pre_gflops},
                        {"fma_peak_gflops", peak.fma_gflops},
                        {"decode_tokens_per_s", t_tok > 0 ? 1.0 / t_tok : 0.0},
                        {"decode_weight_gbps", dec_gbps},
                        {"read_gbps", peak.read_gbps},
                        {"prefill_peak_fraction", pre_gflops / peak.fma_gflops},
                        {"decode_bandwidth_fraction", dec_gbps / peak.read_gbps},
                        {"prefill_share", shares(prefill)},
                        {"decode_share", shares(decode)}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model    %s\n", model.describe().c_str());
  std::printf(
      "machine  %d threads: FMA peak %.1f GFLOP/s, read bandwidth %.1f GB/s; linear %s, dot %s\n",
      threads, peak.fma_gflops, peak.read_gbps, std::string(matmul_backend_name()).c_str(),
      enum_name(kDotNames, a.dot).c_str());
  std::printf("load     %.2f s; weights %.1f MB; median of %d runs\n", load_s,
              static_cast<double>(weights.bytes) / 1e6, a.reps);
  print_phase(model.is_decoder() ? "prefill" : "encode", prefill, a.prompt, pre_gflops, "GFLOP/s",
              peak.fma_gflops, "peak");
  if (t_tok > 0) {
    print_phase("decode", decode, a.gen, dec_gbps, "GB/s", peak.read_gbps, "bandwidth");
  }
}

}  // namespace
}  // namespace cmd_bench_model

void add_bench_model(CLI::App& bench) {
  using namespace cmd_bench_model;
  auto* cmd = bench.add_subcommand("model", "Prefill and decode tokens/s of a model");
  auto a = std::make_shared<ModelBenchArgs>();
  add_model_option(*cmd, a->model)->required();
  add_tokenizer_option(*cmd, a->tokenizer);
  cmd->add_option("--prompt", a->prompt, "prompt tokens (prefill)")->capture_default_str();
  cmd->add_option("--gen", a->gen, "generated tokens (decode)")->capture_default_str();
  add_threads_option(*cmd, a->threads);
  add_enum_option(*cmd, "--kv", a->kv, "KV cache type", kKvNames);
  add_dot_option(*cmd, a->dot);
  cmd->add_option("--reps", a->reps, "repetitions (median)")->capture_default_str();
  add_json_flag(*cmd, a->json);
  cmd->callback([a] { run(*a); });
}

}  // namespace qkv::app
