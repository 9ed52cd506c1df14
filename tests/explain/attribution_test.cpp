// Attribution (qkv::attribute) on tiny random models of every decoder family:
// - integrated gradients are complete: the attributions sum to f(input) - f(baseline) within 1%
//   at 64 steps (the quadrature of the path integral; the score differences come from separate
//   forward passes, so this checks the gradients along the whole path);
// - gradient x input sums to the derivative of f(s · input) at s = 1, by central differences
//   (an independent check of the gradient as grad x input reads it);
// - the report sections have the documented layouts (docs/EXPLAIN.md, "Report data");
// - encoders and bad arguments are refused with a message naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "model/backward.h"
#include "model/tiny_models.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv::test {
namespace {

const Architecture kDecoders[] = {Architecture::gpt2,  Architecture::llama,  Architecture::qwen2,
                                  Architecture::qwen3, Architecture::gemma2, Architecture::gemma3,
                                  Architecture::phi3};

std::vector<int32_t> some_tokens(int n, uint32_t seed, int32_t n_vocab) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng() % n_vocab);
  return t;
}

AttributionOptions reference(AttributionMethod m, int steps = 32) {
  AttributionOptions o;
  o.method = m;
  o.steps = steps;
  o.attention_backend = Backend::reference;
  o.n_threads = 1;  // the tiny models gain nothing from threads on a shared machine
  return o;
}

TEST(Attribution, IntegratedGradientsAreCompleteAt64Steps) {
  for (Architecture arch : kDecoders) {
    for (TensorType type : {TensorType::f32, TensorType::q8_0}) {
      if (type == TensorType::q8_0 && arch != Architecture::llama) continue;
      SCOPED_TRACE(std::string(architecture_name(arch)) + "/" +
                   std::string(tensor_type_name(type)));
      const Model m = make_tiny({arch, type});
      const auto ids = some_tokens(12, 4, static_cast<int32_t>(m.config().n_vocab));
      for (int32_t contrast : {-1, 9}) {
        // The fast attention kernel: this checks the quadrature of the path, not the kernel.
        AttributionOptions o = reference(AttributionMethod::integrated_gradients, 64);
        o.attention_backend = Backend::automatic;
        const Attribution a = attribute(m, ids, 5, contrast, o);
        ASSERT_EQ(a.scores.size(), ids.size());
        const double delta = a.score - a.baseline_score;
        EXPECT_GT(std::fabs(delta), 1e-3);
        EXPECT_NEAR(a.sum(), delta, 0.01 * std::fabs(delta))
            << "contrast " << contrast << ": f(x) " << a.score << ", f(baseline) "
            << a.baseline_score;
      }
    }
  }
}

TEST(Attribution, GradientTimesInputSumsToTheScalingDerivative) {
  for (Architecture arch : kDecoders) {
    SCOPED_TRACE(std::string(architecture_name(arch)));
    const Model m = make_tiny({arch, TensorType::f32});
    const auto ids = some_tokens(9, 6, static_cast<int32_t>(m.config().n_vocab));
    const Attribution a = attribute(m, ids, 3, -1, reference(AttributionMethod::grad_x_input));
    EXPECT_EQ(a.steps, 0);
    // d/ds f(s e) at s = 1, Richardson-stepped central differences (model/backward_test.cpp).
    const auto e = model::token_embeddings(m, ids);
    std::vector<float> batch;
    const double h = 2e-3;
    for (double s : {1 + h, 1 - h, 1 + 2 * h, 1 - 2 * h}) {
      for (float v : e) batch.push_back(static_cast<float>(s * v));
    }
    model::GradientOptions o;
    o.attention_backend = Backend::reference;
    const auto f = model::embedding_scores(m, ids, batch, {3, -1}, o);
    const double fd = (8 * (f[0] - f[1]) - (f[2] - f[3])) / (12 * h);
    double scale = 0;
    for (double s : a.scores) scale += std::fabs(s);
    EXPECT_NEAR(a.sum(), fd, 3e-3 * scale + 2e-4);
  }
}

TEST(Attribution, SectionsHaveTheDocumentedLayout) {
  const Model m = make_tiny({Architecture::gemma2, TensorType::f32});
  const auto ids = some_tokens(10, 8, static_cast<int32_t>(m.config().n_vocab));
  AttributionOptions o = reference(AttributionMethod::integrated_gradients, 8);
  o.attention_gradient = true;
  const Attribution a = attribute(m, ids, 4, 7, o);
  const auto j = nlohmann::json::parse(attribution_json(a));
  EXPECT_EQ(j["method"], "integrated_gradients");
  EXPECT_EQ(j["steps"], 8);
  EXPECT_TRUE(j["baseline"].is_string());
  EXPECT_EQ(j["target"]["id"], 4);
  EXPECT_EQ(j["target"]["position"], 9);
  EXPECT_EQ(j["contrast"]["id"], 7);
  EXPECT_EQ(j["scores"].size(), ids.size());
  EXPECT_TRUE(j["completeness"]["sum"].is_number());
  EXPECT_TRUE(j["completeness"]["delta"].is_number());
  EXPECT_TRUE(j["title"].is_string() && j["note"].is_string());
  const auto g = nlohmann::json::parse(attention_gradient_json(a));
  ASSERT_EQ(g["scores"].size(), static_cast<size_t>(m.config().n_layer));
  EXPECT_EQ(g["scores"][0].size(), static_cast<size_t>(m.config().n_head));
  EXPECT_EQ(g["rows"][1][3].size(), ids.size());
  EXPECT_EQ(g["target"]["id"], 4);

  const Attribution b = attribute(m, ids, 4, -1, reference(AttributionMethod::grad_x_input));
  const auto k = nlohmann::json::parse(attribution_json(b));
  EXPECT_EQ(k["method"], "grad_x_input");
  EXPECT_TRUE(k["contrast"].is_null());
  EXPECT_TRUE(k["completeness"].is_null());
  EXPECT_EQ(attention_gradient_json(b), "");
  const std::string text = render_attribution(b, std::vector<std::string>(ids.size(), "t"));
  EXPECT_NE(text.find("top source tokens"), std::string::npos) << text;
  EXPECT_NE(text.find("forward-pass equivalents"), std::string::npos) << text;
}

TEST(Attribution, RefusesEncodersAndBadArguments) {
  const Model bert = make_tiny({Architecture::bert, TensorType::f32});
  const std::vector<int32_t> ids = {1, 2, 3};
  try {
    attribute(bert, ids, 1);
    ADD_FAILURE() << "no error for an encoder";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("decoders only"), std::string::npos) << e.what();
  }
  const Model m = make_tiny({Architecture::llama, TensorType::f32});
  EXPECT_THROW(attribute(m, {}, 1), InvalidArgument);
  EXPECT_THROW(attribute(m, ids, -1), InvalidArgument);
  EXPECT_THROW(attribute(m, ids, 1, 1000), InvalidArgument);
  AttributionOptions o;
  o.method = AttributionMethod::integrated_gradients;
  o.steps = 0;
  EXPECT_THROW(attribute(m, ids, 1, -1, o), InvalidArgument);
}

}  // namespace
}  // namespace qkv::test
