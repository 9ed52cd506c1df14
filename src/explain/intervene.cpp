// Interventions: head ablation and activation patching, by reruns from the intervened layer with
// the clean run's residual stream below it (rerun.h).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "explain_internal.h"
#include "qkv/error.h"
#include "qkv/explain.h"
#include "rerun.h"

namespace qkv {

using explain_detail::CleanRun;
using explain_detail::ColumnEdit;
using explain_detail::Reruns;

namespace {

nlohmann::json target_json(const ExplainTarget& t) {
  return {{"id", t.id}, {"text", t.text}, {"position", t.position}};
}

nlohmann::json contrast_json(const ExplainTarget& t) {
  if (!t.has_contrast()) return nullptr;
  return {{"id", t.contrast_id}, {"text", t.contrast_text}};
}

// A [rows, cols] row-major table as nested arrays.
nlohmann::json table(const std::vector<double>& v, int64_t rows, int64_t cols) {
  nlohmann::json t = nlohmann::json::array();
  for (int64_t r = 0; r < rows; ++r) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t c = 0; c < cols; ++c) {
      row.push_back(std::round(v[static_cast<size_t>(r * cols + c)] * 1e6) / 1e6);
    }
    t.push_back(std::move(row));
  }
  return t;
}

nlohmann::json cost_json(const RerunCost& c) {
  return {{"reruns", c.reruns},
          {"seconds", c.seconds},
          {"forward_seconds", c.forward_seconds},
          {"forward_equivalents", c.forward_equivalents},
          {"cpu_seconds", c.cpu_seconds},
          {"forward_cpu_seconds", c.forward_cpu_seconds},
          {"cpu_equivalents", c.cpu_equivalents},
          {"layer_equivalents", c.layer_equivalents}};
}

const char* score_name(const ExplainTarget& t) {
  return t.has_contrast() ? "logit difference" : "log-probability";
}

void check_target(const Model& model, std::span<const int32_t> prompt, const ExplainTarget& t,
                  const char* what) {
  const int64_t n_vocab = model.config().n_vocab;
  if (t.id < 0 || t.id >= n_vocab || t.contrast_id >= n_vocab) {
    throw InvalidArgument(std::string(what) + ": target id " + std::to_string(t.id) +
                          " or contrast id " + std::to_string(t.contrast_id) +
                          " outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
  }
  if (t.position != static_cast<int64_t>(prompt.size()) - 1) {
    throw InvalidArgument(std::string(what) + ": the target's position is " +
                          std::to_string(t.position) + "; the methods score the last prompt row, " +
                          std::to_string(prompt.size() - 1) + " (resolve_target sets it)");
  }
}

}  // namespace

std::string_view ablation_mode_name(AblationMode m) {
  return m == AblationMode::mean ? "mean" : "zero";
}

HeadAblation ablate_heads(const Model& model, std::span<const int32_t> prompt,
                          const ExplainTarget& target, AblationMode mode,
                          const InterventionOptions& options) {
  explain_detail::require_decoder(model, prompt, "ablate_heads");
  check_target(model, prompt, target, "ablate_heads");
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t hd = c.head_dim, width = c.n_head * c.head_dim;
  const CleanRun run = explain_detail::clean_run(model, prompt, options);
  HeadAblation a;
  a.mode = mode;
  a.target = target;
  a.baseline = target_score(target, run.logits);
  a.n_layer = c.n_layer;
  a.n_head = c.n_head;
  a.delta.assign(static_cast<size_t>(c.n_layer * c.n_head), 0.0);
  Reruns reruns(model, prompt, target, options);
  std::vector<float> mean(static_cast<size_t>(width));
  for (int layer = 0; layer < c.n_layer; ++layer) {
    // Mean mode: each head's output averaged over the prompt's positions (in double).
    const std::vector<float>& out = run.attn_out[static_cast<size_t>(layer)];
    for (int64_t col = 0; col < width; ++col) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += out[static_cast<size_t>(i * width + col)];
      mean[static_cast<size_t>(col)] = static_cast<float>(s / static_cast<double>(n));
    }
    std::vector<ColumnEdit> edits;
    for (int64_t h = 0; h < c.n_head; ++h) {
      edits.emplace_back("attn_out", layer, h * hd, (h + 1) * hd,
                         mode == AblationMode::mean ? mean.data() + h * hd : nullptr, 0);
    }
    std::vector<Observer*> observers;
    for (ColumnEdit& e : edits) observers.push_back(&e);
    const std::vector<const float*> residuals(static_cast<size_t>(c.n_head),
                                              run.residual_into(layer).data());
    // From the layer's attention output: the ablation changes nothing before it.
    const std::vector<double> scores = reruns.run(layer, residuals, observers, a.cost, out.data());
    for (int64_t h = 0; h < c.n_head; ++h) {
      a.delta[static_cast<size_t>(layer * c.n_head + h)] =
          scores[static_cast<size_t>(h)] - a.baseline;
    }
  }
  explain_detail::finish_cost(a.cost, run);
  return a;
}

std::string section_json(const HeadAblation& a) {
  nlohmann::json j;
  j["title"] = std::string("Ablation (") + std::string(ablation_mode_name(a.mode)) + ")";
  j["note"] =
      std::string("Each head's output (its columns of attn_out, before the output projection) ") +
      (a.mode == AblationMode::mean ? "replaced by its mean over the prompt's positions"
                                    : "set to zero") +
      " at every position, one head at a time; delta = the target's " + score_name(a.target) +
      " with the head ablated minus " + std::to_string(a.baseline) +
      " (negative: the head helped the target). Reruns start at the ablated layer's attention "
      "output, kept from the clean run.";
  j["mode"] = ablation_mode_name(a.mode);
  j["target"] = target_json(a.target);
  j["contrast"] = contrast_json(a.target);
  j["score"] = a.target.has_contrast() ? "logit_difference" : "logprob";
  j["baseline_logprob"] = a.baseline;
  j["delta"] = table(a.delta, a.n_layer, a.n_head);
  j["cost"] = cost_json(a.cost);
  return explain_detail::dump(j, -1);
}

// ---------------------------------------------------------------------------------------------
// Activation patching

ActivationPatching patch_activations(const Model& model, std::span<const int32_t> clean,
                                     std::span<const int32_t> corrupted,
                                     const ExplainTarget& target,
                                     const InterventionOptions& options) {
  explain_detail::require_decoder(model, clean, "patch_activations");
  if (corrupted.size() != clean.size()) {
    throw InvalidArgument("patch_activations: the corrupted prompt has " +
                          std::to_string(corrupted.size()) + " tokens and the clean one " +
                          std::to_string(clean.size()) +
                          "; patching pairs positions, so both must have the same token length");
  }
  check_target(model, clean, target, "patch_activations");
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(clean.size()), d = c.n_embd, hd = c.head_dim;
  const CleanRun good = explain_detail::clean_run(model, clean, options);
  const CleanRun bad = explain_detail::clean_run(model, corrupted, options);
  ActivationPatching p;
  p.target = target;
  p.corrupted.assign(corrupted.begin(), corrupted.end());
  p.clean_score = target_score(target, good.logits);
  p.corrupted_score = target_score(target, bad.logits);
  p.n_layer = c.n_layer;
  p.n_head = c.n_head;
  p.n_tokens = n;
  p.layer_position.assign(static_cast<size_t>(c.n_layer * n), 0.0);
  p.head.assign(static_cast<size_t>(c.n_layer * c.n_head), 0.0);
  const double diff = p.clean_score - p.corrupted_score;
  // Scores are fp32 logits read in double: below 1e-6 the two runs predict the same.
  p.degenerate = std::abs(diff) <= 1e-6;
  const auto fraction = [&](double patched) {
    return p.degenerate ? 0.0 : (patched - p.corrupted_score) / diff;
  };
  Reruns reruns(model, corrupted, target, options);
  // The residual stream of layer l at position i: the corrupted run's layer_out of l with row i
  // the clean run's, rerun from layer l + 1 (past the last layer: the final norm and head only).
  std::vector<float> residuals(static_cast<size_t>(n * n * d));
  std::vector<const float*> starts(static_cast<size_t>(n));
  for (int layer = 0; layer < c.n_layer; ++layer) {
    const std::vector<float>& from = good.layer_out[static_cast<size_t>(layer)];
    const std::vector<float>& into = bad.layer_out[static_cast<size_t>(layer)];
    for (int64_t i = 0; i < n; ++i) {
      float* r = residuals.data() + i * n * d;
      std::copy(into.begin(), into.end(), r);
      std::copy_n(from.data() + i * d, d, r + i * d);
      starts[static_cast<size_t>(i)] = r;
    }
    const std::vector<double> s = reruns.run(layer + 1, starts, {}, p.cost);
    for (int64_t i = 0; i < n; ++i) {
      p.layer_position[static_cast<size_t>(layer * n + i)] = fraction(s[static_cast<size_t>(i)]);
    }
  }
  // One head's output at every position from the clean run, rerun from its layer.
  const int64_t width = c.n_head * hd;
  for (int layer = 0; layer < c.n_layer; ++layer) {
    std::vector<ColumnEdit> edits;
    for (int64_t h = 0; h < c.n_head; ++h) {
      edits.emplace_back("attn_out", layer, h * hd, (h + 1) * hd,
                         good.attn_out[static_cast<size_t>(layer)].data() + h * hd, width);
    }
    std::vector<Observer*> observers;
    for (ColumnEdit& e : edits) observers.push_back(&e);
    const std::vector<const float*> from(static_cast<size_t>(c.n_head),
                                         bad.residual_into(layer).data());
    const std::vector<double> s =
        reruns.run(layer, from, observers, p.cost, bad.attn_out[static_cast<size_t>(layer)].data());
    for (int64_t h = 0; h < c.n_head; ++h) {
      p.head[static_cast<size_t>(layer * c.n_head + h)] = fraction(s[static_cast<size_t>(h)]);
    }
  }
  // Both clean runs' recording passes are part of the cost; the clean prompt's plain pass is the
  // unit.
  p.cost.seconds += bad.record_seconds;
  p.cost.cpu_seconds += bad.record_cpu_seconds;
  p.cost.layer_equivalents += 1;
  explain_detail::finish_cost(p.cost, good);
  return p;
}

std::string section_json(const ActivationPatching& p, const std::string& corrupted_text,
                         const std::vector<std::string>& corrupted_tokens) {
  nlohmann::json j;
  j["title"] = "Activation patching";
  j["note"] =
      std::string("The corrupted prompt rerun with one activation from the clean run: the ") +
      "residual stream (layer_out) of a layer at a position, or a head's output (attn_out "
      "columns) at every position. Fraction restored = (patched - corrupted) / (clean - "
      "corrupted) of the target's " +
      score_name(p.target) +
      (p.degenerate ? "; the clean and corrupted scores are equal, so "
                      "there is nothing to restore and every fraction is 0"
                    : "") +
      ".";
  j["corrupted_text"] = corrupted_text;
  j["corrupted_tokens"] = corrupted_tokens;
  j["corrupted_ids"] = p.corrupted;
  j["target"] = target_json(p.target);
  j["contrast"] = contrast_json(p.target);
  j["score"] = p.target.has_contrast() ? "logit_difference" : "logprob";
  j["clean_diff"] = p.clean_score;
  j["corrupted_diff"] = p.corrupted_score;
  j["degenerate"] = p.degenerate;
  j["layer_position"] = table(p.layer_position, p.n_layer, p.n_tokens);
  j["head"] = table(p.head, p.n_layer, p.n_head);
  j["cost"] = cost_json(p.cost);
  return explain_detail::dump(j, -1);
}

}  // namespace qkv
