// safetensors (single, sharded, written by qkv) and HF config.json, against the transformers
// fixtures in ../shared.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/shared_data.h"
#include "formats/test_util.h"
#include "qkv/model_file.h"

namespace {

using nlohmann::json;

TEST(Safetensors, HfFixtureIdsMatchOutputsJson) {
  // outputs.safetensors (written by transformers/safetensors) stores the token ids that
  // outputs.json lists: reading the int32 tensors must give the same numbers.
  for (const char* name : {"gpt2-tiny", "llama-tiny", "bert-tiny"}) {
    const std::string dir = std::string("fixtures/hf/") + name;
    QKV_REQUIRE_SHARED(st, dir + "/outputs.safetensors");
    QKV_REQUIRE_SHARED(js, dir + "/outputs.json");
    const qkv::ModelFile m = qkv::open_model(st.string());
    std::ifstream in(js);
    const json j = json::parse(in);
    for (size_t i = 0; i < 3; ++i) {
      const qkv::TensorInfo& t = m.tensor(std::string("p") + std::to_string(i) + ".ids");
      EXPECT_EQ(t.type, qkv::TensorType::i32);
      std::vector<int32_t> ids(t.n_elements());
      std::memcpy(ids.data(), t.data, t.n_bytes);
      EXPECT_EQ(ids, j["prompts"][i]["ids"].get<std::vector<int32_t>>()) << name << " p" << i;
    }
  }
}

TEST(Safetensors, HfFolderTensorsMatchConfig) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/llama-tiny");
  const qkv::ModelFile m = qkv::open_model(dir.string());
  EXPECT_EQ(m.format, qkv::FileFormat::hf_folder);
  const qkv::ModelConfig& c = m.config;
  // Values from config.json (hidden 32, 4 heads, 2 KV heads, head_dim 8, rope_parameters).
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.n_embd, 32);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_ff, 86);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_type, "default");
  EXPECT_TRUE(c.tied_embeddings);
  const auto& k = m.tensor("model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(k.shape, (std::vector<int64_t>{c.n_head_kv * c.head_dim, c.n_embd}));
  EXPECT_EQ(m.tensor("model.embed_tokens.weight").shape,
            (std::vector<int64_t>{c.n_vocab, c.n_embd}));
  // Every tensor's bytes lie inside the file and do not overlap (validated on open).
  uint64_t total = 0;
  for (const auto& t : m.tensors) total += t.n_bytes;
  EXPECT_LE(total, std::filesystem::file_size(dir / "model.safetensors"));
}

TEST(HfConfig, Gpt2AndBert) {
  QKV_REQUIRE_SHARED(g, "fixtures/hf/gpt2-tiny/config.json");
  const qkv::ModelConfig gc = qkv::read_hf_config(g.string());
  EXPECT_EQ(gc.n_embd, 32);
  EXPECT_EQ(gc.n_layer, 2);
  EXPECT_EQ(gc.n_head, 4);
  EXPECT_EQ(gc.n_ctx, 256);
  EXPECT_EQ(gc.n_ff, 128);  // n_inner null: 4 * n_embd
  EXPECT_TRUE(gc.tied_embeddings);
  QKV_REQUIRE_SHARED(b, "fixtures/hf/bert-tiny/config.json");
  const qkv::ModelConfig bc = qkv::read_hf_config(b.string());
  EXPECT_FALSE(bc.causal);
  EXPECT_EQ(bc.n_ff, 64);
  EXPECT_EQ(bc.n_head, 2);
  EXPECT_DOUBLE_EQ(bc.norm_eps, 1e-12);
}

TEST(HfConfig, OldStyleRopeThetaAndUntiedHead) {
  const std::string path = qkv::test::temp_path("config.json");
  qkv::test::write_text(path, R"({"model_type": "llama", "hidden_size": 64,
    "num_hidden_layers": 1, "num_attention_heads": 8, "num_key_value_heads": 8,
    "intermediate_size": 100, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
    "max_position_embeddings": 128, "vocab_size": 10, "tie_word_embeddings": false})");
  const qkv::ModelConfig c = qkv::read_hf_config(path);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_FALSE(c.tied_embeddings);
  qkv::test::write_text(path, R"({"model_type": "llama", "rope_parameters": {"rope_type": 7}})");
  qkv::test::expect_error([&] { qkv::read_hf_config(path); },
                          {path, "rope_type", "expected a string"});
  qkv::test::write_text(path, R"({"model_type": "llama", "hidden_size": "64"})");
  qkv::test::expect_error([&] { qkv::read_hf_config(path); },
                          {path, "hidden_size", "expected an integer"});
}

std::vector<qkv::TensorInfo> sample_tensors(std::vector<float>& a, std::vector<uint16_t>& b) {
  a = {1.0f, -2.0f, 3.5f, 0.25f};
  b = {0x3c00, 0x3f80};
  qkv::TensorInfo ta{
      "w.a", qkv::TensorType::f32, {2, 2}, 0, 16, reinterpret_cast<const std::byte*>(a.data()), 0};
  qkv::TensorInfo tb{
      "w.b", qkv::TensorType::bf16, {2}, 0, 4, reinterpret_cast<const std::byte*>(b.data()), 0};
  return {ta, tb};
}

TEST(Safetensors, WriteReadIsBitIdentical) {
  std::vector<float> a;
  std::vector<uint16_t> b;
  const auto tensors = sample_tensors(a, b);
  const std::string path = qkv::test::temp_path("w.safetensors");
  qkv::write_safetensors(path, {{"format", "pt"}}, tensors);
  const qkv::ModelFile m = qkv::open_model(path);
  EXPECT_EQ(m.format, qkv::FileFormat::safetensors);
  EXPECT_EQ(m.metadata.at("format").as_string(), "pt");
  ASSERT_EQ(m.tensors.size(), 2u);
  for (const auto& t : tensors) {
    const qkv::TensorInfo& r = m.tensor(t.name);
    EXPECT_EQ(r.shape, t.shape);
    EXPECT_EQ(r.type, t.type);
    ASSERT_EQ(r.n_bytes, t.n_bytes);
    EXPECT_EQ(std::memcmp(r.data, t.data, t.n_bytes), 0);
  }
  // Written again from what was read: the same file.
  const std::string again = qkv::test::temp_path("w2.safetensors");
  qkv::write_safetensors(again, {{"format", "pt"}}, m.tensors);
  EXPECT_EQ(qkv::test::read_file(again), qkv::test::read_file(path));
}

// A header whose length is not a multiple of 8 (valid; writers pad, but need not) puts the data
// at an odd offset: the F32 tensor is read through an aligned copy with the same values.
TEST(Safetensors, UnpaddedHeaderReadsThroughAlignedCopy) {
  const std::vector<float> w = {1.5f, -0.25f, 3.0f};
  for (int pad = 0; pad < 4; ++pad) {
    const std::string json = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})" +
                             std::string(static_cast<size_t>(pad), ' ');
    std::vector<std::byte> bytes(8);
    const uint64_t n = json.size();
    std::memcpy(bytes.data(), &n, 8);
    for (char c : json) bytes.push_back(static_cast<std::byte>(c));
    const size_t at = bytes.size();
    bytes.resize(at + 12);
    std::memcpy(bytes.data() + at, w.data(), 12);
    const qkv::ModelFile m = qkv::read_safetensors_bytes(bytes, "unpadded.safetensors");
    const qkv::TensorInfo& t = m.tensor("w");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 4, 0u) << "pad " << pad;
    EXPECT_EQ(qkv::tensor_to_f32(t), w) << "pad " << pad;
  }
}

TEST(Safetensors, ShardedIndex) {
  std::vector<float> a;
  std::vector<uint16_t> b;
  const auto tensors = sample_tensors(a, b);
  const auto dir = std::filesystem::path(qkv::test::temp_path("sharded"));
  std::filesystem::create_directories(dir);
  qkv::write_safetensors((dir / "model-00001-of-00002.safetensors").string(), {}, {tensors[0]});
  qkv::write_safetensors((dir / "model-00002-of-00002.safetensors").string(), {}, {tensors[1]});
  const std::string index = (dir / "model.safetensors.index.json").string();
  qkv::test::write_text(index, R"({"metadata": {"total_size": 20}, "weight_map": {
    "w.a": "model-00001-of-00002.safetensors", "w.b": "model-00002-of-00002.safetensors"}})");
  const qkv::ModelFile m = qkv::open_model(index);
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.files.size(), 2u);
  EXPECT_EQ(qkv::tensor_to_f32(m.tensor("w.b")),
            (std::vector<float>{0.0078125f, 1.0f}));  // bf16 0x3c00 = 2^-7
  // The same shards as an HF model folder (config.json + index).
  qkv::test::write_text((dir / "config.json").string(),
                        R"({"model_type": "llama", "hidden_size": 2, "num_hidden_layers": 1,
                            "num_attention_heads": 1, "vocab_size": 2})");
  const qkv::ModelFile folder = qkv::open_model(dir.string());
  EXPECT_EQ(folder.format, qkv::FileFormat::hf_folder);
  EXPECT_EQ(folder.tensors.size(), 2u);
  EXPECT_EQ(folder.config.n_embd, 2);
  // The index names the wrong shard for w.b.
  qkv::test::write_text(index, R"({"weight_map": {
    "w.a": "model-00001-of-00002.safetensors", "w.b": "model-00001-of-00002.safetensors"}})");
  qkv::test::expect_error([&] { qkv::open_model(index); }, {index, "w.b", "expected in"});
  qkv::test::write_text(index, R"({"weight_map": {"w.a": "../../etc/passwd"}})");
  qkv::test::expect_error([&] { qkv::open_model(index); }, {index, "same folder"});
}

}  // namespace
