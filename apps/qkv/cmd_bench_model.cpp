// qkv bench model -m MODEL [--prompt N] [--gen N] [--threads N] [--kv f32|f16] [--reps N]
//   Prefill and decode tokens/s of a model on random tokens, where the time goes (matrix
//   products, attention, the rest), and the rates against this machine's measured FMA peak
//   (prefill) and read bandwidth (decode: weight bytes per token).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/parallel.h"
#include "model/forward.h"
#include "model/model_impl.h"
#include "qkv/attention.h"
#include "qkv/model.h"
#include "qkv_bench/probe.h"

namespace qkv::app {
namespace cmd_bench_model {  // one per subcommand: the qkv target is a unity build
namespace {

struct ModelBenchArgs {
  std::string model, tokenizer, kv = "f32";
  int64_t prompt = 512, gen = 128;
  int threads = 0, reps = 3;
  bool json = false;
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int64_t linear_bytes(const kernels::Linear& l) {
  if (l.n_out() == 0) return 0;
  return l.n_out() * kernels::weight_row_bytes(l.view().type, l.n_in());
}

// Bytes of weights a decode step reads (every matrix once) and the multiply-adds per token.
void weight_totals(const Model& model, int64_t* bytes, int64_t* macs) {
  const Model::Impl& m = model.impl();
  *bytes = 0;
  *macs = 0;
  auto add = [&](const kernels::Linear& l) {
    *bytes += linear_bytes(l);
    *macs += l.n_out() * l.n_in();
  };
  for (const auto& L : m.layers) {
    for (const auto* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) add(*l);
  }
  if (model.is_decoder()) add(m.lm_head);
}

struct Phase {
  std::vector<double> seconds;
  model::ForwardTimes times;
};

// Fractions of a phase's measured time in the matrix products, attention and the rest (summing
// to 1; all 0 for a phase that did not run).
nlohmann::json shares(const model::ForwardTimes& t) {
  const double total = t.linear + t.attention + t.other;
  const double f = total > 0 ? 1.0 / total : 0.0;
  return {{"matmul", t.linear * f}, {"attention", t.attention * f}, {"other", t.other * f}};
}

void print_phase(const char* name, const Phase& p, int64_t tokens, double rate_value,
                 const char* rate_unit, double limit, const char* limit_name) {
  const double t = median_of(p.seconds);
  const double total = p.times.linear + p.times.attention + p.times.other;
  std::printf(
      "%-8s %6lld tokens  %8.2f ms  %9.1f tokens/s  %8.1f %s = %5.1f%% of %s  "
      "(matmul %4.1f%%, attention %4.1f%%, other %4.1f%%)\n",
      name, (long long)tokens, t * 1e3, static_cast<double>(tokens) / t, rate_value, rate_unit,
      100 * rate_value / limit, limit_name, 100 * p.times.linear / total,
      100 * p.times.attention / total, 100 * p.times.other / total);
}

void run(const ModelBenchArgs& a) {
  if (a.prompt <= 0 || a.gen < 0 || a.reps <= 0) {
    throw InvalidArgument("--prompt and --reps must be positive, --gen not negative");
  }
  if (a.kv != "f32" && a.kv != "f16") throw InvalidArgument("--kv: expected f32 or f16");
  const auto t_load = std::chrono::steady_clock::now();
  LoadOptions load;
  load.tokenizer_path = a.tokenizer;
  const Model model = Model::load(a.model, load);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const ModelConfig& c = model.config();
  const int threads = core::resolve_threads(a.threads);
  const int64_t n_ctx = a.prompt + a.gen;
  if (model.is_decoder() && n_ctx > c.n_ctx && c.n_ctx > 0 &&
      model.rope_style() == RopeStyle::none) {
    throw InvalidArgument(
        core::concat("--prompt + --gen = ", n_ctx, " exceeds the model's ", c.n_ctx, " positions"));
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(a.prompt));
  for (auto& t : prompt) t = tok(rng);
  const kernels::MachinePeak peak = kernels::measure_machine_peak(threads);
  int64_t bytes = 0, macs = 0;
  weight_totals(model, &bytes, &macs);

  Phase prefill, decode;
  std::vector<float> logits, hidden;
  for (int r = 0; r < a.reps; ++r) {
    if (!model.is_decoder()) {
      const auto t0 = std::chrono::steady_clock::now();
      model::encoder_forward(model, prompt, {}, hidden, nullptr,
                             {.n_threads = threads, .times = &prefill.times});
      prefill.seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      continue;
    }
    model::KvCache cache(model, n_ctx, a.kv == "f16" ? KvType::f16 : KvType::f32);
    auto t0 = std::chrono::steady_clock::now();
    model::decoder_forward(model, cache, prompt, false, logits,
                           {.n_threads = threads, .times = &prefill.times});
    prefill.seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < a.gen; ++i) {
      const int32_t next[1] = {
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin())};
      model::decoder_forward(model, cache, next, false, logits,
                             {.n_threads = threads, .times = &decode.times});
    }
    if (a.gen > 0) {
      decode.seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  // Prefill FLOPs: the matrix products (the LM head only for the last row) and causal attention.
  const int64_t head_macs = model.is_decoder() ? c.n_vocab * c.n_embd : 0;
  const double prefill_flops =
      2.0 * static_cast<double>(macs - head_macs) * static_cast<double>(a.prompt) +
      2.0 * static_cast<double>(head_macs) +
      static_cast<double>(c.n_layer) *
          attention_flops(1, c.n_head, a.prompt, a.prompt, c.head_dim, model.is_decoder());
  const double t_pre = median_of(prefill.seconds);
  const double pre_gflops = prefill_flops / t_pre / 1e9;
  const double t_tok = a.gen > 0 && !decode.seconds.empty()
                           ? median_of(decode.seconds) / static_cast<double>(a.gen)
                           : 0;
  const double dec_gbps = t_tok > 0 ? static_cast<double>(bytes) / t_tok / 1e9 : 0;
  if (a.json) {
    nlohmann::json j = {{"model", a.model},
                        {"describe", model.describe()},
                        {"threads", threads},
                        {"kernels", kernels::linear_backend_name()},
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
                        {"prefill_share", shares(prefill.times)},
                        {"decode_share", shares(decode.times)}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model    %s\n", model.describe().c_str());
  std::printf("machine  %d threads: FMA peak %.1f GFLOP/s, read bandwidth %.1f GB/s; linear %s\n",
              threads, peak.fma_gflops, peak.read_gbps,
              std::string(kernels::linear_backend_name()).c_str());
  std::printf("load     %.2f s; weights %.1f MB; median of %d runs\n", load_s,
              static_cast<double>(bytes) / 1e6, a.reps);
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
  cmd->add_option("-m,--model", a->model, "GGUF, HF folder or llama2.c .bin")->required();
  cmd->add_option("-t,--tokenizer", a->tokenizer, "tokenizer file");
  cmd->add_option("--prompt", a->prompt, "prompt tokens (prefill)")->capture_default_str();
  cmd->add_option("--gen", a->gen, "generated tokens (decode)")->capture_default_str();
  cmd->add_option("--threads", a->threads, "threads (0: all)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--kv", a->kv, "KV cache type: f32 or f16")->capture_default_str();
  cmd->add_option("--reps", a->reps, "repetitions (median)")->capture_default_str();
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([a] { run(*a); });
}

}  // namespace qkv::app
