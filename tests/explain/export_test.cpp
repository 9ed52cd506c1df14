// Exports read back: the .npy header and data, the tokens JSON, the JSON document, and (when
// Debian's python3 has numpy) the .npy loaded by numpy itself.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/raw_io.h"
#include "common/shared_data.h"
#include "explain_test_util.h"
#include "qkv/explain.h"
#include "qkv/model_file.h"

namespace qkv {
namespace {

using test::temp_path;
using test::tokenizer_beside;

Explanation stories_explanation(const std::filesystem::path& bin) {
  const Model model = Model::load(bin.string(), tokenizer_beside(bin));
  ExplainOptions o;
  o.n_threads = 1;  // OpenMP barriers spin on a loaded 2-core machine
  o.capture.layers = {0, 4};
  o.capture.heads = {1, 2, 6};
  o.max_new_tokens = 4;
  return explain(model, "Once upon a time, a cat", o);
}

TEST(Export, NpyHasTheDocumentedShapeAndTheCapturedValues) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Explanation e = stories_explanation(bin);
  const auto path = temp_path("explain_maps.npy");
  write_npy(path.string(), e);
  const std::string b = qkv::test::read_file(path);
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b.substr(0, 6), "\x93NUMPY");
  const size_t hlen = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  const std::string header = b.substr(10, hlen);
  const int64_t t = static_cast<int64_t>(e.ids.size());
  const std::string shape = "(2, 3, " + std::to_string(t) + ", " + std::to_string(t) + ")";
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  EXPECT_NE(header.find(shape), std::string::npos) << header;
  ASSERT_EQ(b.size(), 10 + hlen + static_cast<size_t>(2 * 3 * t * t) * 4);
  const auto* data = reinterpret_cast<const float*>(b.data() + 10 + hlen);
  for (size_t l = 0; l < 2; ++l) {
    for (size_t h = 0; h < 3; ++h) {
      const std::vector<float> m = e.capture.map(l, h, t);
      for (int64_t i = 0; i < t * t; ++i) {
        ASSERT_EQ(data[(l * 3 + h) * static_cast<size_t>(t * t) + static_cast<size_t>(i)],
                  m[static_cast<size_t>(i)]);
      }
    }
  }
  const nlohmann::json tok =
      nlohmann::json::parse(qkv::test::read_file(path.string() + ".tokens.json"));
  EXPECT_EQ(tok["ids"].get<std::vector<int32_t>>(), e.ids);
  EXPECT_EQ(tok["tokens"].get<std::vector<std::string>>(), e.tokens);
  EXPECT_EQ(tok["layers"].get<std::vector<int>>(), (std::vector<int>{0, 4}));
  EXPECT_EQ(tok["heads"].get<std::vector<int>>(), (std::vector<int>{1, 2, 6}));
}

TEST(Export, SafetensorsReadsBackWithTheMapsIdsAndTokens) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Explanation e = stories_explanation(bin);
  const auto path = temp_path("explain_maps.safetensors");
  write_safetensors(path.string(), e);
  const ModelFile f = read_safetensors(path.string());
  const int64_t t = static_cast<int64_t>(e.ids.size());
  const TensorInfo& attn = f.tensor("attn");
  EXPECT_EQ(attn.shape, (std::vector<int64_t>{2, 3, t, t}));
  const std::vector<float> got = tensor_to_f32(attn);
  const std::vector<float> m = e.capture.map(1, 2, t);
  for (int64_t i = 0; i < t * t; ++i) {
    ASSERT_EQ(got[static_cast<size_t>(5 * t * t + i)], m[static_cast<size_t>(i)]);
  }
  const std::vector<float> ids = tensor_to_f32(f.tensor("ids"));
  ASSERT_EQ(ids.size(), e.ids.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(static_cast<int32_t>(ids[i]), e.ids[i]);
  const nlohmann::json tokens = nlohmann::json::parse(f.metadata.at("tokens").as_string());
  EXPECT_EQ(tokens.get<std::vector<std::string>>(), e.tokens);
}

TEST(Export, NumpyLoadsTheNpy) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  if (!test::have_numpy()) GTEST_SKIP() << test::kNoNumpy;
  const Explanation e = stories_explanation(bin);
  const auto path = temp_path("explain_numpy.npy");
  write_npy(path.string(), e);
  test::expect_numpy_loads_causal_maps(path, 2, 3, static_cast<int64_t>(e.ids.size()));
}

TEST(Export, JsonHoldsTokensMapsAndAnalyses) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Explanation e = stories_explanation(bin);
  const nlohmann::json j = nlohmann::json::parse(to_json(e));
  const size_t t = e.ids.size();
  EXPECT_EQ(j["shape"].get<std::vector<size_t>>(), (std::vector<size_t>{2, 3, t, t}));
  ASSERT_EQ(j["maps"].size(), 6u);
  ASSERT_EQ(j["maps"][0].size(), t * t);
  const std::vector<float> m = e.capture.map(1, 2, static_cast<int64_t>(t));
  for (size_t i = 0; i < t * t; ++i) EXPECT_NEAR(j["maps"][5][i].get<double>(), m[i], 1e-6);
  ASSERT_EQ(j["analyses"]["heads"].size(), 6u);
  EXPECT_EQ(j["analyses"]["heads"][3]["layer"], 4);
  EXPECT_EQ(j["analyses"]["heads"][3]["head"], 1);
  EXPECT_EQ(j["analyses"]["rollout"].size(), t * t);
  EXPECT_EQ(j["tokens"].size(), t);
}

}  // namespace
}  // namespace qkv
