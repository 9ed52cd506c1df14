// qkv's GGUF conversion: the HF fixtures and stories260K written as GGUF give the outputs of
// their originals (f32: 1e-5 of the scale, the same math on the same numbers up to summation
// order; f16 weights: 2e-2, q8_0 weights: 5e-2 — the rounding of the weights of these random
// N(0, 0.2) models, through two layers), and the tokenizer encodes the same.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/shared_data.h"
#include "common/test_scale.h"
#include "model/forward.h"
#include "model_test_util.h"
#include "qkv/convert.h"
#include "qkv/model.h"

namespace qkv {
namespace {

std::vector<float> run(const Model& model, const std::vector<int32_t>& ids) {
  std::vector<float> out, pooled;
  if (model.is_decoder()) {
    model::KvCache cache(model, static_cast<int64_t>(ids.size()), KvType::f32);
    model::decoder_forward(model, cache, ids, true, out, {.n_threads = 1});
  } else {
    model::encoder_forward(model, ids, {}, out, &pooled, {.n_threads = 1});
    out.insert(out.end(), pooled.begin(), pooled.end());
  }
  return out;
}

void check_conversion(const std::string& source, const std::string& tokenizer_path,
                      const std::string& text) {
  LoadOptions load;
  load.tokenizer_path = tokenizer_path;
  const Model original = Model::load(source, load);
  const std::vector<int32_t> ids = original.tokenizer().encode(text);
  const std::vector<float> want = run(original, ids);
  struct Case {
    std::optional<TensorType> dtype;
    double tol;
  };
  const std::vector<Case> all = {Case{std::nullopt, 1e-5}, Case{TensorType::f16, 2e-2},
                                 Case{TensorType::q8_0, 5e-2}};
  // Under the sanitizers (where loading a 50k-token tokenizer takes seconds) the stored-type
  // conversion only; the others differ in the encoding of the values, not in the file walk.
  for (size_t i = 0; i < static_cast<size_t>(test::cases(3)); ++i) {
    const Case& c = all[i];
    const std::string dtype = c.dtype ? std::string(tensor_type_name(*c.dtype)) : "same";
    SCOPED_TRACE(source + " as " + dtype);
    const std::string out = ::testing::TempDir() + "/qkv_convert_" +
                            std::filesystem::path(source).filename().string() + "_" + dtype +
                            ".gguf";
    ConvertOptions options;
    options.dtype = c.dtype;
    convert_to_gguf(original, out, options);
    const Model converted = Model::load(out);
    EXPECT_EQ(converted.architecture(), original.architecture());
    if (original.architecture() == Architecture::llama) {
      EXPECT_EQ(converted.rope_style(), RopeStyle::interleaved);
    }
    EXPECT_EQ(converted.tokenizer().encode(text), ids);
    EXPECT_EQ(converted.config().n_head_kv, original.config().n_head_kv);
    const std::vector<float> got = run(converted, ids);
    EXPECT_LE(test::rel_error(got, want), c.tol);
    std::filesystem::remove(out);
  }
}

class Convert : public ::testing::TestWithParam<std::string> {};

TEST_P(Convert, HfFixtureAsGgufGivesTheSameOutputs) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/" + GetParam());
  check_conversion(dir.string(), "",
                   "The animal didn't cross the street because it was too tired.");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Convert,
                         ::testing::Values("gpt2-tiny", "llama-tiny", "bert-tiny"));

TEST(Convert, Llama2cCheckpointAsGgufGivesTheSameOutputs) {
  QKV_REQUIRE_SHARED(dir, "models/stories260K");
  check_conversion((dir / "stories260K.bin").string(), (dir / "tok512.bin").string(),
                   "Once upon a time, there was a little robot");
}

}  // namespace
}  // namespace qkv
