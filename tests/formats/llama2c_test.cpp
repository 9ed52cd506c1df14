// llama2.c checkpoints: the real stories260K / aidreams260K files and hand-made v0 (untied) and
// v1 ("ak42") files.
#include <gtest/gtest.h>

#include "common/shared_data.h"
#include "formats/test_util.h"
#include "qkv/model_file.h"

namespace {

TEST(Llama2c, Stories260KHeader) {
  QKV_REQUIRE_SHARED(p, "models/stories260K/stories260K.bin");
  const qkv::ModelFile m = qkv::open_model(p.string());
  // reference.json: "dim=64 hidden_dim=172 n_layers=5 n_heads=8 n_kv_heads=4 vocab_size=512
  // seq_len=512" (printed by run.c).
  const qkv::ModelConfig& c = m.config;
  EXPECT_EQ(m.format, qkv::FileFormat::llama2c);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_ff, 172);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.n_ctx, 512);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(m.tensor("layers.4.attention.wk.weight").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(m.find_tensor("output.weight"), nullptr);
}

TEST(Llama2c, AiDreams260K) {
  QKV_REQUIRE_SHARED(p, "models/aidreams260K/aidreams260K.bin");
  const qkv::ModelFile m = qkv::open_model(p.string());
  EXPECT_EQ(m.config.n_layer, 4);
  EXPECT_EQ(m.config.n_head, 4);
  EXPECT_EQ(m.config.n_head_kv, 4);
  EXPECT_EQ(m.config.n_ctx, 128);
}

// A tiny checkpoint: dim 4, hidden 8, 1 layer, 2 heads, 1 kv head, vocab 3, seq 2; each float
// is its own index, so tensor positions can be checked.
std::vector<std::byte> tiny(bool v1, bool shared) {
  const int32_t h[7] = {4, 8, 1, 2, 1, shared || v1 ? 3 : -3, 2};
  std::vector<std::byte> out;
  auto put = [&](const void* p, size_t n) {
    out.insert(out.end(), static_cast<const std::byte*>(p), static_cast<const std::byte*>(p) + n);
  };
  if (v1) {
    const uint32_t magic = 0x616b3432;
    const int32_t version = 1;
    put(&magic, 4);
    put(&version, 4);
    put(h, 28);
    const uint8_t s = shared ? 1 : 0;
    put(&s, 1);
    out.resize(256, std::byte{0});
  } else {
    put(h, 28);
  }
  // Floats: v0 = emb 12, rms 4, wq 16, wk 8, wv 8, wo 16, rms 4, w1 32, w2 32, w3 32, norm 4,
  // freq 2 x (2 x 1); v1 has no freq tables. Plus wcls 12 when untied.
  const int n = (v1 ? 12 + 4 + 4 + 4 + 16 + 8 + 8 + 16 + 96 : 12 + 4 + 48 + 4 + 96 + 4 + 4) +
                (shared ? 0 : 12);
  for (int i = 0; i < n; ++i) {
    const float f = static_cast<float>(i);
    put(&f, 4);
  }
  return out;
}

TEST(Llama2c, V0UntiedClassifier) {
  const std::string path = qkv::test::temp_path("v0.bin");
  qkv::test::write_file(path, tiny(false, false));
  const qkv::ModelFile m = qkv::open_model(path);
  EXPECT_FALSE(m.config.tied_embeddings);
  EXPECT_EQ(m.config.n_vocab, 3);
  const auto wcls = qkv::tensor_to_f32(m.tensor("output.weight"));
  EXPECT_EQ(wcls.front(), 172.0f);  // after the 172 floats of the tied layout
  EXPECT_EQ(qkv::tensor_to_f32(m.tensor("layers.0.attention.wk.weight")).front(), 32.0f);
}

TEST(Llama2c, V1Header) {
  const std::string path = qkv::test::temp_path("v1.bin");
  qkv::test::write_file(path, tiny(true, true));
  const qkv::ModelFile m = qkv::open_model(path);
  EXPECT_EQ(m.version, 1u);
  EXPECT_TRUE(m.config.tied_embeddings);
  // v1 order: attention norms, ffn norms, final norm, then the embedding.
  EXPECT_EQ(qkv::tensor_to_f32(m.tensor("norm.weight")).front(), 8.0f);
  EXPECT_EQ(qkv::tensor_to_f32(m.tensor("tok_embeddings.weight")).front(), 12.0f);
  qkv::test::write_file(path, tiny(true, false));
  EXPECT_FALSE(qkv::open_model(path).config.tied_embeddings);
}

}  // namespace
