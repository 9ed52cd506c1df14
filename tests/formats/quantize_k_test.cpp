// The K and IQ4 quantizers (src/kernels/quant/quantize_k.cpp, quantize_iq4.cpp) and the presets'
// per-tensor types (src/formats/quantize_gguf.cpp), against llama.cpp's quantizer:
// - on random data, properties: the dequantized blocks are close to the input (bounds per type
//   from its bits), all-zero and constant blocks come back exact or nearly, nothing is written
//   past the blocks;
// - on ../shared/fixtures/gguf-quant (written by llama-quantize from model-f32.gguf): each
//   tensor's RMSE against the f32 weights is within 2% of llama-quantize's (issue 18);
// - the types of every preset equal llama-quantize's on that model, on models of real shapes
//   (qwen2.5-0.5b's: 896-wide rows and tied embeddings; llama-1b's) and on a tiny one
//   (tests/data/quantize/types.json).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/shared_data.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/quantize.h"
#include "qkv/model_file.h"
#include "qkv/quantize.h"

namespace {

namespace fs = std::filesystem;
namespace kq = qkv::kernels::quant;
using kq::QuantType;

constexpr QuantType kOwnTypes[] = {QuantType::q2_k,  QuantType::q3_k, QuantType::q4_k,
                                   QuantType::q5_k,  QuantType::q6_k, QuantType::iq4_nl,
                                   QuantType::iq4_xs};

std::vector<float> round_trip(QuantType t, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t bytes = kq::quant_row_bytes(t, n);
  std::vector<uint8_t> blocks(static_cast<size_t>(bytes) + 64, 0xA5);  // 64 guard bytes
  kq::quantize(t, x.data(), n, blocks.data());
  for (int64_t i = bytes; i < bytes + 64; ++i) {
    EXPECT_EQ(blocks[static_cast<size_t>(i)], 0xA5) << "wrote past the blocks";
  }
  std::vector<float> y(x.size());
  kq::dequantize(t, blocks.data(), n, y.data());
  return y;
}

double rms(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (a[i] - b[i]);
  return std::sqrt(s / static_cast<double>(a.size()));
}

// RMSE of Gaussian data relative to its standard deviation, per type: about 2^-bits times the
// range a sub-block spans (~5 sigma), plus the cost of the quantized scales. The bounds are
// ~1.7x what these quantizers give (measured: Q2_K 0.263, Q3_K 0.142, Q4_K 0.070, Q5_K 0.035,
// Q6_K 0.017, IQ4_NL / IQ4_XS 0.074), so a regression of the scale search fails.
double gaussian_bound(QuantType t) {
  switch (t) {
    case QuantType::q2_k:
      return 0.45;
    case QuantType::q3_k:
      return 0.25;
    case QuantType::q4_k:
      return 0.13;
    case QuantType::q5_k:
      return 0.065;
    case QuantType::q6_k:
      return 0.033;
    case QuantType::iq4_nl:
    case QuantType::iq4_xs:
      return 0.13;
    default:
      return 0.0;
  }
}

TEST(QuantizeK, GaussianRoundTripWithinBound) {
  std::mt19937 rng(18);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(256 * 64);
  for (float& v : x) v = g(rng);
  for (const QuantType t : kOwnTypes) {
    const double e = rms(x, round_trip(t, x));
    EXPECT_LT(e, gaussian_bound(t)) << kq::quant_format(t).name;
    std::printf("%-7s gaussian relative RMSE %.4f\n", std::string(kq::quant_format(t).name).c_str(),
                e);
  }
}

TEST(QuantizeK, ZeroConstantAndExtremeBlocks) {
  for (const QuantType t : kOwnTypes) {
    const std::string name(kq::quant_format(t).name);
    std::vector<float> zeros(512, 0.0f);
    EXPECT_EQ(rms(zeros, round_trip(t, zeros)), 0.0) << name;
    // A constant block: representable up to the f16 scale's rounding.
    std::vector<float> c(512, -0.75f);
    EXPECT_LT(rms(c, round_trip(t, c)), 0.75 * 2e-3 * 16) << name;
    // One large value among small ones, and values near f16's range: finite, large one kept.
    std::vector<float> spike(512, 1e-3f);
    spike[7] = 1000.0f;
    spike[300] = -3e4f;
    const std::vector<float> y = round_trip(t, spike);
    for (const float v : y) ASSERT_TRUE(std::isfinite(v)) << name;
    EXPECT_NEAR(y[300], -3e4f, 3e4f * 0.05f) << name;
    // NaN and infinite values: no crash, nothing written past the blocks (values unspecified).
    std::vector<float> bad(512, 0.25f);
    bad[3] = std::nanf("");
    bad[260] = INFINITY;
    bad[261] = -INFINITY;
    (void)round_trip(t, bad);
  }
}

// ---- against llama-quantize ----

std::vector<float> values(const qkv::TensorInfo& t) {
  return qkv::tensor_to_f32(t);
}

TEST(QuantizeK, PerTensorRmseWithinTwoPercentOfLlamaQuantize) {
  QKV_REQUIRE_SHARED(f32_path, "fixtures/gguf-quant/model-f32.gguf");
  const qkv::ModelFile src = qkv::open_model(f32_path.string());
  const fs::path tmp = fs::path(testing::TempDir()) / "qkv-quantize-k-test.gguf";
  for (const char* type : {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"}) {
    const fs::path theirs_path = f32_path.parent_path() / ("model-" + std::string(type) + ".gguf");
    const qkv::ModelFile theirs = qkv::open_model(theirs_path.string());
    qkv::QuantizeOptions o;
    o.pure = true;
    o.n_threads = 2;
    qkv::quantize_gguf(src, type, tmp.string(), o);
    const qkv::ModelFile ours = qkv::open_model(tmp.string());
    double worst = 0.0;
    for (const qkv::TensorInfo& t : theirs.tensors) {
      if (!qkv::tensor_type_is_quantized(t.type)) continue;
      const qkv::TensorInfo& o_t = ours.tensor(t.name);
      ASSERT_EQ(o_t.type, t.type) << type << " " << t.name;
      const std::vector<float> ref = values(src.tensor(t.name));
      const double e_ours = rms(ref, values(o_t)), e_theirs = rms(ref, values(t));
      EXPECT_LE(e_ours, 1.02 * e_theirs) << type << " " << t.name;
      worst = std::max(worst, e_ours / e_theirs);
    }
    std::printf("%-7s worst per-tensor RMSE ratio qkv / llama-quantize: %.4f\n", type, worst);
  }
  fs::remove(tmp);
}

std::vector<std::pair<std::string, std::string>> plan_types(const qkv::ModelFile& m,
                                                            const std::string& preset) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const qkv::QuantizedTensor& t : qkv::quantize_plan(m, preset, false)) {
    out.emplace_back(t.name, std::string(qkv::tensor_type_name(t.type)));
  }
  return out;
}

TEST(QuantizePresets, TypesEqualLlamaQuantizeOnTheFixtureModel) {
  QKV_REQUIRE_SHARED(f32_path, "fixtures/gguf-quant/model-f32.gguf");
  const qkv::ModelFile src = qkv::open_model(f32_path.string());
  for (const char* preset : {"Q4_K_M", "Q3_K_M"}) {
    const qkv::ModelFile theirs = qkv::open_model(
        (f32_path.parent_path() / ("model-" + std::string(preset) + ".gguf")).string());
    for (const auto& [name, type] : plan_types(src, preset)) {
      EXPECT_EQ(type, qkv::tensor_type_name(theirs.tensor(name).type)) << preset << " " << name;
    }
  }
}

qkv::TensorType dtype_named(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(qkv::TensorType::iq4_xs); ++i) {
    const auto t = static_cast<qkv::TensorType>(i);
    if (qkv::tensor_type_name(t) == name) return t;
  }
  ADD_FAILURE() << "unknown dtype " << name;
  return qkv::TensorType::f32;
}

// tests/data/quantize/types.json: llama-quantize's type of every tensor of `qkv make-model`
// models (real shapes and tiny) and of the gguf-quant fixture model under each preset (see its README). quantize_plan needs only the
// tensors' names and shapes and the model's hyper-parameters, so the models are described, not
// stored.
TEST(QuantizePresets, TypesEqualLlamaQuantizeOnRealShapes) {
  const fs::path path = fs::path(QKV_SOURCE_DIR) / "tests" / "data" / "quantize" / "types.json";
  ASSERT_TRUE(fs::exists(path)) << path;
  std::ifstream f(path);
  const nlohmann::json j = nlohmann::json::parse(f);
  for (const auto& model : j["models"]) {
    qkv::ModelFile m;
    m.path = model["name"].get<std::string>();
    m.format = qkv::FileFormat::gguf;
    m.config.architecture = model["architecture"].get<std::string>();
    m.config.n_layer = model["n_layer"].get<int64_t>();
    m.config.n_head = model["n_head"].get<int64_t>();
    m.config.n_head_kv = model["n_head_kv"].get<int64_t>();
    for (const auto& t : model["tensors"]) {
      qkv::TensorInfo info;
      info.name = t["name"].get<std::string>();
      info.type = dtype_named(t["dtype"].get<std::string>());
      info.shape = t["shape"].get<std::vector<int64_t>>();
      m.tensors.push_back(info);
    }
    for (const auto& [preset, types] : model["types"].items()) {
      const auto plan = plan_types(m, preset);
      ASSERT_EQ(plan.size(), types.size());
      for (size_t i = 0; i < plan.size(); ++i) {
        EXPECT_EQ(plan[i].second, types[i].get<std::string>())
            << m.path << " " << preset << " " << plan[i].first;
      }
    }
  }
}

}  // namespace
