// The logit lens, direct logit attribution, activation patching and norm-based attention, each
// against a computation that does not use the method's code: a Session's own logits, full reruns
// with a test-written edit, a capture's exact maps and the double-precision linear oracle.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "common/shared_data.h"
#include "intervene_test_util.h"
#include "kernels/linear.h"
#include "model/model_impl.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {
namespace {

// Every row's logits of the prompt, from a Session (the methods' code is not involved).
std::vector<float> session_logits(const Model& m, std::span<const int32_t> prompt,
                                  Observer* obs = nullptr) {
  Session s(m, {.n_ctx = static_cast<int64_t>(prompt.size()),
                .n_threads = 1,
                .observer = obs,
                .attention_backend = Backend::reference});
  const std::span<const float> l = s.eval(prompt, true);
  return {l.begin(), l.end()};
}

struct Loaded {
  Model model;
  std::vector<int32_t> prompt;
};

std::optional<Loaded> load(const std::string& name) {
  if (name == "builtin") {
    if (!std::filesystem::exists(test::kBuiltInModel)) return std::nullopt;
    Model m = Model::load(test::kBuiltInModel);
    std::vector<int32_t> p = m.tokenizer().encode(test::kWinograd);
    return Loaded{std::move(m), std::move(p)};
  }
  const auto dir = test::shared_file("fixtures/gguf-families/" + name.substr(0, name.find('/')));
  if (dir.empty()) return std::nullopt;
  Model m = Model::load((dir / name.substr(name.find('/') + 1)).string());
  std::vector<int32_t> p;
  for (int i = 0; i < 20; ++i) p.push_back(static_cast<int32_t>((37 * i + 11) % 700));
  return Loaded{std::move(m), std::move(p)};
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

const auto kFamilies = ::testing::Values("builtin", "qwen2/model-f32.gguf", "qwen3/model-f32.gguf",
                                         "gemma2/model-f32.gguf", "gemma2/model-Q4_K_M.gguf");

class Lens : public ::testing::TestWithParam<std::string> {};

// The lens of the last layer is the model's own prediction at every position.
TEST_P(Lens, LastLayerEqualsTheModelsLogits) {
  std::optional<Loaded> c = load(GetParam());
  if (!c) GTEST_SKIP() << GetParam() << " is not available";
  const int64_t n = static_cast<int64_t>(c->prompt.size()), V = c->model.config().n_vocab;
  const std::vector<float> logits = session_logits(c->model, c->prompt);
  const LogitLens lens = logit_lens(c->model, c->prompt, {}, 5, {.n_threads = 1});
  ASSERT_EQ(lens.positions.size(), static_cast<size_t>(n));
  ASSERT_EQ(lens.top.size(), static_cast<size_t>(lens.n_layer * n * 5));
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.data() + i * V;
    std::vector<int32_t> ids(static_cast<size_t>(V));
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
    double max = z[ids[0]], sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(z[v] - max);
    for (int k = 0; k < 5; ++k) {
      const LensToken& t = lens.at(lens.n_layer - 1, i, k);
      // fp32 logits from two runs (reference vs fast attention): 1e-4 of logits of order 10.
      EXPECT_NEAR(t.logit, z[t.id], 1e-4) << "position " << i << " rank " << k;
      EXPECT_NEAR(t.logit, z[ids[static_cast<size_t>(k)]], 1e-4) << "position " << i;
      EXPECT_NEAR(t.p, std::exp(z[t.id] - max) / sum, 1e-5);
    }
  }
  // A chosen position, and the errors.
  const int64_t last[] = {n - 1};
  const LogitLens one = logit_lens(c->model, c->prompt, last, 3, {.n_threads = 1});
  EXPECT_EQ(one.at(one.n_layer - 1, 0, 0).id, lens.at(lens.n_layer - 1, n - 1, 0).id);
  const int64_t bad[] = {n};
  EXPECT_THROW(logit_lens(c->model, c->prompt, bad), InvalidArgument);
}

// The parts of the direct logit attribution sum to the target logit (or logit difference) the
// model computes; Gemma 2's final soft-cap is applied after the sum.
TEST_P(Lens, DirectLogitAttributionSumsToTheTargetLogit) {
  std::optional<Loaded> c = load(GetParam());
  if (!c) GTEST_SKIP() << GetParam() << " is not available";
  const int64_t n = static_cast<int64_t>(c->prompt.size()), V = c->model.config().n_vocab;
  const std::vector<float> logits = session_logits(c->model, c->prompt);
  const float* z = logits.data() + (n - 1) * V;
  ExplainTarget t;
  t.position = n - 1;
  t.id = static_cast<int32_t>(std::max_element(z, z + V) - z);
  for (bool contrast : {false, true}) {
    t.contrast_id = contrast ? (t.id + 1) % static_cast<int32_t>(V) : -1;
    const DirectLogitAttribution a =
        direct_logit_attribution(c->model, c->prompt, t, {.n_threads = 1});
    double sum = a.embedding + a.bias_and_rest;
    for (double v : a.heads) sum += v;
    for (double v : a.mlp) sum += v;
    EXPECT_NEAR(sum, a.total, 1e-9);
    const double cap = c->model.config().final_softcap;
    const auto capped = [&](double x) { return cap > 0 ? cap * std::tanh(x / cap) : x; };
    double expected = z[t.id];
    double got = capped(a.total);
    if (contrast) {
      expected -= z[t.contrast_id];
      // Under a soft-cap the parts add up before it: the difference of the capped logits comes
      // from the target's total and the contrast's own.
      ExplainTarget only = t;
      only.contrast_id = -1;
      const double target_total =
          direct_logit_attribution(c->model, c->prompt, only, {.n_threads = 1}).total;
      got = capped(target_total) - capped(target_total - a.total);
    }
    // fp32 parts summed in double: 1e-4 of logits of order 10.
    EXPECT_NEAR(got, expected, 2e-4) << (contrast ? "with contrast" : "");
    // The heads carry some of it (the rest is not all in one bucket).
    EXPECT_GT(std::abs(a.heads[0]) + std::abs(a.heads[1]), 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, Lens, kFamilies, param_name);

// A test-written edit: one head's attn_out columns at one layer from `src` ([T, width]).
class CopyHead : public Observer {
 public:
  CopyHead(int layer, int64_t col0, int64_t cols, const std::vector<float>& src)
      : layer_(layer), col0_(col0), cols_(cols), src_(src) {}
  bool wants_edits() override { return true; }
  void on_edit(const ActivationEvent& e, float* data) override {
    if (e.name != "attn_out" || e.layer != layer_) return;
    for (int64_t i = 0; i < e.n_rows; ++i) {
      std::copy_n(src_.data() + i * e.width + col0_, cols_, data + i * e.width + col0_);
    }
  }

 private:
  int layer_;
  int64_t col0_, cols_;
  const std::vector<float>& src_;
};

TEST(Patching, SelfPatchRestoresNothingAndTheLastResidualEverything) {
  QKV_REQUIRE_BUILTIN();
  const Model m = Model::load(test::kBuiltInModel);
  const Tokenizer& tok = m.tokenizer();
  const std::vector<int32_t> clean = tok.encode(test::kWinograd);
  const std::vector<int32_t> corrupted =
      tok.encode("The animal didn't cross the street because it was too wide. It");
  ASSERT_EQ(clean.size(), corrupted.size());
  const ExplainTarget t = resolve_target(m, clean, "animal", "street");
  const InterventionOptions ref{.n_threads = 1, .attention_backend = Backend::reference};
  // Patching a prompt with itself: the scores are equal, every fraction is 0 by definition.
  const ActivationPatching self = patch_activations(m, clean, clean, t, ref);
  EXPECT_TRUE(self.degenerate);
  EXPECT_EQ(self.clean_score, self.corrupted_score);
  for (double f : self.layer_position) EXPECT_EQ(f, 0.0);
  for (double f : self.head) EXPECT_EQ(f, 0.0);

  const ActivationPatching p = patch_activations(m, clean, corrupted, t, ref);
  ASSERT_FALSE(p.degenerate);
  const int64_t n = p.n_tokens, L = p.n_layer;
  // The last layer's residual at the target row is all the head reads: everything restored.
  EXPECT_NEAR(p.layer_position[static_cast<size_t>((L - 1) * n + n - 1)], 1.0, 1e-5);
  // Rows before the first differing token are the same in both runs: nothing to restore.
  int64_t first_diff = 0;
  while (clean[first_diff] == corrupted[first_diff]) ++first_diff;
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < first_diff; ++i) {
      EXPECT_NEAR(p.layer_position[static_cast<size_t>(l * n + i)], 0.0, 1e-5) << l << " " << i;
    }
  }
  // A head's fraction equals a full rerun of the corrupted prompt with that head's output copied
  // from the clean run by a test-written edit.
  test::Keep outs("attn_out");
  session_logits(m, clean, &outs);
  const int64_t hd = m.config().head_dim, V = m.config().n_vocab;
  const auto score = [&](Observer* obs) {
    const std::vector<float> z = session_logits(m, corrupted, obs);
    return target_score(t, std::span<const float>(z).subspan(static_cast<size_t>((n - 1) * V)));
  };
  const double base = score(nullptr);
  EXPECT_NEAR(base, p.corrupted_score, 1e-4);
  for (int l = 0; l < L; ++l) {
    for (int64_t h = 0; h < p.n_head; ++h) {
      CopyHead edit(l, h * hd, hd, outs.rows[l]);
      const double expected = (score(&edit) - base) / (p.clean_score - p.corrupted_score);
      EXPECT_NEAR(p.head[static_cast<size_t>(l * p.n_head + h)], expected, 1e-4)
          << "layer " << l << " head " << h;
    }
  }
  // Prompts of different token lengths are refused by name.
  const std::vector<int32_t> longer = tok.encode(std::string(test::kWinograd) + " lay");
  try {
    patch_activations(m, clean, longer, t);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("same token length"), std::string::npos) << e.what();
  }
}

// Replaces one row of layer_out at one layer with the same row of `src` ([n, n_embd]).
class CopyResidualRow : public Observer {
 public:
  CopyResidualRow(int layer, int64_t row, const std::vector<float>& src)
      : layer_(layer), row_(row), src_(src) {}
  bool wants_edits() override { return true; }
  void on_edit(const ActivationEvent& e, float* data) override {
    if (e.name != "layer_out" || e.layer != layer_) return;
    std::copy_n(src_.data() + row_ * e.width, e.width, data + row_ * e.width);
  }

 private:
  int layer_;
  int64_t row_;
  const std::vector<float>& src_;
};

class PatchingFamilies : public ::testing::TestWithParam<std::string> {};

// Every fraction of the patching tables equals full reruns of the corrupted prompt (Session,
// reference attention, no resume, no batching) with the clean run's activation copied in by a
// test-written edit: each head's attn_out columns, and each layer's layer_out at each position.
// On GQA (qwen2), QK-norm (qwen3), soft-capping and a sliding window shorter than the prompt
// (gemma2), and quantized weights.
TEST_P(PatchingFamilies, EqualsFullRerunsWithTheActivationCopied) {
  std::optional<Loaded> c = load(GetParam());
  if (!c) GTEST_SKIP() << GetParam() << " is not available";
  const Model& m = c->model;
  const std::vector<int32_t>& clean = c->prompt;
  std::vector<int32_t> corrupted = clean;
  corrupted[5] = (corrupted[5] + 1) % 700;
  corrupted[12] = (corrupted[12] + 3) % 700;
  const int64_t n = static_cast<int64_t>(clean.size()), V = m.config().n_vocab;
  const std::vector<float> clean_logits = session_logits(m, clean);
  const float* z = clean_logits.data() + (n - 1) * V;
  ExplainTarget t;
  t.position = n - 1;
  t.id = static_cast<int32_t>(std::max_element(z, z + V) - z);
  t.contrast_id = (t.id + 1) % static_cast<int32_t>(V);
  const InterventionOptions ref{.n_threads = 1, .attention_backend = Backend::reference};
  const ActivationPatching p = patch_activations(m, clean, corrupted, t, ref);
  ASSERT_FALSE(p.degenerate);
  test::Keep outs("attn_out"), residual("layer_out");
  session_logits(m, clean, &outs);
  session_logits(m, clean, &residual);
  const auto score = [&](Observer* obs) {
    const std::vector<float> l = session_logits(m, corrupted, obs);
    return target_score(t, std::span<const float>(l).subspan(static_cast<size_t>((n - 1) * V)));
  };
  const double base = score(nullptr), diff = p.clean_score - p.corrupted_score;
  EXPECT_NEAR(base, p.corrupted_score, 1e-4);
  // Scores (logit differences of order 1-10) agree to ~1e-5 between the two fp32 paths; a
  // fraction divides that by the clean-corrupted difference.
  const double tol = 1e-4 + 1e-4 / std::abs(diff);
  const int64_t hd = m.config().head_dim;
  for (int l = 0; l < p.n_layer; ++l) {
    for (int64_t h = 0; h < p.n_head; ++h) {
      CopyHead edit(l, h * hd, hd, outs.rows[l]);
      EXPECT_NEAR(p.head[static_cast<size_t>(l * p.n_head + h)], (score(&edit) - base) / diff, tol)
          << "layer " << l << " head " << h;
    }
    for (int64_t i = 0; i < n; ++i) {
      CopyResidualRow edit(l, i, residual.rows[l]);
      EXPECT_NEAR(p.layer_position[static_cast<size_t>(l * n + i)], (score(&edit) - base) / diff,
                  tol)
          << "layer " << l << " position " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, PatchingFamilies,
                         ::testing::Values("qwen2/model-f32.gguf", "qwen3/model-f32.gguf",
                                           "gemma2/model-f32.gguf", "qwen3/model-Q4_K_M.gguf"),
                         param_name);

// ||alpha_ij f(v_j)|| from a capture's exact map row and the double-precision linear oracle on
// the head's columns of the output projection.
// On every family: GQA (a head reads its group's value rows), QK-norm, a sliding window shorter
// than the prompt, quantized output projections.
class NormAttentionFamilies : public ::testing::TestWithParam<std::string> {};

TEST_P(NormAttentionFamilies, EqualsAlphaTimesTheProjectedValueNorm) {
  std::optional<Loaded> loaded = load(GetParam());
  if (!loaded) GTEST_SKIP() << GetParam() << " is not available";
  const Model& m = loaded->model;
  const std::vector<int32_t>& prompt = loaded->prompt;
  const int64_t n = static_cast<int64_t>(prompt.size());
  const ModelConfig& c = m.config();
  const NormAttention a = norm_attention(m, prompt, -1, {.n_threads = 1});
  ASSERT_EQ(a.position, n - 1);
  AttentionCapture cap(m);
  test::Keep vs("v");
  struct Both : Observer {
    AttentionCapture& c;
    test::Keep& k;
    Both(AttentionCapture& c, test::Keep& k) : c(c), k(k) {}
    bool wants_activations() override { return true; }
    void on_activation(const ActivationEvent& e) override { k.on_activation(e); }
    bool wants_attention(int l) override { return c.wants_attention(l); }
    void on_attention(const AttentionEvent& e) override { c.on_attention(e); }
  } both(cap, vs);
  session_logits(m, prompt, &both);
  const int64_t d = c.n_embd, hd = c.head_dim, width = c.n_head * hd;
  const Model::Impl& impl = ModelAccess::impl(m);
  for (int l = 0; l < c.n_layer; ++l) {
    for (int h = 0; h < c.n_head; ++h) {
      const std::vector<float> map = cap.map(static_cast<size_t>(l), static_cast<size_t>(h), n);
      for (int64_t j = 0; j < n; ++j) {
        std::vector<float> in(static_cast<size_t>(width), 0.f), y(static_cast<size_t>(d));
        std::copy_n(vs.rows[l].data() + j * c.n_head_kv * hd + h / (c.n_head / c.n_head_kv) * hd,
                    hd, in.data() + h * hd);
        kernels::linear_reference(impl.layers[static_cast<size_t>(l)].wo.view(), nullptr, in.data(),
                                  1, width, y.data(), d);
        double sq = 0;
        for (float v : y) sq += static_cast<double>(v) * v;
        const float alpha = map[static_cast<size_t>((n - 1) * n + j)];
        const size_t at = static_cast<size_t>((l * c.n_head + h) * n + j);
        EXPECT_NEAR(a.attention[at], alpha, 1e-5);
        EXPECT_NEAR(a.norms[at], alpha * std::sqrt(sq), 1e-4 * (1 + std::sqrt(sq)));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, NormAttentionFamilies, kFamilies, param_name);

}  // namespace
}  // namespace qkv
