// The writable observer hook, reruns from a layer, and head ablation: against full reruns that
// zero (or average) a head through a Session on the double-precision reference attention, on the
// built-in GPT-2, stories260K (llama), the qwen2/qwen3/gemma2 fixtures and a Q4_K_M model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/shared_data.h"
#include "explain_test_util.h"
#include "intervene_test_util.h"
#include "model/forward.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {
namespace {

// The first `n` ids of a fixture's ids.txt (comma-separated).
std::vector<int32_t> fixture_ids(const std::filesystem::path& file, size_t n) {
  std::ifstream in(file);
  std::vector<int32_t> ids;
  std::string item;
  while (ids.size() < n && std::getline(in, item, ',')) ids.push_back(std::stoi(item));
  return ids;
}

// A model and a prompt of ids for each family; the target is the greedy next token, contrast
// none, set by the tests.
struct Case {
  Model model;
  std::vector<int32_t> prompt;
};

std::optional<Case> load_case(const std::string& name) {
  if (name == "builtin") {
    if (!std::filesystem::exists(test::kBuiltInModel)) return std::nullopt;
    Model m = Model::load(test::kBuiltInModel);
    std::vector<int32_t> p = m.tokenizer().encode(test::kWinograd);
    return Case{std::move(m), std::move(p)};
  }
  if (name == "stories260K") {
    const auto bin = test::shared_file("models/stories260K/stories260K.bin");
    if (bin.empty()) return std::nullopt;
    Model m = Model::load(bin.string(), test::tokenizer_beside(bin));
    std::vector<int32_t> p = m.tokenizer().encode("Once upon a time, there was a little");
    return Case{std::move(m), std::move(p)};
  }
  // gguf-families/<family>/<file>: 24 ids (gemma2's sliding window is 16 keys).
  const auto slash = name.find('/');
  const auto dir = test::shared_file("fixtures/gguf-families/" + name.substr(0, slash));
  if (dir.empty()) return std::nullopt;
  return Case{Model::load((dir / name.substr(slash + 1)).string()),
              fixture_ids(dir / "ids.txt", 24)};
}

// The greedy next token of the prompt as the target (through a Session, independent of the
// methods' own runs).
ExplainTarget greedy_target(const Case& c) {
  Session s(c.model, {.n_ctx = static_cast<int64_t>(c.prompt.size()), .n_threads = 1});
  const std::span<const float> l = s.eval(c.prompt);
  ExplainTarget t;
  t.id = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
  t.position = static_cast<int64_t>(c.prompt.size()) - 1;
  return t;
}

// Replaces the columns of one head of attn_out at one layer with `fill` (a [head_dim] row) or
// zeros: the edit a full rerun makes, written here without the library's ColumnEdit.
class ZeroHead : public Observer {
 public:
  ZeroHead(int layer, int64_t col0, int64_t cols, const float* fill = nullptr)
      : layer_(layer), col0_(col0), cols_(cols), fill_(fill) {}
  bool wants_edits() override { return true; }
  void on_edit(const ActivationEvent& e, float* data) override {
    if (e.name != "attn_out" || e.layer != layer_) return;
    for (int64_t i = 0; i < e.n_rows; ++i) {
      for (int64_t k = 0; k < cols_; ++k) data[i * e.width + col0_ + k] = fill_ ? fill_[k] : 0.f;
    }
  }

 private:
  int layer_;
  int64_t col0_, cols_;
  const float* fill_;
};

double reference_score(const Case& c, const ExplainTarget& t, Observer* obs) {
  Session s(c.model, {.n_ctx = static_cast<int64_t>(c.prompt.size()),
                      .n_threads = 1,
                      .observer = obs,
                      .attention_backend = Backend::reference});
  return target_score(t, s.eval(c.prompt));
}

class Ablation : public ::testing::TestWithParam<std::string> {};

// Every head's delta equals a full rerun of the prompt (Session, reference attention, no resume,
// no batching) with that head's output zeroed, or replaced by its mean over the positions.
TEST_P(Ablation, EqualsFullRerunsOnTheReferenceBackend) {
  std::optional<Case> c = load_case(GetParam());
  if (!c) GTEST_SKIP() << GetParam() << " is not available";
  const ExplainTarget t = greedy_target(*c);
  const ModelConfig& cfg = c->model.config();
  const InterventionOptions ref{.n_threads = 1, .attention_backend = Backend::reference};
  const double baseline = reference_score(*c, t, nullptr);
  test::Keep outs("attn_out");
  reference_score(*c, t, &outs);
  for (AblationMode mode : {AblationMode::zero, AblationMode::mean}) {
    const HeadAblation a = ablate_heads(c->model, c->prompt, t, mode, ref);
    ASSERT_EQ(a.n_layer, cfg.n_layer);
    ASSERT_EQ(a.n_head, cfg.n_head);
    // Both sides run fp32 matrix products, batched differently; the scores are log-probabilities
    // of order 1-10, equal to ~1e-6 relative.
    EXPECT_NEAR(a.baseline, baseline, 1e-4);
    const int64_t n = static_cast<int64_t>(c->prompt.size()), width = cfg.n_head * cfg.head_dim;
    for (int l = 0; l < cfg.n_layer; ++l) {
      for (int h = 0; h < cfg.n_head; ++h) {
        std::vector<float> mean(static_cast<size_t>(cfg.head_dim));
        for (int64_t k = 0; k < cfg.head_dim; ++k) {
          double s = 0;
          for (int64_t i = 0; i < n; ++i) s += outs.rows[l][i * width + h * cfg.head_dim + k];
          mean[k] = static_cast<float>(s / n);
        }
        ZeroHead edit(l, h * cfg.head_dim, cfg.head_dim,
                      mode == AblationMode::mean ? mean.data() : nullptr);
        const double expected = reference_score(*c, t, &edit) - baseline;
        EXPECT_NEAR(a.at(l, h), expected, 1e-4 + 1e-5 * std::abs(expected))
            << ablation_mode_name(mode) << " layer " << l << " head " << h;
      }
    }
    EXPECT_EQ(a.cost.reruns, cfg.n_layer * cfg.n_head);
    // Layer l's reruns start at its attention output (three quarters of it) and run the layers
    // above, the last at a quarter (the last layer's own reruns: one row, nothing), i.e.
    // n_layer - l - 1 layers; plus the recording pass.
    EXPECT_NEAR(a.cost.layer_equivalents, 1 + cfg.n_head * (cfg.n_layer - 1) / 2.0, 1e-9);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, Ablation,
                         ::testing::Values("builtin", "stories260K", "qwen2/model-f32.gguf",
                                           "qwen3/model-f32.gguf", "gemma2/model-f32.gguf",
                                           "qwen3/model-Q4_K_M.gguf"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

// The hook and the resume option at the model layer: a rerun from any layer's kept residual
// stream gives the full run's logits; a batch keeps an editing sequence's edits to itself.
TEST(ForwardEdits, ResumeFromAnyLayerEqualsTheFullRun) {
  std::optional<Case> c = load_case("builtin");
  if (!c) GTEST_SKIP() << test::kBuiltInModel << " is not in this checkout";
  const int64_t n = static_cast<int64_t>(c->prompt.size());
  const int n_layer = static_cast<int>(c->model.config().n_layer);
  test::Keep outs("layer_out");
  std::vector<float> full;
  model::ForwardOptions fo;
  fo.observer = &outs;
  fo.n_threads = 1;
  fo.linear_path = kernels::LinearPath::gemv;  // row results independent of the batch
  model::KvCache cache(c->model, n, KvType::f32);
  model::decoder_forward(c->model, cache, c->prompt, true, full, fo);
  for (int l = 1; l <= n_layer; ++l) {
    model::ForwardOptions r;
    r.n_threads = 1;
    r.linear_path = kernels::LinearPath::gemv;
    r.resume = {.layer = l, .residual = outs.rows[l - 1], .attn_out = {}};
    model::KvCache fresh(c->model, n, KvType::f32);
    std::vector<float> logits;
    model::decoder_forward(c->model, fresh, c->prompt, true, logits, r);
    ASSERT_EQ(logits.size(), full.size());
    for (size_t i = 0; i < full.size(); ++i) ASSERT_EQ(logits[i], full[i]) << "layer " << l;
  }
  // A residual of the wrong size, or a layer past the model, is refused by name.
  model::ForwardOptions bad;
  model::KvCache empty(c->model, n, KvType::f32);
  bad.resume = {.layer = n_layer + 1, .residual = outs.rows[0], .attn_out = {}};
  std::vector<float> logits;
  EXPECT_THROW(model::decoder_forward(c->model, empty, c->prompt, false, logits, bad),
               InvalidArgument);
  bad.resume = {
      .layer = 1, .residual = std::span<const float>(outs.rows[0]).first(5), .attn_out = {}};
  EXPECT_THROW(model::decoder_forward(c->model, empty, c->prompt, false, logits, bad),
               InvalidArgument);
}

// last_rows_only: the last rows' logits of a batch equal full passes' (the last layer's products
// for one row against many: fp32 rounding), and observers see the narrowed rows' positions.
TEST(ForwardEdits, LastRowsOnlyGivesTheLastRowsLogits) {
  QKV_REQUIRE_BUILTIN();
  const Model m = Model::load(test::kBuiltInModel);
  const std::vector<int32_t> a = m.tokenizer().encode(test::kWinograd);
  const std::vector<int32_t> b = m.tokenizer().encode("Once upon a time there was a dog");
  const auto full = [&](std::span<const int32_t> ids) {
    model::KvCache cache(m, 64, KvType::f32);
    std::vector<float> logits;
    model::ForwardOptions o;
    o.n_threads = 1;
    model::decoder_forward(m, cache, ids, false, logits, o);
    return logits;
  };
  const int last = static_cast<int>(m.config().n_layer) - 1;
  test::Keep outs("attn_out");
  model::KvCache ca(m, 64, KvType::f32), cb(m, 64, KvType::f32);
  std::vector<float> la, lb;
  const model::SequenceStep steps[] = {{&ca, a, false, &la, &outs}, {&cb, b, false, &lb, nullptr}};
  model::ForwardOptions o;
  o.n_threads = 1;
  o.last_rows_only = true;
  model::decoder_forward_batch(m, steps, o);
  const std::vector<float> fa = full(a), fb = full(b);
  ASSERT_EQ(la.size(), fa.size());
  for (size_t i = 0; i < fa.size(); ++i) EXPECT_NEAR(la[i], fa[i], 1e-4);
  for (size_t i = 0; i < fb.size(); ++i) EXPECT_NEAR(lb[i], fb[i], 1e-4);
  EXPECT_EQ(outs.rows[last].size(), static_cast<size_t>(m.config().n_head * m.config().head_dim));
  EXPECT_EQ(outs.rows[0].size(), a.size() * m.config().n_head * m.config().head_dim);
  // The cache holds every row's K/V: a decode step after it equals one after a full pass.
  EXPECT_EQ(ca.n_past(), static_cast<int64_t>(a.size()));
  model::KvCache cf(m, 64, KvType::f32);
  std::vector<float> l1, l2;
  model::ForwardOptions plain;
  plain.n_threads = 1;
  model::decoder_forward(m, cf, a, false, l1, plain);
  const int32_t next[] = {5};
  model::decoder_forward(m, cf, next, false, l1, plain);
  model::decoder_forward(m, ca, next, false, l2, plain);
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l2[i], l1[i], 1e-4);
  // all_logits is refused with it.
  std::vector<float> l;
  model::KvCache cc(m, 64, KvType::f32);
  EXPECT_THROW(model::decoder_forward(m, cc, a, true, l, o), InvalidArgument);
}

// The path head ablation takes (a batch of one sequence per head, resumed at the layer's kept
// attention output, the last layer for the last row only) against the plain one: each head's
// zeroed output in its own full pass from the tokens, unbatched. Both on the matrix-vector
// kernels, whose per-row results do not depend on the batch; the one-row attention of the last
// layer against the full one differs in summation order only (fp32, logits of order 10).
TEST(ForwardEdits, ResumeAtAttentionOutputEqualsUnbatchedFullPasses) {
  std::optional<Case> c = load_case("builtin");
  if (!c) GTEST_SKIP() << test::kBuiltInModel << " is not in this checkout";
  const Model& m = c->model;
  const ModelConfig& cfg = m.config();
  const int64_t n = static_cast<int64_t>(c->prompt.size()), hd = cfg.head_dim;
  const int64_t width = cfg.n_head * hd;
  model::ForwardOptions fo;
  fo.n_threads = 1;
  fo.linear_path = kernels::LinearPath::gemv;
  test::Keep ins("layer_out"), outs("attn_out");
  std::vector<float> embed;
  class KeepEmbed : public Observer {
   public:
    explicit KeepEmbed(std::vector<float>& to) : to_(to) {}
    bool wants_activations() override { return true; }
    void on_activation(const ActivationEvent& e) override {
      if (e.name == "embed") to_.assign(e.data, e.data + e.n_rows * e.width);
    }

   private:
    std::vector<float>& to_;
  } keep_embed(embed);
  for (Observer* obs : std::initializer_list<Observer*>{&ins, &outs, &keep_embed}) {
    model::KvCache cache(m, n, KvType::f32);
    std::vector<float> logits;
    model::ForwardOptions o = fo;
    o.observer = obs;
    model::decoder_forward(m, cache, c->prompt, false, logits, o);
  }
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::vector<float>& into = l == 0 ? embed : ins.rows[l - 1];
    std::vector<float> residual, attn;  // every head's copy, [n_head * n, ...]
    std::vector<ZeroHead> edits;
    for (int64_t h = 0; h < cfg.n_head; ++h) {
      residual.insert(residual.end(), into.begin(), into.end());
      attn.insert(attn.end(), outs.rows[l].begin(), outs.rows[l].end());
      edits.emplace_back(l, h * hd, hd);
    }
    std::vector<model::KvCache> caches;
    std::vector<std::vector<float>> logits(static_cast<size_t>(cfg.n_head));
    for (int64_t h = 0; h < cfg.n_head; ++h) caches.emplace_back(m, n, KvType::f32);
    std::vector<model::SequenceStep> steps;
    for (int64_t h = 0; h < cfg.n_head; ++h) {
      const auto i = static_cast<size_t>(h);
      steps.push_back({&caches[i], c->prompt, false, &logits[i], &edits[i]});
    }
    model::ForwardOptions o = fo;
    o.last_rows_only = true;
    o.resume = {.layer = l, .residual = residual, .attn_out = attn};
    model::decoder_forward_batch(m, steps, o);
    for (int64_t h = 0; h < cfg.n_head; ++h) {
      ZeroHead edit(l, h * hd, hd);
      model::KvCache cache(m, n, KvType::f32);
      std::vector<float> full;
      model::ForwardOptions p = fo;
      p.observer = &edit;
      model::decoder_forward(m, cache, c->prompt, false, full, p);
      const std::vector<float>& got = logits[static_cast<size_t>(h)];
      ASSERT_EQ(got.size(), full.size());
      double worst = 0;
      for (size_t i = 0; i < full.size(); ++i)
        worst = std::max<double>(worst, std::abs(got[i] - full[i]));
      EXPECT_LT(worst, 1e-4) << "layer " << l << " head " << h;
    }
  }
  // An attention output of the wrong size, or one without the residual stream, is refused.
  model::KvCache cache(m, n, KvType::f32);
  std::vector<float> logits;
  model::ForwardOptions bad = fo;
  bad.resume = {.layer = 1,
                .residual = ins.rows[0],
                .attn_out = std::span<const float>(outs.rows[1]).first(5)};
  EXPECT_THROW(model::decoder_forward(m, cache, c->prompt, false, logits, bad), InvalidArgument);
  bad.resume = {.layer = 0, .residual = {}, .attn_out = outs.rows[0]};
  EXPECT_THROW(model::decoder_forward(m, cache, c->prompt, false, logits, bad), InvalidArgument);
  (void)width;
}

TEST(ForwardEdits, BatchKeepsEditsToTheirSequence) {
  std::optional<Case> c = load_case("builtin");
  if (!c) GTEST_SKIP() << test::kBuiltInModel << " is not in this checkout";
  const Model& m = c->model;
  const int64_t n = static_cast<int64_t>(c->prompt.size());
  const std::vector<int32_t> other = m.tokenizer().encode("Once upon a time there was a dog");
  const int64_t hd = m.config().head_dim;
  model::ForwardOptions fo;
  fo.n_threads = 1;
  fo.linear_path = kernels::LinearPath::gemv;
  const auto alone = [&](std::span<const int32_t> ids, Observer* obs) {
    model::KvCache cache(m, 64, KvType::f32);
    std::vector<float> logits;
    model::ForwardOptions o = fo;
    o.observer = obs;
    model::decoder_forward(m, cache, ids, true, logits, o);
    return logits;
  };
  ZeroHead edit(1, 2 * hd, hd);
  const std::vector<float> a_edit = alone(c->prompt, &edit), b_plain = alone(other, nullptr);
  const std::vector<float> a_plain = alone(c->prompt, nullptr);
  EXPECT_NE(a_edit, a_plain);  // the edit changes the logits
  model::KvCache ca(m, 64, KvType::f32), cb(m, 64, KvType::f32);
  std::vector<float> la, lb;
  const model::SequenceStep steps[] = {{&ca, c->prompt, true, &la, &edit},
                                       {&cb, other, true, &lb, nullptr}};
  model::decoder_forward_batch(m, steps, fo);
  EXPECT_EQ(la, a_edit);
  EXPECT_EQ(lb, b_plain);
  (void)n;
}

TEST(ForwardEdits, EncodersAndBadTargetsAreRefused) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/bert-tiny");
  const Model bert = Model::load(dir.string());
  ExplainTarget t;
  t.id = 1;
  t.position = 2;
  try {
    ablate_heads(bert, std::vector<int32_t>{1, 2, 3}, t);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("encoder"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qkv
