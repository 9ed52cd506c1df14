// The machinery of the intervention methods (ablation, patching) and the lens: a clean run that
// keeps the activations the methods start from, an observer that overwrites columns of one
// activation, and batched reruns from a layer (model::ForwardOptions::resume). Not public API.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/forward.h"
#include "qkv/explain.h"

namespace qkv::explain_detail {

// The activations of one run of a prompt, per layer, with its last row's logits.
struct CleanRun {
  int64_t n_tokens = 0;
  std::vector<float> embed;                   // [T, n_embd]
  std::vector<std::vector<float>> layer_out;  // [n_layer][T, n_embd]
  std::vector<std::vector<float>> attn_out;   // [n_layer][T, n_head * head_dim]
  std::vector<std::vector<float>> attn_proj;  // [n_layer][T, n_embd] (with keep_block_outputs)
  std::vector<std::vector<float>> ffn_out;    // [n_layer][T, n_embd] (with keep_block_outputs)
  std::vector<float> logits;                  // [n_vocab], the last row
  // The forward pass alone: a second, plain pass (the median of three when one is short), in
  // wall and in process CPU time; and the pass that recorded the activations.
  double seconds = 0, cpu_seconds = 0;
  double record_seconds = 0, record_cpu_seconds = 0;
  // The residual stream entering `layer` (the embeddings for 0, else layer_out of layer - 1).
  const std::vector<float>& residual_into(int layer) const {
    return layer == 0 ? embed : layer_out[static_cast<size_t>(layer - 1)];
  }
};

// Checks that the model is a decoder and the prompt is runnable; `what` names the method.
void require_decoder(const Model& model, std::span<const int32_t> prompt, const char* what);

// Runs the prompt once keeping the activations above. A second, plain pass (no observer) is
// timed for CleanRun::seconds, the unit of RerunCost.
CleanRun clean_run(const Model& model, std::span<const int32_t> prompt,
                   const InterventionOptions& options, bool keep_block_outputs = false);

// Overwrites columns [col0, col1) of activation `name` at `layer` in every row: with zeros (src
// null), with one row for every position (src_ld 0), or with the rows of a [T, src_ld] matrix
// (row = position). src is indexed like the activation's columns (its column col0 first).
class ColumnEdit : public Observer {
 public:
  ColumnEdit() = default;
  ColumnEdit(std::string_view name, int layer, int64_t col0, int64_t col1, const float* src,
             int64_t src_ld)
      : name_(name), layer_(layer), col0_(col0), col1_(col1), src_(src), src_ld_(src_ld) {}
  bool wants_edits() override { return true; }
  void on_edit(const ActivationEvent& e, float* data) override;

 private:
  std::string_view name_;
  int layer_ = -1;
  int64_t col0_ = 0, col1_ = 0;
  const float* src_ = nullptr;
  int64_t src_ld_ = 0;
};

// Reruns of one prompt from `layer`, each from its own residual stream ([T, n_embd], entering
// `layer`; layer == n_layer runs only the final norm and the head) and with its own observer (may
// be null). They go through the model together, as one batch of sequences, in batches of a
// bounded number of rows. Returns each rerun's target_score of its last row; adds to `cost`.
// With `attn_out` ([T, n_head * head_dim] of `layer`, kept from a run of the same residual
// stream, one for every rerun), the reruns start at that layer's attention output
// (model::ForwardOptions::Resume::attn_out): for edits of attn_out, which leave the layer's
// q, K, V and attention as they were.
class Reruns {
 public:
  Reruns(const Model& model, std::span<const int32_t> prompt, const ExplainTarget& target,
         const InterventionOptions& options);
  std::vector<double> run(int layer, std::span<const float* const> residuals,
                          std::span<Observer* const> observers, RerunCost& cost,
                          const float* attn_out = nullptr);

 private:
  const Model& model_;
  std::span<const int32_t> prompt_;
  const ExplainTarget& target_;
  InterventionOptions options_;
  std::vector<model::KvCache> caches_;
  model::Workspace workspace_;
};

// Sets the forward-pass equivalents of `cost` (call once the reruns are done): the clean run's
// recording pass counts as part of the cost, its plain pass is the unit.
void finish_cost(RerunCost& cost, const CleanRun& run);

}  // namespace qkv::explain_detail
