// Loading: architectures found from the file, RoPE style from the file's origin, and clear
// errors for files that cannot run.
#include <gtest/gtest.h>

#include "common/shared_data.h"
#include "qkv/error.h"
#include "qkv/model.h"

namespace qkv {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelLoad, FixturesDescribeThemselves) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf");
  const Model gpt2 = Model::load((dir / "gpt2-tiny").string());
  EXPECT_EQ(gpt2.architecture(), Architecture::gpt2);
  EXPECT_EQ(gpt2.rope_style(), RopeStyle::none);
  EXPECT_TRUE(gpt2.is_decoder());
  EXPECT_TRUE(gpt2.config().tied_embeddings);
  const Model llama = Model::load((dir / "llama-tiny").string());
  EXPECT_EQ(llama.rope_style(), RopeStyle::half);
  EXPECT_EQ(llama.config().n_head_kv, 2);
  const Model bert = Model::load((dir / "bert-tiny").string());
  EXPECT_FALSE(bert.is_decoder());
  EXPECT_NE(bert.describe().find("bert"), std::string::npos);
}

TEST(ModelLoad, BareSafetensorsAndVocabOnlyFilesAreRefusedByName) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/gpt2-tiny/model.safetensors");
  EXPECT_NE(error_of([&] { Model::load(dir.string()); }).find("no architecture"),
            std::string::npos);
  QKV_REQUIRE_SHARED(vocab, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  const std::string e = error_of([&] { Model::load(vocab.string()); });
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  EXPECT_NE(e.find("token_embd.weight"), std::string::npos) << e;
}

TEST(ModelLoad, UnknownArchitectureIsNamed) {
  GgufWriter w;
  w.set("general.architecture", MetaValue::make_string("mamba"));
  const std::string path = ::testing::TempDir() + "/qkv_unknown_arch.gguf";
  w.write(path);
  const std::string e = error_of([&] { Model::load(path); });
  EXPECT_NE(e.find("'mamba' is not supported"), std::string::npos) << e;
}

}  // namespace
}  // namespace qkv
