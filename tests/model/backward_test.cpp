// The input gradients of model/backward.h on tiny random models of every decoder family (and one
// with q8_0 and one with f16 matrices), against finite differences of the forward pass:
//
// - the gradient pass's own forward equals decoder_forward (the engine's forward) on the same
//   tokens, so the differences below differentiate the model itself;
// - d score / d embeddings, along random directions restricted to one position's row (which is
//   what gradient x input reads) and along one over every row, for both scores (log-probability
//   and a contrast of two logits);
// - d score / d attention probabilities of the last row, by moving the attention output of that
//   row by eps · v_j (exactly a move of P_j by eps), and the per-head sums by scaling a head's
//   output by (1 + eps) on every row.
//
// The attention runs on the reference backend (double precision). The rest of the forward pass is
// fp32, so the differences are taken with a Richardson step pair (h, 2h): truncation O(h⁴), and
// rounding ~1e-7 · |score| / h. With h = 1e-2 and scores of a few units that is ~1e-4 absolute;
// the tolerance, 3e-3 of the derivative's own scale (sum |g_i u_i|) plus 2e-4, is far below what a
// wrong sign, a missing norm term or a transposed product gives (tens of percent).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/backward.h"
#include "model/forward.h"
#include "model/tiny_models.h"
#include "qkv/error.h"

namespace qkv::test {
namespace {

using model::GradientOptions;
using model::ScoreSpec;

struct Family {
  Architecture arch;
  TensorType matrices;
};

std::string name_of(const Family& f) {
  return std::string(architecture_name(f.arch)) + "/" + std::string(tensor_type_name(f.matrices));
}

const Family kFamilies[] = {
    {Architecture::gpt2, TensorType::f32},   {Architecture::llama, TensorType::f32},
    {Architecture::qwen2, TensorType::f32},  {Architecture::qwen3, TensorType::f32},
    {Architecture::gemma2, TensorType::f32}, {Architecture::gemma3, TensorType::f32},
    {Architecture::phi3, TensorType::f32},   {Architecture::llama, TensorType::q8_0},
    {Architecture::qwen2, TensorType::f16},
};

GradientOptions reference_options() {
  GradientOptions o;
  o.attention_backend = Backend::reference;
  o.n_threads = 1;  // the tiny models gain nothing from threads on a shared machine
  return o;
}

std::vector<int32_t> tokens_for(const Model& m, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng() % m.config().n_vocab);
  return t;
}

// f(e + h u) for each h, in one batched call.
std::vector<double> scores_along(const Model& m, const std::vector<int32_t>& tokens,
                                 const std::vector<float>& e, const std::vector<float>& u,
                                 std::initializer_list<double> hs, const ScoreSpec& spec,
                                 const GradientOptions& o) {
  std::vector<float> batch;
  for (double h : hs) {
    for (size_t i = 0; i < e.size(); ++i) batch.push_back(static_cast<float>(e[i] + h * u[i]));
  }
  return model::embedding_scores(m, tokens, batch, spec, o);
}

// Richardson-extrapolated central difference of f along u at e.
double directional_fd(const Model& m, const std::vector<int32_t>& tokens,
                      const std::vector<float>& e, const std::vector<float>& u,
                      const ScoreSpec& spec, const GradientOptions& o, double h = 2e-3) {
  const auto f = scores_along(m, tokens, e, u, {h, -h, 2 * h, -2 * h}, spec, o);
  return (8 * (f[0] - f[1]) - (f[2] - f[3])) / (12 * h);
}

TEST(Backward, ForwardEqualsDecoderForward) {
  for (const Family& fam : kFamilies) {
    SCOPED_TRACE(name_of(fam));
    const Model m = make_tiny({fam.arch, fam.matrices});
    const auto tokens = tokens_for(m, 11, 3);
    model::KvCache cache(m, 32, KvType::f32);
    std::vector<float> want;
    model::ForwardOptions fo;
    fo.attention_backend = Backend::reference;
    model::decoder_forward(m, cache, tokens, false, want, fo);
    GradientOptions o = reference_options();
    o.n_ctx = 32;
    const auto e = model::token_embeddings(m, tokens);
    const auto got = model::embedding_logits(m, tokens, e, o);
    ASSERT_EQ(got.size(), want.size());
    double err = 0, scale = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      err = std::max(err, std::fabs(double(got[i]) - want[i]));
      scale = std::max(scale, std::fabs(double(want[i])));
    }
    // The same operations in the same order except the matrix products' row blocking.
    EXPECT_LE(err, 1e-5 * scale + 1e-6) << "max |logit difference| " << err;
  }
}

TEST(Backward, EmbeddingGradientsMatchFiniteDifferences) {
  for (const Family& fam : kFamilies) {
    const Model m = make_tiny({fam.arch, fam.matrices});
    const int n = 10;  // past Gemma's tiny windows (8, 6): sliding layers do slide
    const auto tokens = tokens_for(m, n, 5);
    const auto e = model::token_embeddings(m, tokens);
    const GradientOptions o = reference_options();
    for (const ScoreSpec spec : {ScoreSpec{7, -1}, ScoreSpec{7, 11}}) {
      SCOPED_TRACE(name_of(fam) + (spec.contrast < 0 ? " log-probability" : " contrast"));
      const auto res = model::embedding_gradients(m, tokens, e, spec, o);
      ASSERT_EQ(res.d_embed.size(), e.size());
      ASSERT_EQ(res.score.size(), 1u);
      const double f0 = model::embedding_scores(m, tokens, e, spec, o)[0];
      EXPECT_NEAR(res.score[0], f0, 1e-9 * (1 + std::fabs(f0)));
      std::mt19937 rng(17);
      std::normal_distribution<float> normal(0.f, 1.f);
      const int64_t d = m.config().n_embd;
      // Directions: one position's row at a time (first, middle, last), then everything.
      for (int pos : {0, n / 2, n - 1, -1}) {
        std::vector<float> u(e.size(), 0.f);
        for (int64_t i = 0; i < n * d; ++i) {
          if (pos < 0 || i / d == pos) u[static_cast<size_t>(i)] = normal(rng);
        }
        double analytic = 0, scale = 0;
        for (size_t i = 0; i < u.size(); ++i) {
          analytic += double(res.d_embed[i]) * u[i];
          scale += std::fabs(double(res.d_embed[i]) * u[i]);
        }
        const double fd = directional_fd(m, tokens, e, u, spec, o);
        EXPECT_NEAR(analytic, fd, 3e-3 * scale + 2e-4)
            << "direction over "
            << (pos < 0 ? std::string("all rows") : "row " + std::to_string(pos));
      }
    }
  }
}

TEST(Backward, AttentionProbabilityGradientsMatchFiniteDifferences) {
  for (const Family& fam : kFamilies) {
    SCOPED_TRACE(name_of(fam));
    const Model m = make_tiny({fam.arch, fam.matrices});
    const ModelConfig& c = m.config();
    const int n = 9;
    const auto tokens = tokens_for(m, n, 9);
    const auto e = model::token_embeddings(m, tokens);
    const ScoreSpec spec{5, -1};
    GradientOptions o = reference_options();
    o.attention = true;
    const auto res = model::embedding_gradients(m, tokens, e, spec, o);
    ASSERT_EQ(res.head_sums.size(), static_cast<size_t>(c.n_layer * c.n_head));
    ASSERT_EQ(res.target_grad.size(), static_cast<size_t>(c.n_layer * c.n_head * n));
    const int64_t hd = c.head_dim, nq_w = c.n_head * hd, nkv_w = c.n_head_kv * hd;
    const int64_t group = c.n_head / c.n_head_kv;
    // f with the attention output of (layer, head) moved: row n-1 by eps v_j (j >= 0), or
    // every row scaled by 1 + eps (j < 0).
    const auto moved = [&](int layer, int64_t head, int64_t j, double eps) {
      GradientOptions p = reference_options();
      p.after_attention = [&](int l, float* out, const float* v) {
        if (l != layer) return;
        for (int64_t i = (j >= 0 ? n - 1 : 0); i < n; ++i) {
          for (int64_t ch = 0; ch < hd; ++ch) {
            float& o_ = out[i * nq_w + head * hd + ch];
            o_ += j >= 0 ? static_cast<float>(eps * v[j * nkv_w + (head / group) * hd + ch])
                         : static_cast<float>(eps * o_);
          }
        }
      };
      return model::embedding_scores(m, tokens, e, spec, p)[0];
    };
    const auto fd = [&](int layer, int64_t head, int64_t j) {
      const double h = 1e-2;
      return (8 * (moved(layer, head, j, h) - moved(layer, head, j, -h)) -
              (moved(layer, head, j, 2 * h) - moved(layer, head, j, -2 * h))) /
             (12 * h);
    };
    double scale = 0;
    for (float g : res.target_grad) scale = std::max(scale, std::fabs(double(g)));
    for (int layer = 0; layer < c.n_layer; ++layer) {
      for (int64_t head : {int64_t{0}, c.n_head - 1}) {
        for (int64_t j : {int64_t{0}, int64_t{n / 2}, int64_t{n - 1}}) {
          const double analytic =
              res.target_grad[static_cast<size_t>((layer * c.n_head + head) * n + j)];
          EXPECT_NEAR(analytic, fd(layer, head, j), 3e-3 * scale + 2e-4)
              << "dscore/dP at layer " << layer << " head " << head << " key " << j;
        }
        const double sum = res.head_sums[static_cast<size_t>(layer * c.n_head + head)];
        EXPECT_NEAR(sum, fd(layer, head, -1), 3e-3 * std::fabs(sum) + 2e-4)
            << "head sum at layer " << layer << " head " << head;
      }
    }
  }
}

TEST(Backward, BatchedSequencesEqualSingleOnes) {
  const Model m = make_tiny({Architecture::llama, TensorType::f32});
  const auto tokens = tokens_for(m, 7, 2);
  const auto e = model::token_embeddings(m, tokens);
  std::vector<float> two(e);
  for (float v : e) two.push_back(0.5f * v);
  const GradientOptions o = reference_options();
  const ScoreSpec spec{3, -1};
  const auto both = model::embedding_gradients(m, tokens, two, spec, o);
  const auto first = model::embedding_gradients(m, tokens, e, spec, o);
  std::vector<float> half(e);
  for (float& v : half) v *= 0.5f;
  const auto second = model::embedding_gradients(m, tokens, half, spec, o);
  ASSERT_EQ(both.score.size(), 2u);
  EXPECT_NEAR(both.score[0], first.score[0], 1e-5);
  EXPECT_NEAR(both.score[1], second.score[0], 1e-5);
  for (size_t i = 0; i < e.size(); ++i) {
    EXPECT_NEAR(both.d_embed[i], first.d_embed[i], 1e-5);
    EXPECT_NEAR(both.d_embed[e.size() + i], second.d_embed[i], 1e-5);
  }
}

TEST(Backward, RefusesEncodersAndBadArguments) {
  const Model bert = make_tiny({Architecture::bert, TensorType::f32});
  const std::vector<int32_t> t = {1, 2, 3};
  const auto e = model::token_embeddings(bert, t);
  try {
    model::embedding_gradients(bert, t, e, {1, -1});
    ADD_FAILURE() << "no error for an encoder";
  } catch (const InvalidArgument& err) {
    EXPECT_NE(std::string(err.what()).find("encoder"), std::string::npos) << err.what();
  }
  const Model m = make_tiny({Architecture::llama, TensorType::f32});
  const auto e2 = model::token_embeddings(m, t);
  EXPECT_THROW(model::embedding_gradients(m, t, e2, {96, -1}), InvalidArgument);
  EXPECT_THROW(model::embedding_gradients(m, t, e2, {3, 3}), InvalidArgument);
  EXPECT_THROW(model::embedding_gradients(m, t, std::span<const float>(e2).first(10), {3, -1}),
               InvalidArgument);
}

}  // namespace
}  // namespace qkv::test
