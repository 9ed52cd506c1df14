// GGUF: writer -> reader round trips (bit-identical), every metadata type, Q8_0, and the
// llama.cpp-made vocab files in ../shared read and re-written byte for byte.
#include <gtest/gtest.h>

#include <cmath>

#include "common/shared_data.h"
#include "formats/test_util.h"
#include "qkv/model_file.h"

namespace {

using qkv::MetaValue;
using T = qkv::MetaValue::Type;
const size_t kQ8Bytes = static_cast<size_t>(qkv::tensor_type_block_bytes(qkv::TensorType::q8_0));

qkv::GgufWriter sample_writer(uint64_t alignment) {
  qkv::GgufWriter w(3, alignment);
  w.set("general.architecture", MetaValue::make_string("llama"));
  w.set("u8", MetaValue::make_uint(T::u8, 200));
  w.set("i8", MetaValue::make_int(T::i8, -100));
  w.set("u16", MetaValue::make_uint(T::u16, 60000));
  w.set("i16", MetaValue::make_int(T::i16, -30000));
  w.set("u32", MetaValue::make_uint(T::u32, 4000000000u));
  w.set("i32", MetaValue::make_int(T::i32, -2000000000));
  w.set("f32", MetaValue::make_float(T::f32, 0.1f));
  w.set("bool", MetaValue::make_bool(true));
  w.set("u64", MetaValue::make_uint(T::u64, 1ull << 60));
  w.set("i64", MetaValue::make_int(T::i64, -(1ll << 60)));
  w.set("f64", MetaValue::make_float(T::f64, 1e-300));
  w.set("strings", MetaValue::make_array(T::string, {MetaValue::make_string("a"),
                                                     MetaValue::make_string("\xe2\x96\x81")}));
  w.set("nested", MetaValue::make_array(
                      T::array, {MetaValue::make_array(T::i32, {MetaValue::make_int(T::i32, 1)}),
                                 MetaValue::make_array(T::i32, {})}));
  w.set("llama.block_count", MetaValue::make_uint(T::u32, 2));
  w.set("llama.attention.head_count", MetaValue::make_uint(T::u32, 4));
  w.set("llama.embedding_length", MetaValue::make_uint(T::u32, 64));
  std::vector<float> a(2 * 3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) - 2.5f;
  w.add_tensor("a.f32", qkv::TensorType::f32, {2, 3}, qkv::test::as_bytes(a));
  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x7c00};  // 1, -2, inf
  w.add_tensor("b.f16", qkv::TensorType::f16, {3}, qkv::test::as_bytes(h));
  std::vector<uint16_t> bf = {0x3f80, 0x4049};  // 1, 3.140625
  w.add_tensor("c.bf16", qkv::TensorType::bf16, {1, 2}, qkv::test::as_bytes(bf));
  // One Q8_0 block made by hand: d = 0.5 (f16 0x3800), q[i] = i - 16.
  std::vector<std::byte> q(kQ8Bytes);
  q[0] = std::byte{0x00};
  q[1] = std::byte{0x38};
  for (int i = 0; i < 32; ++i) q[2 + i] = static_cast<std::byte>(static_cast<int8_t>(i - 16));
  w.add_tensor("d.q8_0", qkv::TensorType::q8_0, {1, 32}, q);
  return w;
}

TEST(Gguf, WriteReadWriteIsBitIdentical) {
  for (uint64_t alignment : {32u, 64u, 8u}) {
    const auto bytes = sample_writer(alignment).to_bytes();
    const std::string path = qkv::test::temp_path("sample.gguf");
    qkv::test::write_file(path, bytes);
    const qkv::ModelFile m = qkv::read_gguf(path);
    EXPECT_EQ(m.version, 3u);
    EXPECT_EQ(m.alignment, alignment);
    EXPECT_EQ(qkv::gguf_writer_from(m).to_bytes(), bytes) << "alignment " << alignment;
    for (const qkv::TensorInfo& t : m.tensors) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % alignment, 0u) << t.name;
    }
  }
}

// general.alignment 1 or 2 is valid GGUF and puts tensor data at odd addresses; the kernels read
// f32 values and fp16 block scales in place, so such tensors are copied to aligned memory (a
// fuzzer found the misaligned Q8_0 scale read). The values and the rewritten bytes stay the same.
TEST(Gguf, SmallAlignmentReadsThroughAlignedCopies) {
  for (uint64_t alignment : {1u, 2u}) {
    for (const char* pad : {"", "x", "xy", "xyz"}) {  // shifts the data start by 0..3 bytes
      qkv::GgufWriter w = sample_writer(alignment);
      w.set(std::string("pad") + pad, MetaValue::make_bool(false));
      const auto bytes = w.to_bytes();
      const qkv::ModelFile m = qkv::read_gguf_bytes(bytes, "small-alignment.gguf");
      ASSERT_EQ(m.alignment, alignment);
      for (const qkv::TensorInfo& t : m.tensors) {
        EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 4, 0u) << t.name << " pad '" << pad << "'";
      }
      const std::vector<float> a = qkv::tensor_to_f32(*m.find_tensor("a.f32"));
      for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], static_cast<float>(i) - 2.5f);
      const std::vector<float> d = qkv::tensor_to_f32(*m.find_tensor("d.q8_0"));
      for (int i = 0; i < 32; ++i) EXPECT_EQ(d[i], 0.5f * static_cast<float>(i - 16)) << i;
      EXPECT_EQ(qkv::gguf_writer_from(m).to_bytes(), bytes) << "alignment " << alignment;
    }
  }
}

TEST(Gguf, Version2ReadsAndRewrites) {
  // v2 has the same layout as v3 (64-bit counts); the version is kept on a round trip.
  qkv::GgufWriter w(2);
  w.set("general.name", MetaValue::make_string("v2"));
  std::vector<float> x = {1.0f, 2.0f};
  w.add_tensor("x", qkv::TensorType::f32, {2}, qkv::test::as_bytes(x));
  const auto bytes = w.to_bytes();
  const std::string path = qkv::test::temp_path("v2.gguf");
  qkv::test::write_file(path, bytes);
  const qkv::ModelFile m = qkv::read_gguf(path);
  EXPECT_EQ(m.version, 2u);
  EXPECT_EQ(qkv::tensor_to_f32(m.tensor("x")), x);
  EXPECT_EQ(qkv::gguf_writer_from(m).to_bytes(), bytes);
}

TEST(Gguf, EveryMetadataTypeReadsBack) {
  const std::string path = qkv::test::temp_path("types.gguf");
  qkv::test::write_file(path, sample_writer(32).to_bytes());
  const qkv::ModelFile m = qkv::read_gguf(path);
  const qkv::Metadata& md = m.metadata;
  EXPECT_EQ(md.at("u8").as_int(), 200);
  EXPECT_EQ(md.at("i8").as_int(), -100);
  EXPECT_EQ(md.at("u16").as_int(), 60000);
  EXPECT_EQ(md.at("i16").as_int(), -30000);
  EXPECT_EQ(md.at("u32").as_int(), 4000000000ll);
  EXPECT_EQ(md.at("i32").as_int(), -2000000000);
  EXPECT_EQ(md.at("f32").as_float(), static_cast<double>(0.1f));
  EXPECT_TRUE(md.at("bool").as_bool());
  EXPECT_EQ(md.at("u64").as_int(), 1ll << 60);
  EXPECT_EQ(md.at("i64").as_int(), -(1ll << 60));
  EXPECT_EQ(md.at("f64").as_float(), 1e-300);
  EXPECT_EQ(md.at("strings").as_array()[1].as_string(), "\xe2\x96\x81");
  const auto& nested = md.at("nested").as_array();
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested[0].as_array()[0].as_int(), 1);
  EXPECT_TRUE(nested[1].as_array().empty());
  EXPECT_THROW(md.at("u8").as_string("u8"), qkv::Error);
  EXPECT_THROW(md.at("missing"), qkv::Error);
  EXPECT_EQ(m.config.architecture, "llama");
  EXPECT_EQ(m.config.n_layer, 2);
  EXPECT_EQ(m.config.head_dim, 16);
}

TEST(Gguf, TensorsDecodeToF32) {
  const std::string path = qkv::test::temp_path("tensors.gguf");
  qkv::test::write_file(path, sample_writer(32).to_bytes());
  const qkv::ModelFile m = qkv::read_gguf(path);
  ASSERT_EQ(m.tensors.size(), 4u);
  const auto& a = m.tensor("a.f32");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(qkv::tensor_to_f32(a), (std::vector<float>{-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f}));
  const auto h = qkv::tensor_to_f32(m.tensor("b.f16"));
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_TRUE(std::isinf(h[2]));
  EXPECT_EQ(qkv::tensor_to_f32(m.tensor("c.bf16")), (std::vector<float>{1.0f, 3.140625f}));
  const auto q = qkv::tensor_to_f32(m.tensor("d.q8_0"));
  ASSERT_EQ(q.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q[i], 0.5f * static_cast<float>(i - 16)) << i;
  EXPECT_EQ(m.tensor("d.q8_0").n_bytes, 34u);
}

TEST(Gguf, ZeroSizedTensor) {
  // Found by fuzz_gguf: a tensor with a zero dimension has no bytes and decodes to nothing.
  qkv::GgufWriter w;
  w.add_tensor("empty", qkv::TensorType::f32, {0, 4}, {});
  const std::string path = qkv::test::temp_path("empty.gguf");
  qkv::test::write_file(path, w.to_bytes());
  const qkv::ModelFile m = qkv::read_gguf(path);
  EXPECT_EQ(m.tensor("empty").n_bytes, 0u);
  EXPECT_TRUE(qkv::tensor_to_f32(m.tensor("empty")).empty());
}

TEST(Gguf, Q8_0QuantiseDequantiseWithinHalfAStep) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
  std::vector<std::byte> blocks(2 * kQ8Bytes);
  qkv::quantize_q8_0(x.data(), 64, blocks.data());
  std::vector<float> y(64);
  qkv::dequantize_q8_0(blocks.data(), 64, y.data());
  // Error bound: half a quantisation step (amax / 127 / 2) plus the f16 rounding of the scale
  // (relative 2^-11 of each value).
  for (int b = 0; b < 2; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    for (int i = 0; i < 32; ++i) {
      const float tol = amax / 127.0f * 0.5f + std::fabs(x[b * 32 + i]) * 1e-3f;
      EXPECT_NEAR(y[b * 32 + i], x[b * 32 + i], tol);
    }
  }
}

TEST(Gguf, WriterRejectsBadTensors) {
  qkv::GgufWriter w;
  std::vector<float> a(3);
  EXPECT_THROW(w.add_tensor("x", qkv::TensorType::f32, {2, 2}, qkv::test::as_bytes(a)),
               qkv::InvalidArgument);
  std::vector<std::byte> q(kQ8Bytes);
  EXPECT_THROW(w.add_tensor("q", qkv::TensorType::q8_0, {1, 31}, q), qkv::Error);
  EXPECT_THROW(qkv::GgufWriter(3, 24), qkv::InvalidArgument);
}

class VocabGgufFile : public testing::TestWithParam<const char*> {};

TEST_P(VocabGgufFile, ReadsAndRewritesByteForByte) {
  QKV_REQUIRE_SHARED(p, std::string("vocab-gguf/") + GetParam());
  const qkv::ModelFile m = qkv::open_model(p.string());
  EXPECT_EQ(m.format, qkv::FileFormat::gguf);
  EXPECT_EQ(m.version, 3u);
  EXPECT_TRUE(m.tensors.empty());
  // Written by llama.cpp's gguf-py: our writer must produce the identical file.
  EXPECT_EQ(qkv::gguf_writer_from(m).to_bytes(), qkv::test::read_file(p.string()));
}

INSTANTIATE_TEST_SUITE_P(Shared, VocabGgufFile,
                         testing::Values("ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf",
                                         "ggml-vocab-bert-bge.gguf"));

TEST(Gguf, VocabHyperParameters) {
  // Values as written in the files (read independently with a Python struct dump).
  QKV_REQUIRE_SHARED(p, "vocab-gguf/ggml-vocab-llama-spm.gguf");
  const qkv::ModelConfig c = qkv::read_gguf(p.string()).config;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.n_layer, 32);
  EXPECT_EQ(c.n_ctx, 4096);
  EXPECT_EQ(c.n_embd, 4096);
  EXPECT_EQ(c.n_ff, 11008);
  EXPECT_EQ(c.n_head, 32);
  EXPECT_EQ(c.n_head_kv, 32);
  EXPECT_EQ(c.n_vocab, 32000);
  EXPECT_FLOAT_EQ(static_cast<float>(c.norm_eps), 1e-5f);
  QKV_REQUIRE_SHARED(b, "vocab-gguf/ggml-vocab-bert-bge.gguf");
  const qkv::ModelConfig bc = qkv::read_gguf(b.string()).config;
  EXPECT_FALSE(bc.causal);
  EXPECT_EQ(bc.n_embd, 384);
  EXPECT_EQ(bc.n_vocab, 30522);
}

}  // namespace
