// Dequantization of every GGUF block format against llama.cpp's own: the fixtures in
// ../shared/fixtures/gguf-quant and gguf-families hold, for files written by llama.cpp's
// quantizer, the SHA-256 of every tensor as ggml dequantizes it (float32 LE, ggml's element order)
// and the values of two tensors. A bit-exact dequantizer reproduces every hash; the sample values
// say where one that does not goes wrong.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "common/shared_data.h"
#include "qkv/model_file.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(qkv::test::sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(qkv::test::sha256_hex("", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(qkv::test::sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

// Every model-*.dequant.json under the two fixture folders.
std::vector<fs::path> dequant_fixtures() {
  std::vector<fs::path> out;
  for (const char* dir : {"fixtures/gguf-quant", "fixtures/gguf-families"}) {
    const fs::path root = qkv::test::shared_file(dir);
    if (root.empty()) continue;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(".dequant.json")) out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path sibling(const fs::path& json_path, const std::string& new_suffix) {
  std::string name = json_path.filename().string();
  name = name.substr(0, name.size() - std::string(".dequant.json").size()) + new_suffix;
  return json_path.parent_path() / name;
}

TEST(QuantDequant, EveryTensorHashMatchesLlamaCpp) {
  QKV_REQUIRE_SHARED(root, "fixtures/gguf-quant/model-Q4_0.dequant.json");
  const std::vector<fs::path> fixtures = dequant_fixtures();
  ASSERT_GE(fixtures.size(), 14u);
  std::map<std::string, int> checked_per_type;
  for (const fs::path& jp : fixtures) {
    std::ifstream in(jp);
    const json want = json::parse(in);
    const qkv::ModelFile m = qkv::open_model(sibling(jp, ".gguf").string());
    ASSERT_EQ(want.size(), m.tensors.size()) << jp;
    for (const auto& [name, entry] : want.items()) {
      const qkv::TensorInfo& t = m.tensor(name);
      EXPECT_EQ(t.shape, entry["shape"].get<std::vector<int64_t>>()) << jp << " " << name;
      const std::vector<float> v = qkv::tensor_to_f32(t);
      EXPECT_EQ(qkv::test::sha256_hex(v.data(), v.size() * sizeof(float)),
                entry["sha256"].get<std::string>())
          << jp.filename() << " " << name << " (" << qkv::tensor_type_name(t.type) << ")";
      ++checked_per_type[std::string(qkv::tensor_type_name(t.type))];
    }
  }
  // Every block format of the issue was among them.
  for (const char* type : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
                           "Q6_K", "IQ4_NL", "IQ4_XS"}) {
    EXPECT_GT(checked_per_type[type], 0) << type;
  }
}

TEST(QuantDequant, SampleValuesMatchLlamaCpp) {
  QKV_REQUIRE_SHARED(root, "fixtures/gguf-quant/model-Q4_0.dequant.json");
  for (const fs::path& jp : dequant_fixtures()) {
    const fs::path sample = sibling(jp, ".dequant-sample.safetensors");
    if (!fs::exists(sample)) continue;
    const qkv::ModelFile ref = qkv::open_model(sample.string());
    const qkv::ModelFile m = qkv::open_model(sibling(jp, ".gguf").string());
    for (const qkv::TensorInfo& r : ref.tensors) {
      ASSERT_EQ(r.type, qkv::TensorType::f32) << sample << " " << r.name;
      const qkv::TensorInfo& t = m.tensor(r.name);
      const std::vector<float> v = qkv::tensor_to_f32(t);
      ASSERT_EQ(static_cast<uint64_t>(v.size()) * 4, r.n_bytes) << sample << " " << r.name;
      std::vector<float> w(v.size());
      std::memcpy(w.data(), r.data, r.n_bytes);
      size_t first_bad = v.size();
      for (size_t i = 0; i < v.size() && first_bad == v.size(); ++i) {
        if (std::memcmp(&v[i], &w[i], 4) != 0) first_bad = i;
      }
      EXPECT_EQ(first_bad, v.size())
          << sample.filename() << " " << r.name << " (" << qkv::tensor_type_name(t.type)
          << "): element " << first_bad << " is " << (first_bad < v.size() ? v[first_bad] : 0.f)
          << ", llama.cpp has " << (first_bad < v.size() ? w[first_bad] : 0.f);
    }
  }
}

}  // namespace
