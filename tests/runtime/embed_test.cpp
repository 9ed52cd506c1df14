// Encoders and sentence embeddings on the tiny BERT of ../shared/fixtures/hf/bert-tiny against
// transformers' outputs (outputs.safetensors).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/shared_data.h"
#include "qkv/model_file.h"
#include "qkv/session.h"

namespace qkv {
namespace {

constexpr const char* kBert = "fixtures/hf/bert-tiny";

std::vector<float> normalized(std::vector<float> x) {
  double sq = 0;
  for (float v : x) sq += double(v) * v;
  for (float& v : x) v = static_cast<float>(v / std::sqrt(sq));
  return x;
}

double norm(const std::vector<float>& x) {
  double sq = 0;
  for (float v : x) sq += double(v) * v;
  return std::sqrt(sq);
}

// fp32 forward pass of a 2-layer model against PyTorch's fp32: differences of a few ulps per
// op, amplified by the LayerNorms; 1e-4 absolute on values of order 1.
constexpr float kTol = 1e-4f;

void expect_near(std::span<const float> got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], kTol) << what << "[" << i << "]";
}

TEST(Embed, BertTinyMatchesTransformers) {
  QKV_REQUIRE_SHARED(dir, kBert);
  const Model model = Model::load(dir.string());
  ASSERT_FALSE(model.is_decoder());
  const ModelFile ref = read_safetensors((dir / "outputs.safetensors").string());
  std::ifstream f(dir / "outputs.json");
  const nlohmann::json prompts = nlohmann::json::parse(f)["prompts"];
  const int64_t n_embd = model.config().n_embd;
  const std::string last = "hidden.l" + std::to_string(model.config().n_layer);
  Session session(model);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string p = "p" + std::to_string(i) + ".";
    const std::string text = prompts[i]["prompt"];
    SCOPED_TRACE(text);
    const auto ids = model.tokenizer().encode(text);
    ASSERT_EQ(ids, prompts[i]["ids"].get<std::vector<int32_t>>());

    const std::vector<float> hidden_ref = tensor_to_f32(ref.tensor(p + last));
    expect_near(session.encode(ids), hidden_ref, "hidden");
    const std::vector<float> pooler_ref = tensor_to_f32(ref.tensor(p + "pooler"));
    expect_near(session.pooled(), pooler_ref, "pooled");

    // CLS: the [CLS] row; mean: the mean of all rows; pooler: the pooler; each L2-normalised.
    std::vector<float> cls(hidden_ref.begin(), hidden_ref.begin() + n_embd);
    std::vector<float> mean(static_cast<size_t>(n_embd), 0.f);
    const size_t n = ids.size();
    for (size_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < n_embd; ++j) mean[j] += hidden_ref[t * n_embd + j] / float(n);
    }
    const auto e_cls = embed(model, text);
    const auto e_mean = embed(model, text, {.pooling = Pooling::mean});
    const auto e_pool = embed(model, text, {.pooling = Pooling::pooler});
    expect_near(e_cls, normalized(cls), "cls");
    expect_near(e_mean, normalized(mean), "mean");
    expect_near(e_pool, normalized(pooler_ref), "pooler");
    for (const auto* e : {&e_cls, &e_mean, &e_pool}) EXPECT_NEAR(norm(*e), 1.0, 1e-6);
    const auto raw = embed(model, text, {.pooling = Pooling::pooler, .normalize = false});
    expect_near(raw, pooler_ref, "pooler, not normalised");
  }
}

TEST(Embed, DecodersAndLongInputsAreRefused) {
  QKV_REQUIRE_SHARED(dir, kBert);
  QKV_REQUIRE_SHARED(gpt2, "fixtures/hf/gpt2-tiny");
  EXPECT_THROW(embed(Model::load(gpt2.string()), "hello"), InvalidArgument);
  const Model model = Model::load(dir.string());
  Session session(model);
  EXPECT_THROW(session.pooled(), Error);  // nothing encoded yet
  EXPECT_THROW(session.generate("hello"), InvalidArgument);
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += "word ";
  try {
    embed(model, long_text);
    FAIL() << "no error for 202 tokens in a 128-position model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("128"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qkv
