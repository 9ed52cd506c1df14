#include <gtest/gtest.h>
#include <immintrin.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>

#include "core/cpu_features.h"
#include "core/half.h"
#include "qkv/dtype.h"
#include "qkv/error.h"

namespace {

using namespace qkv::core;

// The F16C instructions are the independent reference for IEEE half conversions.
__attribute__((target("f16c"))) uint16_t hw_f32_to_f16(float x) {
  return static_cast<uint16_t>(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hw_f16_to_f32(uint16_t h) {
  return _cvtsh_ss(h);
}

TEST(Half, F16ToF32MatchesHardwareForAllCodes) {
  if (!cpu_features().f16c) GTEST_SKIP() << "CPU has no F16C";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = f16_to_f32(static_cast<uint16_t>(h));
    const float b = hw_f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(b)) {
      EXPECT_TRUE(std::isnan(a)) << h;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(a), std::bit_cast<uint32_t>(b)) << "code " << h;
    }
  }
}

TEST(Half, F32ToF16MatchesHardwareOnRandomAndEdgeValues) {
  if (!cpu_features().f16c) GTEST_SKIP() << "CPU has no F16C";
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> bits;
  const float edges[] = {
      0.f,       -0.f,     1.f,           65504.f,        65519.f,       65520.f,
      1e-8f,     5.96e-8f, 2.98e-8f,      6.1035156e-5f,  6.1e-5f,       INFINITY,
      -INFINITY, 3.0e38f,  1.0009765625f, 1.00048828125f, 1.00146484375f};
  for (float x : edges) EXPECT_EQ(f32_to_f16(x), hw_f32_to_f16(x)) << x;
  for (int i = 0; i < 2000000; ++i) {
    const float x = std::bit_cast<float>(bits(rng));
    if (std::isnan(x)) {
      EXPECT_EQ(f32_to_f16(x) & 0x7c00, 0x7c00);
      EXPECT_NE(f32_to_f16(x) & 0x03ff, 0);
      continue;
    }
    ASSERT_EQ(f32_to_f16(x), hw_f32_to_f16(x)) << std::hexfloat << x;
  }
}

TEST(Half, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly half-way between bf16 1.0 and 1 + 2^-7: ties go to the even mantissa.
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-7f + 0x1p-8f), 0x3f82);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-INFINITY)), -INFINITY);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1e4f, 1e4f);
  for (int i = 0; i < 100000; ++i) {
    const float x = u(rng);
    const float y = bf16_to_f32(f32_to_bf16(x));
    EXPECT_LE(std::fabs(x - y), std::fabs(x) * 0x1p-8f) << x;  // at most half an ulp of 8 bits
  }
}

TEST(DType, ParsesNamesAndRejectsUnknown) {
  EXPECT_EQ(qkv::parse_dtype("bf16"), qkv::DType::bf16);
  EXPECT_EQ(qkv::parse_dtype("fp16"), qkv::DType::f16);
  EXPECT_EQ(qkv::parse_dtype("float32"), qkv::DType::f32);
  EXPECT_THROW(qkv::parse_dtype("q4_0"), qkv::InvalidArgument);
}

}  // namespace
