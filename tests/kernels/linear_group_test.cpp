// Group products (Linear::forward_group: several weights times one x in one parallel region)
// against the weights' own forward calls, which linear_test and linear_int8_test check against
// their double-precision oracles. A group hands out the items of all its weights from one queue;
// items split rows, never a row's sum, so every output must have the bits of the separate call:
// for every weight type, both dot modes, every SIMD target, 1-3 threads, decode and prefill row
// counts (both int8 row chunks, the GEMM paths), weights of mixed types in one group (Q4_K_M's
// Q4_K and Q6_K; one rounding of x shared by weights of one type), columns of y outside a
// weight's n_out untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/linear.h"
#include "qkv/error.h"
#include "random_blocks.h"

namespace qkv::test {
namespace {

using kernels::Linear;
using kernels::LinearDot;
using kernels::LinearOutput;
using kernels::LinearPath;
using kernels::WeightType;
using kernels::WeightView;
using kernels::cpu::LinearTargetOps;

constexpr WeightType kAllTypes[] = {
    WeightType::f32,  WeightType::f16,  WeightType::bf16, WeightType::q8_0,   WeightType::q4_0,
    WeightType::q4_1, WeightType::q5_0, WeightType::q5_1, WeightType::q2_k,   WeightType::q3_k,
    WeightType::q4_k, WeightType::q5_k, WeightType::q6_k, WeightType::iq4_nl, WeightType::iq4_xs};
constexpr float kGuard = -12345.5f;

// A weight [n_out, n_in] with random values: floats in [-1, 1) (rounded to f16/bf16), block
// formats every byte random with f16 scales in +-[2^-10, 2^-4); packed rows.
struct Weight {
  std::vector<uint8_t> bytes;
  std::vector<float> bias;
  WeightView view;
};

Weight make_weight(WeightType type, int64_t n_out, int64_t n_in, std::mt19937& rng) {
  const int64_t stride = kernels::weight_row_bytes(type, n_in);
  Weight w;
  w.bytes.resize(static_cast<size_t>(n_out * stride + 64));
  uint8_t* base = w.bytes.data() + 32;  // GGUF rows start at 32-byte offsets
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  if (const auto q = kernels::weight_quant_type(type)) {
    random_block_rows(*q, base, n_out, n_in, stride, rng, 10, -4);
  } else {
    for (int64_t i = 0; i < n_out * n_in; ++i) {
      const float v = u(rng);
      if (type == WeightType::f32) {
        std::memcpy(base + 4 * i, &v, 4);
      } else {
        const uint16_t h = type == WeightType::f16 ? core::f32_to_f16(v) : core::f32_to_bf16(v);
        std::memcpy(base + 2 * i, &h, 2);
      }
    }
  }
  w.bias.resize(static_cast<size_t>(n_out));
  for (float& b : w.bias) b = u(rng);
  w.view = WeightView{type, n_out, n_in, base, 0};
  return w;
}

std::vector<float> make_x(int64_t m, int64_t n_in, int64_t ldx, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(m * ldx), std::nanf(""));
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < n_in; ++k) x[i * ldx + k] = u(rng);
  return x;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One group of weights (types[j], n_out[j]) in `dot` mode: for every target, thread count and m,
// the group's outputs against each weight's own forward_on, bit for bit, and the guard columns.
void expect_group_matches_separate(const std::vector<WeightType>& types, LinearDot dot,
                                   int64_t n_in, std::mt19937& rng,
                                   kernels::LinearLayout layout = kernels::LinearLayout::rows) {
  const int64_t n_outs[] = {600, 40, 72};  // several items (f32, f16), one, a partial group
  std::vector<Weight> weights;
  std::vector<Linear> linears;
  for (size_t j = 0; j < types.size(); ++j) {
    weights.push_back(make_weight(types[j], n_outs[j % 3], n_in, rng));
  }
  for (size_t j = 0; j < types.size(); ++j) {
    // Every other weight with a bias, so that both cases meet in one group.
    linears.emplace_back(weights[j].view, j % 2 == 0 ? weights[j].bias.data() : nullptr, dot,
                         layout);
  }
  std::string name;
  for (WeightType t : types) name += std::string(kernels::weight_type_name(t)) + " ";
  name += dot == LinearDot::int8 ? "int8" : "exact";
  if (layout == kernels::LinearLayout::interleaved) name += " interleaved";
  for (const LinearTargetOps* target : kernels::cpu::linear_targets_runnable()) {
    for (int64_t m : {1, 3, 70}) {
      const int64_t ldx = n_in + 5;  // x rows off the 64-byte alignment (the gemv copy)
      const std::vector<float> x = make_x(m, n_in, ldx, rng);
      // Forced matrix-vector kernels only where automatic takes the GEMM paths.
      for (LinearPath path : {LinearPath::automatic, LinearPath::gemv}) {
        if (path == LinearPath::gemv && m < 70) continue;
        for (int threads = 1; threads <= 3; ++threads) {
          std::vector<std::vector<float>> separate, grouped;
          std::vector<LinearOutput> outs;
          for (size_t j = 0; j < linears.size(); ++j) {
            const int64_t ldy = linears[j].n_out() + 3;  // 3 guard columns a row
            separate.emplace_back(static_cast<size_t>(m * ldy), kGuard);
            grouped.emplace_back(static_cast<size_t>(m * ldy), kGuard);
            linears[j].forward_on(*target, path, x.data(), m, ldx, separate[j].data(), ldy,
                                  threads);
          }
          for (size_t j = 0; j < linears.size(); ++j) {
            outs.push_back({&linears[j], grouped[j].data(), linears[j].n_out() + 3});
          }
          kernels::LinearScratch scratch;
          Linear::forward_group_on(*target, path, outs, x.data(), m, ldx, threads, &scratch);
          for (size_t j = 0; j < linears.size(); ++j) {
            EXPECT_TRUE(same_bits(grouped[j], separate[j]))
                << name << ", weight " << j << ", target " << target->name << ", m " << m
                << ", threads " << threads << ", path " << static_cast<int>(path);
            const int64_t ldy = linears[j].n_out() + 3;
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t o = 0; o < ldy; ++o) {
                const float y = grouped[j][static_cast<size_t>(i * ldy + o)];
                // A weight's columns all written (the products are finite), the rest untouched.
                if (o < linears[j].n_out() ? !std::isfinite(y) : y != kGuard) {
                  ADD_FAILURE() << name << ", weight " << j << ": y[" << i << ", " << o
                                << "] = " << y;
                  return;
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST(LinearGroup, EveryTypeAndModeHasTheBitsOfSeparateCalls) {
  std::mt19937 rng(11);
  for (WeightType type : kAllTypes) {
    for (LinearDot dot : {LinearDot::exact, LinearDot::int8}) {
      expect_group_matches_separate({type, type, type}, dot, 512, rng);
    }
  }
}

// f16/bf16 weights in the interleaved layout (LinearLayout::interleaved: groups of 16 rows),
// alone and beside weights in rows.
TEST(LinearGroup, InterleavedWeightsHaveTheBitsOfSeparateCalls) {
  std::mt19937 rng(14);
  for (WeightType type : {WeightType::f16, WeightType::bf16}) {
    expect_group_matches_separate({type, type, type}, LinearDot::exact, 512, rng,
                                  kernels::LinearLayout::interleaved);
  }
  // The layout applies to f16/bf16 only: the block-format weight keeps its rows.
  expect_group_matches_separate({WeightType::f16, WeightType::q4_k, WeightType::bf16},
                                LinearDot::int8, 512, rng, kernels::LinearLayout::interleaved);
}

// Mixed groups: Q4_K_M's attention (Q4_K, Q4_K, Q6_K: two roundings of x, one shared), block
// types without integer kernels beside ones with them, fp32 (the library's own threads) and f16.
TEST(LinearGroup, MixedTypesHaveTheBitsOfSeparateCalls) {
  std::mt19937 rng(12);
  const std::vector<std::vector<WeightType>> groups = {
      {WeightType::q4_k, WeightType::q4_k, WeightType::q6_k},
      {WeightType::q6_k, WeightType::q4_k},
      {WeightType::q3_k, WeightType::q4_0, WeightType::q8_0},
      {WeightType::f32, WeightType::q4_0, WeightType::f16},
      {WeightType::q4_0}};
  for (const auto& types : groups) {
    for (LinearDot dot : {LinearDot::exact, LinearDot::int8}) {
      expect_group_matches_separate(types, dot, 512, rng);
    }
  }
}

TEST(LinearGroup, BadGroupsAreErrors) {
  std::mt19937 rng(13);
  const Weight a = make_weight(WeightType::q4_0, 16, 64, rng);
  const Weight b = make_weight(WeightType::q4_0, 16, 96, rng);
  const Linear la(a.view), lb(b.view), empty;
  std::vector<float> x(96, 0.5f), ya(16), yb(16);
  // Weights of different n_in cannot share one x.
  const LinearOutput mixed[] = {{&la, ya.data(), 16}, {&lb, yb.data(), 16}};
  EXPECT_THROW(Linear::forward_group(mixed, x.data(), 1, 96), InvalidArgument);
  const LinearOutput none[] = {{&la, ya.data(), 16}, {nullptr, yb.data(), 16}};
  EXPECT_THROW(Linear::forward_group(none, x.data(), 1, 64), InvalidArgument);
  const LinearOutput unset[] = {{&empty, ya.data(), 16}};
  EXPECT_THROW(Linear::forward_group(unset, x.data(), 1, 64), InvalidArgument);
  const LinearOutput narrow[] = {{&la, ya.data(), 15}};  // ldy < n_out
  EXPECT_THROW(Linear::forward_group(narrow, x.data(), 1, 64), InvalidArgument);
  const LinearOutput no_y[] = {{&la, nullptr, 16}};
  EXPECT_THROW(Linear::forward_group(no_y, x.data(), 1, 64), InvalidArgument);
  // Nothing to do: no weights, or no rows.
  const LinearOutput narrow_free[] = {{&la, nullptr, 16}};
  EXPECT_NO_THROW(Linear::forward_group({}, x.data(), 1, 64));
  EXPECT_NO_THROW(Linear::forward_group(narrow_free, nullptr, 0, 64));
}

}  // namespace
}  // namespace qkv::test
