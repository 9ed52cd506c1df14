// The int8 dot-product mode of the linear layers (LinearDot::int8, kernels/quant/dot_int8.h):
//   - the oracle (quant::dot_int8_reference: integer block sums, combined in double) against the
//     plain double product of the bit-exact dequantized weights and the rounded activations;
//   - every target's kernels against the oracle, random shapes, strides, guards, 1 and 2 threads;
//   - the error of the mode against the exact fp32 product, within its rounding bound;
//   - batch invariance, the quantizer's rounding, and the fallback of types without kernels.
//
// Kernel tolerance: |y - oracle| <= 1e-5 * (sum_k |d_w d_a sc w_k q_k| (+ the mins') + |bias|), the
// scale the oracle reports. The integer sums are exact in both; the kernels round d_w * d_a and
// each int32 lane (2^-24 each) and sum the block terms in fp32 lanes, each lane a partial sum
// bounded by that scale, in chains of at most n_in / 32 = 34 blocks for these shapes (<= 40 *
// 2^-24 = 2.4e-6 of the scale); a dropped or doubled block (~1 / n_blocks of the scale, >= 3e-2
// here) fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/linear.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/dot_int8.h"
#include "qkv/error.h"
#include "random_blocks.h"

namespace qkv::test {
namespace {

using kernels::Linear;
using kernels::LinearDot;
using kernels::WeightType;
using kernels::WeightView;
using kernels::cpu::LinearTargetOps;
namespace quant = kernels::quant;

constexpr WeightType kInt8Types[] = {
    WeightType::q4_0, WeightType::q4_1, WeightType::q5_0, WeightType::q5_1,   WeightType::q8_0,
    WeightType::q4_k, WeightType::q5_k, WeightType::q6_k, WeightType::iq4_nl, WeightType::iq4_xs};
constexpr double kTol = 1e-5;
constexpr float kGuard = -12345.5f;

// A weight [n_out, n_in] of random blocks (every code and sub-block scale random, Q8_0 codes
// -128 included), f16 scales in +-[2^-10, 2^-4); rows `row_bytes` apart (0: packed).
struct Weight {
  std::vector<uint8_t> bytes;
  WeightView view;
};

Weight make_weight(WeightType type, int64_t n_out, int64_t n_in, int64_t row_pad,
                   std::mt19937& rng) {
  const quant::QuantType q = *kernels::weight_quant_type(type);
  const int64_t packed = kernels::weight_row_bytes(type, n_in);
  const int64_t stride = packed + row_pad;
  Weight w;
  w.bytes.resize(static_cast<size_t>(n_out * stride + 64));
  uint8_t* base = w.bytes.data() + 32;  // GGUF rows start at 32-byte offsets
  random_block_rows(q, base, n_out, n_in, stride, rng, 10, -4);
  w.view = WeightView{type, n_out, n_in, base, row_pad ? stride : 0};
  return w;
}

// Random activations with the features that stress a quantizer: an all-zero block, a block
// whose values all equal its maximum, tiny and huge blocks next to each other.
std::vector<float> make_x(int64_t m, int64_t n_in, int64_t ldx, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(m * ldx), std::numeric_limits<float>::quiet_NaN());
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t k = 0; k < n_in; ++k) {
      const int64_t blk = k / 32;
      float v = u(rng);
      if (blk % 7 == 3) v *= 1e-3f;
      if (blk % 7 == 5) v *= 50.f;
      if (i % 2 == 1 && blk == 1) v = 0.f;
      if (i % 3 == 2 && blk == 0) v = -0.75f;
      x[i * ldx + k] = v;
    }
  }
  return x;
}

quant::QuantType qtype(WeightType t) {
  return *kernels::weight_quant_type(t);
}

// The oracle against the plain product of what the two sides stand for: the bit-exact dequantized
// weights (quant::dequantize, checked against llama.cpp's by quant_dequant_test) times d_a * q.
// This checks the oracle's reading of every block layout, independently of its integer algebra.
TEST(LinearInt8, OracleIsTheProductOfTheDequantizedSides) {
  std::mt19937 rng(3);
  for (WeightType type : kInt8Types) {
    const quant::QuantType q = qtype(type);
    const int64_t n_in = 1024, n_out = 9;
    const Weight w = make_weight(type, n_out, n_in, 0, rng);
    const std::vector<float> x = make_x(1, n_in, n_in, rng);
    std::vector<uint8_t> xq(static_cast<size_t>(quant::act_row_bytes(q, n_in)));
    quant::quantize_act(q, x.data(), n_in, xq.data());
    // The activation's values d_a * q.
    std::vector<double> xd(static_cast<size_t>(n_in));
    const bool big = quant::quant_block_elems(q) == quant::kQKK;
    for (int64_t k = 0; k < n_in; ++k) {
      if (big) {
        const auto& a = reinterpret_cast<const quant::ActBlock256*>(xq.data())[k / 256];
        xd[k] = double(a.d) * a.q[k % 256];
      } else {
        const auto& a = reinterpret_cast<const quant::ActBlock32*>(xq.data())[k / 32];
        xd[k] = double(a.d) * a.q[k % 32];
      }
    }
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; ++o) {
      const auto* wrow =
          static_cast<const uint8_t*>(w.view.data) + o * kernels::weight_row_bytes(type, n_in);
      quant::dequantize(q, wrow, n_in, row.data());
      double want = 0, scale = 0;
      for (int64_t k = 0; k < n_in; ++k) {
        want += row[k] * xd[k];
        scale += std::fabs(row[k] * xd[k]);
      }
      // The dequantizer rounds d * scale (and dmin * min) to fp32 before the code: 2^-24 each.
      const double got = quant::dot_int8_reference(q, wrow, xq.data(), n_in);
      EXPECT_NEAR(got, want, 4e-7 * scale) << kernels::weight_type_name(type) << " row " << o;
    }
  }
}

// The quantizer: d = max|x| / 127 per block, |x - d q| <= d / 2, the block's maximum at +-127,
// and the sums (d * sum(q) for 32-blocks, sums of 16 for 256-blocks) as recomputed here.
TEST(LinearInt8, ActivationBlocksRoundToNearest) {
  std::mt19937 rng(5);
  for (quant::QuantType q : {quant::QuantType::q8_0, quant::QuantType::q4_k}) {
    const int64_t n = 768;
    const std::vector<float> x = make_x(3, n, n, rng);
    for (int64_t i = 0; i < 3; ++i) {
      std::vector<uint8_t> xq(static_cast<size_t>(quant::act_row_bytes(q, n)));
      quant::quantize_act(q, x.data() + i * n, n, xq.data());
      const int64_t be = quant::quant_block_elems(q);
      for (int64_t b = 0; b < n / be; ++b) {
        const float* xb = x.data() + i * n + b * be;
        float d;
        const int8_t* qs;
        if (be == 256) {
          const auto& a = reinterpret_cast<const quant::ActBlock256*>(xq.data())[b];
          d = a.d;
          qs = a.q;
          for (int s = 0; s < 16; ++s) {
            int sum = 0;
            for (int k = 0; k < 16; ++k) sum += qs[16 * s + k];
            EXPECT_EQ(a.bsums[s], sum);
          }
        } else {
          const auto& a = reinterpret_cast<const quant::ActBlock32*>(xq.data())[b];
          d = a.d;
          qs = a.q;
          int sum = 0;
          for (int k = 0; k < 32; ++k) sum += qs[k];
          EXPECT_EQ(a.ds, a.d * static_cast<float>(sum));
        }
        double amax = 0;
        for (int64_t k = 0; k < be; ++k) amax = std::max(amax, std::fabs(double(xb[k])));
        EXPECT_NEAR(d, amax / 127, 1e-7 * amax);
        bool hit = amax == 0;
        for (int64_t k = 0; k < be; ++k) {
          EXPECT_LE(std::abs(int(qs[k])), 127);
          EXPECT_LE(std::fabs(xb[k] - double(d) * qs[k]), 0.5001 * d) << "block " << b << " " << k;
          if (std::fabs(xb[k]) == amax && std::abs(int(qs[k])) == 127) hit = true;
        }
        EXPECT_TRUE(hit) << "block " << b << ": its maximum is not at +-127";
      }
    }
  }
}

// The AVX2 quantizer is the scalar one, bit for bit (the oracle and the kernels' tests rely on it).
TEST(LinearInt8, FastQuantizerIsTheScalarOneBitForBit) {
  std::mt19937 rng(7);
  for (quant::QuantType q : {quant::QuantType::q8_0, quant::QuantType::q4_k}) {
    const int64_t n = 1024;
    std::vector<float> x = make_x(4, n, n, rng);
    // Ties: values at exactly k + 0.5 steps of a block whose max is 127 steps.
    for (int64_t k = 0; k < 32; ++k) x[3 * n + k] = k == 0 ? 127.0f : static_cast<float>(k) + 0.5f;
    for (int64_t i = 0; i < 4; ++i) {
      const size_t bytes = static_cast<size_t>(quant::act_row_bytes(q, n));
      std::vector<uint8_t> fast(bytes, 0xAB), slow(bytes, 0xCD);
      quant::quantize_act(q, x.data() + i * n, n, fast.data());
      quant::quantize_act_reference(q, x.data() + i * n, n, slow.data());
      EXPECT_EQ(fast, slow) << "row " << i;
    }
  }
}

// Every target's kernels against the oracle.
TEST(LinearInt8, EveryTargetMatchesTheOracle) {
  std::mt19937 rng(11);
  const int64_t ms[] = {1, 2, 3, 4, 5, 8, 9, 17};
  for (WeightType type : kInt8Types) {
    const quant::QuantType q = qtype(type);
    const bool big = quant::quant_block_elems(q) == quant::kQKK;
    const std::vector<int64_t> n_ins =
        big ? std::vector<int64_t>{256, 512, 1280} : std::vector<int64_t>{32, 64, 96, 1088};
    for (int64_t n_in : n_ins) {
      for (int64_t m : ms) {
        const int64_t n_out = 1 + static_cast<int64_t>(rng() % 40);
        const int64_t row_pad = rng() % 2 ? 32 : 0;
        const Weight w = make_weight(type, n_out, n_in, row_pad, rng);
        std::vector<float> bias(static_cast<size_t>(n_out));
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        for (float& b : bias) b = u(rng);
        const float* b = m % 2 ? bias.data() : nullptr;
        const int64_t ldx = n_in + 3, ldy = n_out + 5;
        const std::vector<float> x = make_x(m, n_in, ldx, rng);
        std::vector<float> ref(static_cast<size_t>(m * ldy));
        kernels::linear_int8_reference(w.view, b, x.data(), m, ldx, ref.data(), ldy);
        // Error scale per element: the oracle's sum of |block terms| + |bias|.
        std::vector<double> scale(static_cast<size_t>(m * n_out));
        std::vector<uint8_t> xq(static_cast<size_t>(quant::act_row_bytes(q, n_in)));
        const int64_t stride =
            w.view.row_bytes ? w.view.row_bytes : kernels::weight_row_bytes(type, n_in);
        for (int64_t i = 0; i < m; ++i) {
          quant::quantize_act(q, x.data() + i * ldx, n_in, xq.data());
          for (int64_t o = 0; o < n_out; ++o) {
            double s = 0;
            const auto* wrow = static_cast<const uint8_t*>(w.view.data) + o * stride;
            quant::dot_int8_reference(q, wrow, xq.data(), n_in, &s);
            scale[i * n_out + o] = s + (b ? std::fabs(b[o]) : 0.0);
          }
        }
        const Linear lin(w.view, b, LinearDot::int8);
        ASSERT_EQ(lin.dot(), LinearDot::int8);
        for (const LinearTargetOps* t : kernels::cpu::linear_targets_runnable()) {
          for (int threads : {1, 2}) {
            const std::string where = std::string(kernels::weight_type_name(type)) + " n_in " +
                                      std::to_string(n_in) + " m " + std::to_string(m) + " n_out " +
                                      std::to_string(n_out) + " target " + t->name + " threads " +
                                      std::to_string(threads);
            std::vector<float> y(static_cast<size_t>(m * ldy), kGuard);
            lin.forward_on(*t, kernels::LinearPath::automatic, x.data(), m, ldx, y.data(), ldy,
                           threads);
            int bad = 0;
            for (int64_t i = 0; i < m && bad < 5; ++i) {
              for (int64_t o = 0; o < n_out && bad < 5; ++o) {
                const double err = std::fabs(double(y[i * ldy + o]) - ref[i * ldy + o]);
                if (!(err <= kTol * scale[i * n_out + o] + 1e-30)) {
                  ++bad;
                  ADD_FAILURE() << where << " y[" << i << ", " << o << "] = " << y[i * ldy + o]
                                << ", oracle " << ref[i * ldy + o] << ", error " << err;
                }
              }
              for (int64_t o = n_out; o < ldy; ++o) {
                if (y[i * ldy + o] != kGuard) {
                  ++bad;
                  ADD_FAILURE() << where << " wrote the padding y[" << i << ", " << o << "]";
                  break;
                }
              }
            }
          }
        }
      }
    }
  }
}

// The mode's error against the exact product (linear_reference, double): rounding x to d_a q
// moves each value by at most d_a / 2 = max|x_block| / 254, so
//   |y_int8 - y| <= sum_blocks (max|x_block| / 254) * sum_block |w|   (+ fp32 summation).
// The typical error is far below that worst case (the roundings have random signs): the RMS over
// outputs is also held under 1% of the outputs' RMS: for Gaussian x the rounding error is uniform
// in +-d_a / 2, RMS d_a / sqrt(12) = max|x_block| / (127 sqrt(12)), about 2.1 sigma / 440 = 0.48%
// of x's RMS for blocks of 32 and 2.9 sigma / 440 = 0.66% for blocks of 256 (measured: 0.56-0.62%
// and 0.68-0.78%), and y's relative error follows x's.
TEST(LinearInt8, ErrorAgainstTheFp32ProductIsWithinTheRoundingBound) {
  std::mt19937 rng(13);
  for (WeightType type : kInt8Types) {
    const int64_t n_in = 2048, n_out = 64, m = 3;
    const Weight w = make_weight(type, n_out, n_in, 0, rng);
    std::vector<float> x(static_cast<size_t>(m * n_in));
    std::normal_distribution<float> g(0.f, 1.f);
    for (float& v : x) v = g(rng);
    std::vector<float> exact(static_cast<size_t>(m * n_out)), y(exact.size());
    kernels::linear_reference(w.view, nullptr, x.data(), m, n_in, exact.data(), n_out);
    const Linear lin(w.view, nullptr, LinearDot::int8);
    lin.forward(x.data(), m, n_in, y.data(), n_out, 1);
    std::vector<float> row(static_cast<size_t>(n_in));
    double err2 = 0, y2 = 0;
    for (int64_t o = 0; o < n_out; ++o) {
      kernels::weight_row_to_f32(w.view, o, row.data());
      for (int64_t i = 0; i < m; ++i) {
        double bound = 0, scale = 0;
        for (int64_t b = 0; b < n_in / 32; ++b) {
          // The rounding bound of the activation block that covers these 32 values.
          const int64_t be = quant::quant_block_elems(qtype(type));
          const int64_t b0 = b * 32 / be * be;
          double amax = 0, wsum = 0;
          for (int64_t k = b0; k < b0 + be; ++k)
            amax = std::max(amax, std::fabs(double(x[i * n_in + k])));
          for (int64_t k = b * 32; k < b * 32 + 32; ++k) {
            wsum += std::fabs(row[k]);
            scale += std::fabs(double(row[k]) * x[i * n_in + k]);
          }
          bound += amax / 254 * wsum;
        }
        const double err = std::fabs(double(y[i * n_out + o]) - exact[i * n_out + o]);
        EXPECT_LE(err, 1.0001 * bound + 1e-5 * scale)
            << kernels::weight_type_name(type) << " y[" << i << ", " << o << "]";
        err2 += err * err;
        y2 += double(exact[i * n_out + o]) * exact[i * n_out + o];
      }
    }
    EXPECT_LT(std::sqrt(err2 / y2), 1e-2) << kernels::weight_type_name(type);
  }
}

// Batch invariance: a row's result is bitwise the same whatever the other rows of the call and
// their number, on every target and thread count (calls of 1..9 rows against one of 11, which
// the kernels split into passes of 8 or 4, 2 and 1).
TEST(LinearInt8, RowsDoNotDependOnTheBatch) {
  std::mt19937 rng(17);
  for (WeightType type : kInt8Types) {
    const bool big = quant::quant_block_elems(qtype(type)) == quant::kQKK;
    const int64_t n_in = big ? 512 : 320, n_out = 37;
    const Weight w = make_weight(type, n_out, n_in, 0, rng);
    std::vector<float> bias(static_cast<size_t>(n_out), 0.25f);
    const Linear lin(w.view, bias.data(), LinearDot::int8);
    constexpr int64_t kBatch = 11;
    const std::vector<float> x = make_x(kBatch, n_in, n_in, rng);
    for (const LinearTargetOps* t : kernels::cpu::linear_targets_runnable()) {
      for (int threads : {1, 2}) {
        std::vector<float> all(static_cast<size_t>(kBatch * n_out));
        lin.forward_on(*t, kernels::LinearPath::automatic, x.data(), kBatch, n_in, all.data(),
                       n_out, threads);
        for (int64_t i = 0; i < kBatch; ++i) {
          for (int64_t m = 1; m <= 9 && i + m <= kBatch; ++m) {
            std::vector<float> part(static_cast<size_t>(m * n_out));
            lin.forward_on(*t, kernels::LinearPath::automatic, x.data() + i * n_in, m, n_in,
                           part.data(), n_out, 3 - threads);
            for (int64_t o = 0; o < m * n_out; ++o) {
              ASSERT_EQ(std::memcmp(&part[o], &all[i * n_out + o], 4), 0)
                  << t->name << " " << kernels::weight_type_name(type) << " row " << i + o / n_out
                  << " in a call of " << m << " rows: " << part[o] << " vs " << all[i * n_out + o];
            }
          }
        }
      }
    }
  }
}

// Types without integer kernels, and unquantized weights, keep the exact fp32 path.
TEST(LinearInt8, TypesWithoutKernelsStayExact) {
  std::mt19937 rng(19);
  std::vector<uint8_t> bytes(static_cast<size_t>(kernels::weight_row_bytes(WeightType::q2_k, 256)) *
                             4);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  for (size_t r = 0; r < 4; ++r) {  // finite d and dmin
    const uint16_t h = core::f32_to_f16(0.01f);
    std::memcpy(bytes.data() + r * 84 + offsetof(quant::BlockQ2K, d), &h, 2);
    std::memcpy(bytes.data() + r * 84 + offsetof(quant::BlockQ2K, dmin), &h, 2);
  }
  const WeightView v{WeightType::q2_k, 4, 256, bytes.data(), 0};
  const Linear exact(v), asked(v, nullptr, LinearDot::int8);
  EXPECT_EQ(asked.dot(), LinearDot::exact);
  std::vector<float> x(256, 0.5f), y1(4), y2(4);
  exact.forward(x.data(), 1, 256, y1.data(), 4, 1);
  asked.forward(x.data(), 1, 256, y2.data(), 4, 1);
  EXPECT_EQ(y1, y2);
  std::vector<float> f32(16, 1.f);
  EXPECT_EQ(
      Linear(WeightView{WeightType::f32, 4, 4, f32.data(), 0}, nullptr, LinearDot::int8).dot(),
      LinearDot::exact);
  EXPECT_THROW(kernels::linear_int8_reference(v, nullptr, x.data(), 1, 256, y1.data(), 4),
               InvalidArgument);
}

}  // namespace
}  // namespace qkv::test
