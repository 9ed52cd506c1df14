// Clean runs, column edits and batched reruns from a layer: what ablation, patching and the lens
// are built on (rerun.h).
#include "rerun.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/cpu_time.h"
#include "model/model_impl.h"
#include "qkv/error.h"

namespace qkv::explain_detail {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using core::process_cpu_seconds;

// Rows of one batch of reruns. The batch's scratch holds about n_ff floats a row (a 1.5B model's
// 8,960: 18 MB at 512 rows); a few hundred rows make the matrix products as efficient as they get.
constexpr int64_t kMaxBatchRows = 512;

// Keeps copies of the activations a CleanRun holds.
class Recorder : public Observer {
 public:
  Recorder(CleanRun& run, int64_t n_layer, bool blocks) : run_(run), blocks_(blocks) {
    run_.layer_out.resize(static_cast<size_t>(n_layer));
    run_.attn_out.resize(static_cast<size_t>(n_layer));
    if (blocks) {
      run_.attn_proj.resize(static_cast<size_t>(n_layer));
      run_.ffn_out.resize(static_cast<size_t>(n_layer));
    }
  }
  bool wants_activations() override { return true; }
  void on_activation(const ActivationEvent& e) override {
    std::vector<float>* to = nullptr;
    const auto l = static_cast<size_t>(std::max(e.layer, 0));
    if (e.name == "embed") {
      to = &run_.embed;
    } else if (e.name == "layer_out") {
      to = &run_.layer_out[l];
    } else if (e.name == "attn_out") {
      to = &run_.attn_out[l];
    } else if (blocks_ && e.name == "attn_proj") {
      to = &run_.attn_proj[l];
    } else if (blocks_ && e.name == "ffn_out") {
      to = &run_.ffn_out[l];
    }
    if (to) to->assign(e.data, e.data + e.n_rows * e.width);
  }

 private:
  CleanRun& run_;
  bool blocks_;
};

}  // namespace

void require_decoder(const Model& model, std::span<const int32_t> prompt, const char* what) {
  if (!model.is_decoder()) {
    throw InvalidArgument(std::string(what) + ": " + model.describe() +
                          " is an encoder; the method explains a next-token prediction, which "
                          "needs a decoder");
  }
  if (prompt.empty()) throw InvalidArgument(std::string(what) + ": the prompt has no tokens");
  const int64_t n_ctx = model.config().n_ctx;
  if (n_ctx > 0 && static_cast<int64_t>(prompt.size()) > n_ctx) {
    throw InvalidArgument(std::string(what) + ": the prompt's " + std::to_string(prompt.size()) +
                          " tokens exceed the model's context of " + std::to_string(n_ctx));
  }
}

CleanRun clean_run(const Model& model, std::span<const int32_t> prompt,
                   const InterventionOptions& options, bool keep_block_outputs) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  CleanRun run;
  run.n_tokens = n;
  Recorder rec(run, model.config().n_layer, keep_block_outputs);
  model::Workspace ws;
  model::ForwardOptions fo;
  fo.n_threads = options.n_threads;
  fo.attention_backend = options.attention_backend;
  fo.workspace = &ws;
  fo.observer = &rec;
  {
    model::KvCache cache(model, n, KvType::f32);
    const auto t0 = Clock::now();
    const double c0 = process_cpu_seconds();
    model::decoder_forward(model, cache, prompt, false, run.logits, fo);
    run.record_cpu_seconds = process_cpu_seconds() - c0;
    run.record_seconds = since(t0);
  }
  // The unit of RerunCost: the same pass without an observer, its workspace already grown. A pass
  // of a few milliseconds is taken three times and the median kept (one preempted pass on a
  // shared machine moved the unit by 35%); a long one once, so the unit costs at most 0.1 s more.
  fo.observer = nullptr;
  model::KvCache cache(model, n, KvType::f32);
  std::vector<float> logits;
  std::vector<double> wall, cpu;
  while (wall.empty() || (wall.size() < 3 && wall[0] < 0.05)) {
    cache.set_n_past(0);
    const auto t0 = Clock::now();
    const double c0 = process_cpu_seconds();
    model::decoder_forward(model, cache, prompt, false, logits, fo);
    cpu.push_back(process_cpu_seconds() - c0);
    wall.push_back(since(t0));
  }
  const auto median = [](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  run.seconds = median(wall);
  run.cpu_seconds = median(cpu);
  return run;
}

void ColumnEdit::on_edit(const ActivationEvent& e, float* data) {
  if (e.layer != layer_ || e.name != name_) return;
  const auto cols = static_cast<size_t>(col1_ - col0_);
  for (int64_t i = 0; i < e.n_rows; ++i) {
    float* row = data + i * e.width + col0_;
    if (!src_) {
      std::fill(row, row + cols, 0.0f);
    } else {
      const float* from = src_ + (e.first_position + i) * src_ld_;
      std::memcpy(row, from, cols * sizeof(float));
    }
  }
}

Reruns::Reruns(const Model& model, std::span<const int32_t> prompt, const ExplainTarget& target,
               const InterventionOptions& options)
    : model_(model), prompt_(prompt), target_(target), options_(options) {}

std::vector<double> Reruns::run(int layer, std::span<const float* const> residuals,
                                std::span<Observer* const> observers, RerunCost& cost,
                                const float* attn_out) {
  const int64_t n = static_cast<int64_t>(prompt_.size());
  const int64_t d = model_.config().n_embd;
  const size_t jobs = residuals.size();
  const size_t per_batch = static_cast<size_t>(std::max<int64_t>(1, kMaxBatchRows / n));
  while (caches_.size() < std::min(jobs, per_batch)) {
    caches_.emplace_back(model_, n, KvType::f32);
  }
  std::vector<double> scores(jobs);
  std::vector<std::vector<float>> logits(std::min(jobs, per_batch));
  const int64_t width = model_.config().n_head * model_.config().head_dim;
  std::vector<float> residual, attn;  // [rows of a batch, n_embd], [rows, n_head * head_dim]
  const auto t0 = Clock::now();
  const double c0 = process_cpu_seconds();
  for (size_t first = 0; first < jobs; first += per_batch) {
    const size_t count = std::min(per_batch, jobs - first);
    residual.resize(count * static_cast<size_t>(n * d));
    if (attn_out) attn.resize(count * static_cast<size_t>(n * width));
    std::vector<model::SequenceStep> steps(count);
    for (size_t j = 0; j < count; ++j) {
      std::memcpy(residual.data() + j * static_cast<size_t>(n * d), residuals[first + j],
                  static_cast<size_t>(n * d) * sizeof(float));
      if (attn_out) {
        std::memcpy(attn.data() + j * static_cast<size_t>(n * width), attn_out,
                    static_cast<size_t>(n * width) * sizeof(float));
      }
      caches_[j].set_n_past(0);
      steps[j] = {.cache = &caches_[j],
                  .tokens = prompt_,
                  .all_logits = false,
                  .logits = &logits[j],
                  .observer = observers.empty() ? nullptr : observers[first + j]};
    }
    model::ForwardOptions fo;
    fo.n_threads = options_.n_threads;
    fo.attention_backend = options_.attention_backend;
    fo.workspace = &workspace_;
    fo.resume = {.layer = layer, .residual = residual, .attn_out = attn};
    fo.last_rows_only = true;  // only the last row's logits are scored
    model::decoder_forward_batch(model_, steps, fo);
    for (size_t j = 0; j < count; ++j) scores[first + j] = target_score(target_, logits[j]);
  }
  cost.cpu_seconds += process_cpu_seconds() - c0;
  cost.seconds += since(t0);
  cost.reruns += static_cast<int64_t>(jobs);
  // The layers run over the whole prompt, counted in GPT-2's matrix products (Llama's are close):
  // the last one as a quarter (q, K and V of every row; the rest of it runs for one row only),
  // one resumed at its attention output as three quarters (the output projection and the MLP),
  // both at once as nothing (one row).
  const int64_t n_layer = model_.config().n_layer;
  double layers = 0;
  if (layer < n_layer) layers = static_cast<double>(n_layer - layer) - 0.75 - (attn_out ? 0.25 : 0);
  cost.layer_equivalents += static_cast<double>(jobs) * layers / static_cast<double>(n_layer);
  return scores;
}

void finish_cost(RerunCost& cost, const CleanRun& run) {
  cost.seconds += run.record_seconds;
  cost.cpu_seconds += run.record_cpu_seconds;
  cost.layer_equivalents += 1;
  cost.forward_seconds = run.seconds;
  cost.forward_equivalents = run.seconds > 0 ? cost.seconds / run.seconds : 0;
  cost.forward_cpu_seconds = run.cpu_seconds;
  cost.cpu_equivalents = run.cpu_seconds > 0 ? cost.cpu_seconds / run.cpu_seconds : 0;
}

}  // namespace qkv::explain_detail
