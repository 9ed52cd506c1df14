// Reading the residual stream through the unembedding: the logit lens, direct logit attribution,
// and norm-based attention (Kobayashi et al. 2020), all from one clean run of the prompt.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "explain_internal.h"
#include "model/arch.h"
#include "model/model_impl.h"
#include "qkv/error.h"
#include "qkv/explain.h"
#include "rerun.h"

namespace qkv {

using explain_detail::CleanRun;

namespace {

double rounded6(double v) {
  return std::round(v * 1e6) / 1e6;
}

// Whether a norm of the model is an RMS norm (as the forward pass decides).
bool is_rms(const Model::Impl& m, const model::Norm& w) {
  return w.b.empty() && m.traits->norm == model::NormKind::rms;
}

// 1 / the scale a norm divides `x` ([n] values) by: 1/rms for RMS norms, 1/std for LayerNorm.
double inv_scale(const Model::Impl& m, const model::Norm& w, const float* x, int64_t n) {
  double mean = 0;
  if (!is_rms(m, w)) {
    for (int64_t i = 0; i < n; ++i) mean += x[i];
    mean /= static_cast<double>(n);
  }
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  return 1.0 / std::sqrt(sq / static_cast<double>(n) + m.config.norm_eps);
}

// The norm `w` applied to v with the scale frozen (`inv` from the norm's whole input): w ⊙ v *
// inv, v centred first for LayerNorm; linear in v, so the parts of a sum map to parts of the
// normed sum. The bias is left out (it is no part's).
std::vector<double> frozen_norm(const Model::Impl& m, const model::Norm& w, const double* v,
                                int64_t n, double inv) {
  double mean = 0;
  if (!is_rms(m, w)) {
    for (int64_t i = 0; i < n; ++i) mean += v[i];
    mean /= static_cast<double>(n);
  }
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[i] = (v[i] - mean) * inv * w.w[static_cast<size_t>(i)];
  return out;
}

std::vector<double> to_double(const float* x, int64_t n) {
  return std::vector<double>(x, x + n);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Logit lens

LogitLens logit_lens(const Model& model, std::span<const int32_t> prompt,
                     std::span<const int64_t> positions, int top_k,
                     const InterventionOptions& options) {
  explain_detail::require_decoder(model, prompt, "logit_lens");
  const int64_t n = static_cast<int64_t>(prompt.size());
  const ModelConfig& c = model.config();
  if (top_k < 1) throw InvalidArgument("logit_lens: top_k = " + std::to_string(top_k));
  LogitLens lens;
  lens.top_k = static_cast<int>(std::min<int64_t>(top_k, c.n_vocab));
  if (positions.empty()) {
    lens.positions.resize(static_cast<size_t>(n));
    std::iota(lens.positions.begin(), lens.positions.end(), int64_t{0});
  } else {
    for (int64_t p : positions) {
      if (p < 0 || p >= n) {
        throw InvalidArgument("logit_lens: position " + std::to_string(p) + " outside the " +
                              std::to_string(n) + " prompt tokens");
      }
    }
    lens.positions.assign(positions.begin(), positions.end());
  }
  lens.n_layer = c.n_layer;
  const CleanRun run = explain_detail::clean_run(model, prompt, options);
  const int64_t np = static_cast<int64_t>(lens.positions.size()), d = c.n_embd;
  // Each layer's rows at the positions through the final norm and the head: a pass that resumes
  // past the last layer (model::ForwardOptions::resume), one row per position.
  std::vector<int32_t> tokens(static_cast<size_t>(np));
  std::vector<float> residual(static_cast<size_t>(np * d)), logits;
  for (int64_t i = 0; i < np; ++i) tokens[i] = prompt[static_cast<size_t>(lens.positions[i])];
  model::Workspace ws;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::vector<float>& x = run.layer_out[static_cast<size_t>(l)];
    for (int64_t i = 0; i < np; ++i) {
      std::copy_n(x.data() + lens.positions[i] * d, d, residual.data() + i * d);
    }
    model::ForwardOptions fo;
    fo.n_threads = options.n_threads;
    fo.workspace = &ws;
    fo.resume = {.layer = static_cast<int>(c.n_layer), .residual = residual, .attn_out = {}};
    model::KvCache cache(model, np, KvType::f32);
    model::decoder_forward(model, cache, tokens, true, logits, fo);
    for (int64_t i = 0; i < np; ++i) {
      const float* z = logits.data() + i * c.n_vocab;
      double max = -INFINITY, sum = 0;
      for (int64_t v = 0; v < c.n_vocab; ++v) max = std::max(max, static_cast<double>(z[v]));
      for (int64_t v = 0; v < c.n_vocab; ++v) sum += std::exp(z[v] - max);
      std::vector<int32_t> ids(static_cast<size_t>(c.n_vocab));
      std::iota(ids.begin(), ids.end(), 0);
      std::partial_sort(
          ids.begin(), ids.begin() + lens.top_k, ids.end(),
          [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
      for (int k = 0; k < lens.top_k; ++k) {
        const int32_t id = ids[static_cast<size_t>(k)];
        lens.top.push_back({id, explain_detail::token_text(model, id), z[id],
                            static_cast<float>(std::exp(z[id] - max) / sum)});
      }
    }
  }
  return lens;
}

std::string section_json(const LogitLens& lens) {
  nlohmann::json j;
  j["title"] = "Logit lens";
  j["note"] =
      "Each layer's residual stream (layer_out) at each position through the final norm and the "
      "LM head (and a final soft-cap where the model has one), as if it were the last layer: the " +
      std::to_string(lens.top_k) +
      " most likely tokens and their probabilities. The last layer's "
      "row is the model's own prediction.";
  j["positions"] = lens.positions;
  nlohmann::json top = nlohmann::json::array();
  const int64_t np = static_cast<int64_t>(lens.positions.size());
  for (int64_t l = 0; l < lens.n_layer; ++l) {
    nlohmann::json by_pos = nlohmann::json::array();
    for (int64_t i = 0; i < np; ++i) {
      nlohmann::json list = nlohmann::json::array();
      for (int k = 0; k < lens.top_k; ++k) {
        const LensToken& t = lens.at(l, i, k);
        list.push_back({{"id", t.id}, {"text", t.text}, {"p", rounded6(t.p)}});
      }
      by_pos.push_back(std::move(list));
    }
    top.push_back(std::move(by_pos));
  }
  j["top"] = std::move(top);
  return explain_detail::dump(j, -1);
}

// ---------------------------------------------------------------------------------------------
// Direct logit attribution

DirectLogitAttribution direct_logit_attribution(const Model& model, std::span<const int32_t> prompt,
                                                const ExplainTarget& target,
                                                const InterventionOptions& options) {
  explain_detail::require_decoder(model, prompt, "direct_logit_attribution");
  const Model::Impl& m = ModelAccess::impl(model);
  const ModelConfig& c = m.config;
  const int64_t n = static_cast<int64_t>(prompt.size()), d = c.n_embd;
  if (target.id < 0 || target.id >= c.n_vocab || target.contrast_id >= c.n_vocab ||
      target.position < 0 || target.position >= n) {
    throw InvalidArgument("direct_logit_attribution: target id " + std::to_string(target.id) +
                          " at position " + std::to_string(target.position) + " outside the " +
                          std::to_string(c.n_vocab) + "-token vocabulary or the " +
                          std::to_string(n) + " prompt rows");
  }
  const CleanRun run = explain_detail::clean_run(model, prompt, options, /*blocks=*/true);
  const int64_t r = target.position, width = c.n_head * c.head_dim;
  DirectLogitAttribution a;
  a.target = target;
  a.n_layer = c.n_layer;
  a.n_head = c.n_head;
  a.heads.assign(static_cast<size_t>(c.n_layer * c.n_head), 0.0);
  a.mlp.assign(static_cast<size_t>(c.n_layer), 0.0);
  // The direction the final residual is read along: (W_target - W_contrast) through the final
  // norm's weight, divided by its scale, frozen at the clean run's value at the target row.
  std::vector<float> row(static_cast<size_t>(d)), other(static_cast<size_t>(d));
  kernels::weight_row_to_f32(m.lm_head.view(), target.id, row.data());
  if (target.has_contrast()) {
    kernels::weight_row_to_f32(m.lm_head.view(), target.contrast_id, other.data());
    for (int64_t i = 0; i < d; ++i) row[i] -= other[i];
  }
  const float* x_final = run.layer_out.back().data() + r * d;
  a.final_norm_scale = inv_scale(m, m.out_norm, x_final, d);
  const auto logit_of = [&](const std::vector<double>& part) {
    const std::vector<double> normed =
        frozen_norm(m, m.out_norm, part.data(), d, a.final_norm_scale);
    double s = 0;
    for (int64_t i = 0; i < d; ++i) s += normed[i] * row[i];
    return s;
  };
  // The parts of the final residual: the embeddings, each layer's attention block (split into its
  // heads and the rest) and each MLP. They sum to x_final up to the fp32 additions of the pass.
  a.embedding = logit_of(to_double(run.embed.data() + r * d, d));
  std::vector<float> att(static_cast<size_t>(width)), y(static_cast<size_t>(d)),
      bias(static_cast<size_t>(d)), full(static_cast<size_t>(d));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const model::LayerWeights& L = m.layers[static_cast<size_t>(l)];
    const float* out = run.attn_out[static_cast<size_t>(l)].data() + r * width;
    // W_O · 0 is the projection's bias alone; each head's part is W_O · (its columns) minus it.
    std::fill(att.begin(), att.end(), 0.f);
    L.wo.forward(att.data(), 1, width, bias.data(), d, 1);
    L.wo.forward(out, 1, width, full.data(), d, 1);
    // Gemma 2/3 norm the projection before the residual add: its scale frozen too.
    const bool post = !L.attn_post_norm.empty();
    const double post_inv = post ? inv_scale(m, L.attn_post_norm, full.data(), d) : 1.0;
    std::vector<double> heads_sum(static_cast<size_t>(d), 0.0);
    for (int64_t h = 0; h < c.n_head; ++h) {
      std::fill(att.begin(), att.end(), 0.f);
      std::copy_n(out + h * c.head_dim, c.head_dim, att.data() + h * c.head_dim);
      L.wo.forward(att.data(), 1, width, y.data(), d, 1);
      std::vector<double> part(static_cast<size_t>(d));
      for (int64_t i = 0; i < d; ++i) part[i] = static_cast<double>(y[i]) - bias[i];
      if (post) part = frozen_norm(m, L.attn_post_norm, part.data(), d, post_inv);
      for (int64_t i = 0; i < d; ++i) heads_sum[i] += part[i];
      a.heads[static_cast<size_t>(l * c.n_head + h)] = logit_of(part);
    }
    // The rest of the block (bias, a post-norm's bias, rounding): what the heads leave of it.
    const float* block = run.attn_proj[static_cast<size_t>(l)].data() + r * d;
    std::vector<double> rest(static_cast<size_t>(d));
    for (int64_t i = 0; i < d; ++i) rest[i] = block[i] - heads_sum[i];
    a.bias_and_rest += logit_of(rest);
    a.mlp[static_cast<size_t>(l)] =
        logit_of(to_double(run.ffn_out[static_cast<size_t>(l)].data() + r * d, d));
  }
  // The final norm's bias and the head's bias, and what the fp32 residual adds rounded.
  std::vector<double> sum(static_cast<size_t>(d), 0.0);
  for (int64_t i = 0; i < d; ++i) {
    double s = run.embed[r * d + i];
    for (int64_t l = 0; l < c.n_layer; ++l) {
      s += run.attn_proj[static_cast<size_t>(l)][r * d + i] +
           run.ffn_out[static_cast<size_t>(l)][r * d + i];
    }
    sum[i] = x_final[i] - s;
  }
  a.bias_and_rest += logit_of(sum);
  double beta = 0;
  if (!m.out_norm.b.empty()) {
    for (int64_t i = 0; i < d; ++i) beta += static_cast<double>(m.out_norm.b[i]) * row[i];
  }
  if (const float* b = m.lm_head.bias()) {
    beta += b[target.id] - (target.has_contrast() ? b[target.contrast_id] : 0.f);
  }
  a.bias_and_rest += beta;
  // The target logit (difference) before any final soft-cap, from the parts' sum.
  a.total = a.embedding + a.bias_and_rest;
  for (double v : a.heads) a.total += v;
  for (double v : a.mlp) a.total += v;
  return a;
}

std::string section_json(const DirectLogitAttribution& a) {
  nlohmann::json j;
  j["title"] = "Direct logit attribution";
  j["note"] =
      std::string("Each part of the final residual stream at the target row read through ") +
      "the final norm and the unembedding " +
      (a.target.has_contrast() ? "difference (target row minus contrast row)" : "row") +
      ", the final norm's scale frozen at the clean run's value (and so a post-attention "
      "norm's, where the model has one): heads [L][H] (each head's columns of the output "
      "projection), mlp [L], the embeddings, and bias_and_rest (projection and norm "
      "biases, the fp32 rounding of the residual adds). They sum to total, the target's "
      "logit" +
      (a.target.has_contrast() ? " difference" : "") +
      " before any final soft-cap. Direct effects only: what a head does through later "
      "layers is not in its number (ablation measures that).";
  j["target"] = {{"id", a.target.id}, {"text", a.target.text}, {"position", a.target.position}};
  j["contrast"] = a.target.has_contrast() ? nlohmann::json{{"id", a.target.contrast_id},
                                                           {"text", a.target.contrast_text}}
                                          : nlohmann::json(nullptr);
  nlohmann::json heads = nlohmann::json::array();
  for (int64_t l = 0; l < a.n_layer; ++l) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t h = 0; h < a.n_head; ++h) row.push_back(rounded6(a.at(l, h)));
    heads.push_back(std::move(row));
  }
  j["heads"] = std::move(heads);
  nlohmann::json mlp = nlohmann::json::array();
  for (double v : a.mlp) mlp.push_back(rounded6(v));
  j["mlp"] = std::move(mlp);
  j["embedding"] = rounded6(a.embedding);
  j["bias_and_rest"] = rounded6(a.bias_and_rest);
  j["total"] = rounded6(a.total);
  j["final_norm_scale"] = a.final_norm_scale;
  return explain_detail::dump(j, -1);
}

// ---------------------------------------------------------------------------------------------
// Norm-based attention (Kobayashi et al. 2020)

namespace {

// Keeps, for one query row, every head's attention probabilities and every layer's v rows.
class NormCapture : public Observer {
 public:
  NormCapture(int64_t position, int64_t n_layer, int64_t n_head)
      : position_(position),
        n_head_(n_head),
        probs(static_cast<size_t>(n_layer)),
        v(static_cast<size_t>(n_layer)) {}
  bool wants_activations() override { return true; }
  void on_activation(const ActivationEvent& e) override {
    if (e.name == "v") v[static_cast<size_t>(e.layer)].assign(e.data, e.data + e.n_rows * e.width);
  }
  bool wants_attention(int /*layer*/) override { return true; }
  void on_attention(const AttentionEvent& e) override {
    const int64_t n_kv = e.k.shape[1];
    const int64_t row[] = {position_ - e.first_position};
    std::vector<float>& p = probs[static_cast<size_t>(e.layer)];
    p.resize(static_cast<size_t>(n_head_ * n_kv));
    for (int64_t h = 0; h < n_head_; ++h) {
      attention_probs(e.q, e.k, e.lse, 0, h, row, p.data() + h * n_kv, *e.options);
    }
  }

 private:
  int64_t position_, n_head_;

 public:
  std::vector<std::vector<float>> probs;  // [n_layer][n_head, T]
  std::vector<std::vector<float>> v;      // [n_layer][T, n_head_kv * head_dim]
};

}  // namespace

NormAttention norm_attention(const Model& model, std::span<const int32_t> prompt, int64_t position,
                             const InterventionOptions& options) {
  explain_detail::require_decoder(model, prompt, "norm_attention");
  const Model::Impl& m = ModelAccess::impl(model);
  const ModelConfig& c = m.config;
  const int64_t n = static_cast<int64_t>(prompt.size()), d = c.n_embd, hd = c.head_dim;
  if (position < 0) position = n - 1;
  if (position >= n) {
    throw InvalidArgument("norm_attention: position " + std::to_string(position) + " outside the " +
                          std::to_string(n) + " prompt tokens");
  }
  NormCapture cap(position, c.n_layer, c.n_head);
  {
    model::ForwardOptions fo;
    fo.n_threads = options.n_threads;
    fo.attention_backend = options.attention_backend;
    fo.observer = &cap;
    model::KvCache cache(model, n, KvType::f32);
    std::vector<float> logits;
    model::decoder_forward(model, cache, prompt, false, logits, fo);
  }
  NormAttention a;
  a.position = position;
  a.n_layer = c.n_layer;
  a.n_head = c.n_head;
  a.n_tokens = n;
  a.norms.assign(static_cast<size_t>(c.n_layer * c.n_head * n), 0.f);
  a.attention.assign(a.norms.size(), 0.f);
  const int64_t width = c.n_head * hd, kv_width = c.n_head_kv * hd;
  const int64_t group = c.n_head / c.n_head_kv;  // query heads per K/V head
  const int64_t keys = position + 1;             // the keys of a causal row
  std::vector<float> in(static_cast<size_t>(keys * width)), fv(static_cast<size_t>(keys * d)),
      bias(static_cast<size_t>(d));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const model::LayerWeights& L = m.layers[static_cast<size_t>(l)];
    std::fill(in.begin(), in.end(), 0.f);
    L.wo.forward(in.data(), 1, width, bias.data(), d, options.n_threads);
    const std::vector<float>& v = cap.v[static_cast<size_t>(l)];
    const std::vector<float>& p = cap.probs[static_cast<size_t>(l)];
    for (int64_t h = 0; h < c.n_head; ++h) {
      // f(v_j): v_j of the head's K/V group through the head's columns of the output projection
      // (its bias left out), for every key j at once.
      std::fill(in.begin(), in.end(), 0.f);
      for (int64_t j = 0; j < keys; ++j) {
        std::copy_n(v.data() + j * kv_width + (h / group) * hd, hd, in.data() + j * width + h * hd);
      }
      L.wo.forward(in.data(), keys, width, fv.data(), d, options.n_threads);
      for (int64_t j = 0; j < keys; ++j) {
        double sq = 0;
        for (int64_t i = 0; i < d; ++i) {
          const double f = static_cast<double>(fv[j * d + i]) - bias[i];
          sq += f * f;
        }
        const float alpha = p[static_cast<size_t>(h * n + j)];
        const size_t at = static_cast<size_t>((l * c.n_head + h) * n + j);
        a.attention[at] = alpha;
        a.norms[at] = static_cast<float>(alpha * std::sqrt(sq));
      }
    }
  }
  return a;
}

std::string section_json(const NormAttention& a) {
  nlohmann::json j;
  j["title"] = "Norm-based attention";
  j["note"] =
      "Kobayashi et al. 2020: for the query row at position " + std::to_string(a.position) +
      ", per layer and head, ||alpha_ij f(v_j)|| for each source j, f = the head's columns of the "
      "output projection (bias left out; a post-attention norm, where the model has one, is not "
      "applied). Large weights on small vectors count little here.";
  j["layers"] = nlohmann::json::array();
  for (int64_t l = 0; l < a.n_layer; ++l) j["layers"].push_back(l);
  j["heads"] = nlohmann::json::array();
  for (int64_t h = 0; h < a.n_head; ++h) j["heads"].push_back(h);
  j["position"] = a.position;
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t l = 0; l < a.n_layer; ++l) {
    nlohmann::json by_head = nlohmann::json::array();
    for (int64_t h = 0; h < a.n_head; ++h) {
      nlohmann::json r = nlohmann::json::array();
      for (int64_t t = 0; t < a.n_tokens; ++t) {
        r.push_back(rounded6(a.norms[static_cast<size_t>((l * a.n_head + h) * a.n_tokens + t)]));
      }
      by_head.push_back(std::move(r));
    }
    rows.push_back(std::move(by_head));
  }
  j["rows"] = std::move(rows);
  return explain_detail::dump(j, -1);
}

}  // namespace qkv
