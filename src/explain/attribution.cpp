// Attribution by gradients (qkv/explain.h, "Attribution"): gradient x input, integrated gradients
// and attention x gradient, on the model layer's input gradients (model/backward.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <numeric>

#include "core/cpu_time.h"
#include "explain_internal.h"
#include "model/backward.h"
#include "model/model_impl.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Gauss-Legendre nodes and weights on [0, 1], nodes ascending: Newton's method on the Legendre
// polynomial P_n from the usual first guesses cos(pi (i - 1/4) / (n + 1/2)).
void gauss_legendre(int n, std::vector<double>& x, std::vector<double>& w) {
  x.assign(static_cast<size_t>(n), 0.0);
  w.assign(static_cast<size_t>(n), 0.0);
  for (int i = 0; i < n; ++i) {
    double z = std::cos(std::numbers::pi * (i + 0.75) / (n + 0.5)), dp = 1;
    for (int iter = 0; iter < 100; ++iter) {
      double p0 = 1, p1 = z;
      for (int k = 2; k <= n; ++k) {
        const double p2 = ((2.0 * k - 1) * z * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      dp = n * (z * p1 - p0) / (z * z - 1);
      const double step = p1 / dp;
      z -= step;
      if (std::fabs(step) < 1e-15) break;
    }
    // z descends with i; map [-1, 1] to [0, 1] so that the nodes ascend.
    x[static_cast<size_t>(i)] = (1 - z) / 2;
    w[static_cast<size_t>(i)] = 1.0 / ((1 - z * z) * dp * dp);  // (2 / ((1 - z²) P'²)) / 2
  }
}

// Activations one sequence of n tokens keeps in the gradient pass (model/backward.cpp's
// LayerSaved, plus the backward pass's buffers of about as much again for one layer).
int64_t bytes_per_sequence(const ModelConfig& c, int64_t n) {
  const int64_t q = c.n_head * c.head_dim, kv = c.n_head_kv * c.head_dim;
  const int64_t per_row = 5 * c.n_embd + 3 * q + 4 * kv + 2 * c.n_ff + c.n_head;
  return 4 * n * (per_row * (c.n_layer + 1) + c.n_embd);
}

// The baseline token: the tokenizer's padding token, else its unknown token, else its end of
// text, else id 0.
int32_t baseline_token(const Model& model, int32_t asked) {
  if (asked >= 0) return asked;
  if (!model.has_tokenizer()) return 0;
  const TokenizerSpec& s = model.tokenizer().spec();
  for (int32_t id : {s.pad, s.unk, s.eos}) {
    if (id >= 0 && id < model.config().n_vocab) return id;
  }
  return 0;
}

}  // namespace

std::string_view attribution_method_name(AttributionMethod m) {
  return m == AttributionMethod::integrated_gradients ? "integrated_gradients" : "grad_x_input";
}

double Attribution::sum() const {
  return std::accumulate(scores.begin(), scores.end(), 0.0);
}

Attribution attribute(const Model& model, std::span<const int32_t> ids, int32_t target,
                      int32_t contrast, const AttributionOptions& options) {
  if (ids.empty()) throw InvalidArgument("attribute: no tokens");
  if (options.method == AttributionMethod::integrated_gradients &&
      (options.steps < 1 || options.steps > 1024)) {
    throw InvalidArgument("attribute: integrated gradients needs 1..1024 steps, found " +
                          std::to_string(options.steps));
  }
  const auto t_start = Clock::now();
  const double cpu_start = core::process_cpu_seconds();
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(ids.size()), d = c.n_embd;
  const model::ScoreSpec spec{target, contrast};
  model::GradientOptions go;
  go.n_threads = options.n_threads;
  go.attention_backend = options.attention_backend;

  Attribution a;
  a.method = options.method;
  a.target = target;
  a.contrast = contrast;
  a.position = n - 1;
  const std::vector<float> e = model::token_embeddings(model, ids);  // [n, n_embd]
  a.scores.assign(static_cast<size_t>(n), 0.0);

  // The pass at the input itself: grad x input's whole work, integrated gradients' f(x) and the
  // attention x gradient of both.
  const bool at_input =
      options.method == AttributionMethod::grad_x_input || options.attention_gradient;
  if (at_input) {
    go.attention = options.attention_gradient;
    const model::GradientResult r = model::embedding_gradients(model, ids, e, spec, go);
    go.attention = false;
    a.score = r.score[0];
    a.forward_seconds = r.times.forward;
    a.forward_cpu_seconds = r.times.forward_cpu;
    a.gradient_forward_seconds += r.times.forward;
    a.gradient_backward_seconds += r.times.backward;
    if (options.method == AttributionMethod::grad_x_input) {
      for (int64_t t = 0; t < n; ++t) {
        double s = 0;
        for (int64_t k = t * d; k < (t + 1) * d; ++k) {
          s += double(e[static_cast<size_t>(k)]) * r.d_embed[static_cast<size_t>(k)];
        }
        a.scores[static_cast<size_t>(t)] = s;
      }
    }
    if (options.attention_gradient) {
      a.n_layer = c.n_layer;
      a.n_head = c.n_head;
      a.head_scores = r.head_sums;
      a.rows = r.target_rows;
    }
  }

  if (options.method == AttributionMethod::integrated_gradients) {
    a.steps = options.steps;
    a.baseline_token = baseline_token(model, options.baseline_token);
    a.baseline = "the embedding of " + explain_detail::token_text(model, a.baseline_token) +
                 " (id " + std::to_string(a.baseline_token) + ") at every position";
    // f at the input (when not known yet) and at the baseline, by plain forward passes; the
    // second is also the unit of the cost. The first pass of a process faults in the pages of the
    // memory-mapped weights (llama-1b f16: a 2-token pass took 2-3x a warm one), so the unit is
    // the pass that runs second.
    const std::vector<int32_t> base_ids(ids.size(), a.baseline_token);
    const std::vector<float> base = model::token_embeddings(model, base_ids);
    if (!at_input) a.score = model::embedding_scores(model, ids, e, spec, go)[0];
    const auto t0 = Clock::now();
    const double c0 = core::process_cpu_seconds();
    a.baseline_score = model::embedding_scores(model, ids, base, spec, go)[0];
    const double one_forward = seconds_since(t0);
    const double one_forward_cpu = core::process_cpu_seconds() - c0;
    if (!at_input) {
      a.forward_seconds = one_forward;
      a.forward_cpu_seconds = one_forward_cpu;
    } else {
      a.forward_seconds = std::min(a.forward_seconds, one_forward);
      a.forward_cpu_seconds = std::min(a.forward_cpu_seconds, one_forward_cpu);
    }
    std::vector<double> alpha, weight;
    gauss_legendre(options.steps, alpha, weight);
    const int64_t per_seq = std::max<int64_t>(1, bytes_per_sequence(c, n));
    const int64_t batch = std::clamp<int64_t>(options.max_batch_bytes / per_seq, 1, options.steps);
    a.points_per_pass = batch;
    std::vector<double> avg(e.size(), 0.0);  // sum_k w_k df/de at alpha_k
    std::vector<float> inputs;
    for (int64_t k0 = 0; k0 < options.steps; k0 += batch) {
      const int64_t k1 = std::min<int64_t>(options.steps, k0 + batch);
      inputs.resize(static_cast<size_t>((k1 - k0) * n * d));
      for (int64_t k = k0; k < k1; ++k) {
        const float s = static_cast<float>(alpha[static_cast<size_t>(k)]);
        float* dst = inputs.data() + (k - k0) * n * d;
        for (size_t i = 0; i < e.size(); ++i) dst[i] = base[i] + s * (e[i] - base[i]);
      }
      const model::GradientResult r = model::embedding_gradients(model, ids, inputs, spec, go);
      a.gradient_forward_seconds += r.times.forward;
      a.gradient_backward_seconds += r.times.backward;
      for (int64_t k = k0; k < k1; ++k) {
        const double w = weight[static_cast<size_t>(k)];
        const float* g = r.d_embed.data() + (k - k0) * n * d;
        for (size_t i = 0; i < e.size(); ++i) avg[i] += w * g[i];
      }
    }
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t k = t * d; k < (t + 1) * d; ++k) {
        s += (double(e[static_cast<size_t>(k)]) - base[static_cast<size_t>(k)]) *
             avg[static_cast<size_t>(k)];
      }
      a.scores[static_cast<size_t>(t)] = s;
    }
  }
  a.target_text = explain_detail::token_text(model, target);
  if (contrast >= 0) a.contrast_text = explain_detail::token_text(model, contrast);
  a.seconds = seconds_since(t_start);
  a.cpu_seconds = core::process_cpu_seconds() - cpu_start;
  return a;
}

std::string attribution_json(const Attribution& a) {
  using nlohmann::json;
  json j;
  const bool ig = a.method == AttributionMethod::integrated_gradients;
  j["title"] = ig ? "Integrated gradients" : "Gradient x input";
  const std::string f =
      a.contrast >= 0 ? "logit(target) - logit(contrast)" : "the target's log-probability";
  j["note"] = "Per input token: " +
              std::string(ig ? "(embedding - baseline) . the mean gradient of " + f +
                                   " along the straight path from the baseline (" +
                                   std::to_string(a.steps) + " Gauss-Legendre points)"
                             : "embedding . gradient of " + f) +
              ", with respect to the token embedding rows (learned positions held fixed). " +
              "Signed: positive tokens raise the score. f(input) = " + std::to_string(a.score) +
              ".";
  j["method"] = attribution_method_name(a.method);
  j["steps"] = ig ? json(a.steps) : json(nullptr);
  j["baseline"] = ig ? json(a.baseline) : json(nullptr);
  j["target"] = {{"id", a.target}, {"text", a.target_text}, {"position", a.position}};
  j["contrast"] =
      a.contrast >= 0 ? json{{"id", a.contrast}, {"text", a.contrast_text}} : json(nullptr);
  j["scores"] = a.scores;
  j["completeness"] =
      ig ? json{{"sum", a.sum()}, {"delta", a.score - a.baseline_score}} : json(nullptr);
  return explain_detail::dump(j, -1);
}

std::string attention_gradient_json(const Attribution& a) {
  if (a.head_scores.empty()) return "";
  using nlohmann::json;
  json j;
  j["title"] = "Attention x gradient";
  j["note"] =
      std::string("scores: per head, the sum over all query rows and keys of attention ") +
      "probability x d f / d probability (f: " +
      (a.contrast >= 0 ? "logit(target) - logit(contrast)" : "the target's log-probability") +
      "), a first-order estimate of how much f would fall without the head's output; " +
      "rows: the same products on the scored row (the last token's).";
  j["target"] = {{"id", a.target}, {"text", a.target_text}, {"position", a.position}};
  const int64_t T = static_cast<int64_t>(a.scores.size());
  json scores = json::array(), rows = json::array();
  for (int64_t l = 0; l < a.n_layer; ++l) {
    json s = json::array(), r = json::array();
    for (int64_t h = 0; h < a.n_head; ++h) {
      s.push_back(a.head_scores[static_cast<size_t>(l * a.n_head + h)]);
      const float* row = a.rows.data() + (l * a.n_head + h) * T;
      r.push_back(explain_detail::rounded(std::vector<float>(row, row + T)));
    }
    scores.push_back(std::move(s));
    rows.push_back(std::move(r));
  }
  j["scores"] = std::move(scores);
  j["rows"] = std::move(rows);
  return explain_detail::dump(j, -1);
}

std::string render_attribution(const Attribution& a, const std::vector<std::string>& tokens,
                               int top) {
  const bool ig = a.method == AttributionMethod::integrated_gradients;
  std::string out;
  char buf[256];
  const auto show = [](const std::string& t) {
    std::string quoted(1, '"');  // appends: GCC 12 misreads "\"" + std::string as overlapping
    quoted += visible_token(t);
    quoted += '"';
    return quoted;
  };
  out += std::string(ig ? "Integrated gradients (" + std::to_string(a.steps) +
                              " steps, baseline: " + a.baseline + ")"
                        : "Gradient x input") +
         " of " + show(a.target_text) +
         (a.contrast >= 0 ? " rather than " + show(a.contrast_text) : std::string()) + " after #" +
         std::to_string(a.position) + "\n";
  std::snprintf(buf, sizeof buf, "  %s = %.4f\n",
                a.contrast >= 0 ? "logit difference" : "log-probability", a.score);
  out += buf;
  std::vector<size_t> order(a.scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return std::fabs(a.scores[x]) > std::fabs(a.scores[y]);
  });
  out += "  top source tokens:\n";
  for (size_t i = 0; i < order.size() && i < static_cast<size_t>(std::max(top, 0)); ++i) {
    const size_t t = order[i];
    std::snprintf(buf, sizeof buf, "    #%-4zu %+.4f  ", t, a.scores[t]);
    out += buf + (t < tokens.size() ? show(tokens[t]) : std::string()) + "\n";
  }
  if (ig) {
    const double delta = a.score - a.baseline_score;
    std::snprintf(buf, sizeof buf,
                  "  completeness: attributions sum to %.4f, f(input) - f(baseline) = %.4f "
                  "(%.2f%% off)\n",
                  a.sum(), delta,
                  100.0 * std::fabs(a.sum() - delta) / std::max(std::fabs(delta), 1e-12));
    out += buf;
  }
  if (!a.head_scores.empty()) {
    std::vector<size_t> heads(a.head_scores.size());
    std::iota(heads.begin(), heads.end(), size_t{0});
    std::stable_sort(heads.begin(), heads.end(), [&](size_t x, size_t y) {
      return std::fabs(a.head_scores[x]) > std::fabs(a.head_scores[y]);
    });
    out += "  attention x gradient, strongest heads:";
    for (size_t i = 0; i < heads.size() && i < 5; ++i) {
      std::snprintf(buf, sizeof buf, " %lld:%lld %+.3f",
                    static_cast<long long>(heads[i] / static_cast<size_t>(a.n_head)),
                    static_cast<long long>(heads[i] % static_cast<size_t>(a.n_head)),
                    a.head_scores[heads[i]]);
      out += buf;
    }
    out += "\n";
  }
  std::snprintf(buf, sizeof buf,
                "  took %.2f s = %.1f forward-pass equivalents (one forward pass of these %zu "
                "tokens: %.3f s; in CPU time %.1f)\n",
                a.seconds, a.forward_equivalents(), a.scores.size(), a.forward_seconds,
                a.cpu_equivalents());
  out += buf;
  std::snprintf(buf, sizeof buf, "  gradient passes: forward %.2f s, backward %.2f s",
                a.gradient_forward_seconds, a.gradient_backward_seconds);
  out += buf;
  if (ig) {
    std::snprintf(buf, sizeof buf, ", %lld path points a pass",
                  static_cast<long long>(a.points_per_pass));
    out += buf;
  }
  out += "\n";
  return out;
}

}  // namespace qkv
