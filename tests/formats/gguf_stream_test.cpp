// write_gguf_streaming: the same bytes as GgufWriter for the same keys and tensors, read back by
// read_gguf, and no file (nor .part) left behind when a tensor cannot be produced.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "qkv/model_file.h"
#include "test_util.h"

namespace {

using qkv::MetaValue;
using qkv::TensorType;

struct Sample {
  qkv::Metadata meta;
  std::vector<qkv::GgufTensorDecl> decls;
  std::vector<std::vector<std::byte>> data;  // one buffer per tensor, its exact bytes
};

// Tensors of every type, odd sizes (padding after each), and a zero-sized one.
Sample make_sample(uint32_t alignment) {
  Sample s;
  if (alignment != 32) {
    s.meta.set("general.alignment", MetaValue::make_uint(MetaValue::Type::u32, alignment));
  }
  s.meta.set("general.architecture", MetaValue::make_string("llama"));
  s.meta.set("llama.block_count", MetaValue::make_uint(MetaValue::Type::u32, 2));
  s.meta.set("tokenizer.ggml.tokens",
             MetaValue::make_array(MetaValue::Type::string,
                                   {MetaValue::make_string("a"), MetaValue::make_string("b")}));
  auto add = [&](const std::string& name, TensorType type, std::vector<int64_t> shape) {
    qkv::GgufTensorDecl d{name, type, shape};
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    std::vector<std::byte> b(
        static_cast<size_t>(n / qkv::tensor_type_block(type) * qkv::tensor_type_block_bytes(type)));
    for (size_t i = 0; i < b.size(); ++i) b[i] = std::byte(uint8_t(i * 7 + name.size()));
    if (type == TensorType::q8_0) {
      // A finite f16 scale in each 34-byte block, so dequantising stays finite.
      std::vector<float> x(static_cast<size_t>(n));
      for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 13) - 6.0f;
      qkv::quantize_q8_0(x.data(), n, b.data());
    }
    s.decls.push_back(std::move(d));
    s.data.push_back(std::move(b));
  };
  add("token_embd.weight", TensorType::f32, {5, 3});
  add("blk.0.attn_q.weight", TensorType::f16, {3, 3});
  add("blk.0.attn_k.weight", TensorType::bf16, {1, 7});
  add("blk.0.ffn_up.weight", TensorType::q8_0, {2, 64});
  add("empty", TensorType::f32, {0});
  add("ids", TensorType::i32, {3});
  return s;
}

std::vector<std::byte> via_writer(const Sample& s) {
  qkv::GgufWriter w;
  for (const auto& [k, v] : s.meta.entries()) w.set(k, v);
  for (size_t i = 0; i < s.decls.size(); ++i) {
    w.add_tensor(s.decls[i].name, s.decls[i].type, s.decls[i].shape, s.data[i]);
  }
  return w.to_bytes();
}

void stream(const Sample& s, const std::string& path) {
  size_t next = 0;
  qkv::write_gguf_streaming(path, s.meta, s.decls, [&](size_t i, std::span<std::byte> out) {
    EXPECT_EQ(i, next++) << "tensors are filled in order";
    ASSERT_EQ(out.size(), s.data[i].size());
    if (!out.empty()) std::memcpy(out.data(), s.data[i].data(), out.size());  // (null if empty)
  });
  EXPECT_EQ(next, s.decls.size());
}

TEST(GgufStream, SameBytesAsGgufWriter) {
  for (uint32_t alignment : {32u, 64u, 8u}) {
    SCOPED_TRACE(alignment);
    const Sample s = make_sample(alignment);
    const std::string path = qkv::test::temp_path("stream_" + std::to_string(alignment) + ".gguf");
    stream(s, path);
    EXPECT_EQ(qkv::test::read_file(path), via_writer(s));
    EXPECT_FALSE(std::filesystem::exists(path + ".part"));

    const qkv::ModelFile m = qkv::read_gguf(path);
    EXPECT_EQ(m.alignment, alignment);
    ASSERT_EQ(m.tensors.size(), s.decls.size());
    for (size_t i = 0; i < s.decls.size(); ++i) {
      EXPECT_EQ(m.tensors[i].name, s.decls[i].name);
      EXPECT_EQ(m.tensors[i].type, s.decls[i].type);
      EXPECT_EQ(m.tensors[i].shape, s.decls[i].shape);
      ASSERT_EQ(m.tensors[i].n_bytes, s.data[i].size());
      EXPECT_TRUE(s.data[i].empty() ||
                  std::memcmp(m.tensors[i].data, s.data[i].data(), s.data[i].size()) == 0);
    }
    EXPECT_EQ(m.config.n_layer, 2);
  }
}

TEST(GgufStream, NoTensorsIsMetadataOnly) {
  Sample s = make_sample(32);
  s.decls.clear();
  s.data.clear();
  const std::string path = qkv::test::temp_path("stream_meta_only.gguf");
  stream(s, path);
  EXPECT_EQ(qkv::test::read_file(path), via_writer(s));
}

TEST(GgufStream, FailingFillLeavesNoFile) {
  const Sample s = make_sample(32);
  const std::string path = qkv::test::temp_path("stream_fail.gguf");
  std::filesystem::remove(path);
  EXPECT_THROW(qkv::write_gguf_streaming(path, s.meta, s.decls,
                                         [](size_t i, std::span<std::byte>) {
                                           if (i == 2) throw std::runtime_error("no more data");
                                         }),
               std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".part"));
}

TEST(GgufStream, RejectsBadDeclarations) {
  Sample s = make_sample(32);
  const std::string path = qkv::test::temp_path("stream_bad.gguf");
  auto no_fill = [](size_t, std::span<std::byte>) { ADD_FAILURE() << "nothing may be written"; };
  s.decls.push_back(s.decls[0]);
  qkv::test::expect_error([&] { qkv::write_gguf_streaming(path, s.meta, s.decls, no_fill); },
                          {path, "token_embd.weight", "twice"});
  s = make_sample(32);
  s.decls.push_back({"odd_q8", TensorType::q8_0, {3, 20}});
  qkv::test::expect_error([&] { qkv::write_gguf_streaming(path, s.meta, s.decls, no_fill); },
                          {"odd_q8"});
  s = make_sample(32);
  s.meta.set("general.alignment", MetaValue::make_uint(MetaValue::Type::u32, 48));
  qkv::test::expect_error([&] { qkv::write_gguf_streaming(path, s.meta, s.decls, no_fill); },
                          {"general.alignment", "48"});
  EXPECT_FALSE(std::filesystem::exists(path + ".part"));
}

}  // namespace
