// The interleaved K layouts of the int8 mode (kernels/quant/repack.h, repack_k.cpp):
//   - the scalar twin, reading the packed layout, against the oracle dot_int8_reference (integer
//     block sums, combined in double) on the GGUF rows: proves the layout and its reading right;
//   - every runnable SIMD kernel bitwise equal to the twin (the canonical arithmetic), for
//     m = 1..17, n_out not a multiple of 16, sub-ranges of groups, with and without bias;
//   - batch invariance: a row's output bits do not depend on the call's other rows or their count.
//
// Twin tolerance against the oracle: |y - oracle| <= 1e-5 * (sum_k |d_w d_a sc w_k q_k| (+ the
// mins') + |bias|), as linear_int8_test: the integer sums are exact in both, the twin rounds
// d_w * d_a, the int32 sums to fp32 (2^-24 each) and chains one fp32 FMA per block (and min),
// at most 2 * 8 blocks here; a dropped or doubled block or a misread sub-block fails.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/half.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/repack.h"
#include "random_blocks.h"

namespace qkv::test {
namespace {

namespace quant = kernels::quant;
using quant::QuantType;

constexpr float kGuard = -12345.5f;
constexpr QuantType kTypes[] = {QuantType::q4_k, QuantType::q5_k, QuantType::q6_k,
                                QuantType::iq4_xs};

using GemmFn = bool (*)(const kernels::cpu::RepackedTask&, int64_t, int64_t);

struct Target {
  std::string name;
  GemmFn fn;
};

kernels::cpu::RepackedTask task(QuantType t, const uint8_t* packed, int64_t n_out, int64_t n_in,
                                const uint8_t* xq, int64_t ldxq, int64_t m, float* y, int64_t ldy,
                                const float* bias) {
  return kernels::cpu::RepackedTask{t, packed, n_out, n_in, xq, ldxq, m, y, ldy, bias};
}

// The SIMD targets this CPU runs.
std::vector<Target> runnable_targets() {
  std::vector<Target> out;
  if (core::cpu_features().has_avx2_target()) out.push_back({"avx2", &quant::avx2::gemm_repacked});
  if (core::cpu_features().avx512_vnni) out.push_back({"avx512", &quant::avx512::gemm_repacked});
  return out;
}

// n_out random GGUF rows of `t` (every code and scale byte random), f16 d / dmin in
// +-[2^-10, 2^-4), rows `stride` bytes apart.
std::vector<uint8_t> make_rows(QuantType t, int64_t n_out, int64_t n_in, int64_t stride,
                               std::mt19937& rng) {
  std::vector<uint8_t> w(static_cast<size_t>(n_out * stride));
  random_block_rows(t, w.data(), n_out, n_in, stride, rng, 10, -4);
  return w;
}

// m activation rows (ActBlock256, ldxq bytes apart) of random x with a zero block, a huge block
// and a tiny block among them.
std::vector<uint8_t> make_act(int64_t m, int64_t n_in, int64_t ldxq, std::mt19937& rng) {
  std::vector<uint8_t> xq(static_cast<size_t>(m * ldxq));
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n_in));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t k = 0; k < n_in; ++k) {
      float v = u(rng);
      const int64_t blk = k / 256;
      if ((blk + i) % 5 == 2) v *= 1e-3f;
      if ((blk + i) % 5 == 4) v *= 50.f;
      if (i % 3 == 1 && blk == 0) v = 0.f;
      x[k] = v;
    }
    quant::quantize_act(QuantType::q4_k, x.data(), n_in, xq.data() + i * ldxq);
  }
  return xq;
}

struct Problem {
  QuantType t;
  int64_t n_out, n_in, m, ldxq, ldy;
  std::vector<uint8_t> rows;  // GGUF rows, `stride` apart
  int64_t stride;
  std::vector<uint8_t> packed;
  std::vector<uint8_t> xq;
  std::vector<float> bias;
};

Problem make_problem(QuantType t, int64_t n_out, int64_t n_in, int64_t m, std::mt19937& rng) {
  Problem p{t, n_out, n_in, m, 0, 0, {}, 0, {}, {}, {}};
  p.stride = quant::quant_row_bytes(t, n_in) + (rng() % 2 ? 32 : 0);
  p.rows = make_rows(t, n_out, n_in, p.stride, rng);
  const int64_t groups = (n_out + 15) / 16;
  p.packed.assign(static_cast<size_t>(groups * quant::repacked_group_bytes(t, n_in)), 0xEE);
  quant::repack(t, p.rows.data(), p.stride, n_out, n_in, 0, groups, p.packed.data());
  p.ldxq = quant::act_row_bytes(t, n_in) + 8 * static_cast<int64_t>(rng() % 3);
  p.xq = make_act(m, n_in, p.ldxq, rng);
  p.ldy = n_out + 3;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  p.bias.resize(static_cast<size_t>(n_out));
  for (float& b : p.bias) b = u(rng);
  return p;
}

std::string where(const Problem& p, const char* target) {
  return std::string(quant::quant_format(p.t).name) + " n_out " + std::to_string(p.n_out) +
         " n_in " + std::to_string(p.n_in) + " m " + std::to_string(p.m) + " " + target;
}

// The twin on the packed layout against the oracle on the GGUF rows.
TEST(RepackK, TwinMatchesTheOracle) {
  std::mt19937 rng(23);
  for (QuantType t : kTypes) {
    for (int64_t n_in : {256, 768, 2048}) {
      const Problem p = make_problem(t, 37, n_in, 3, rng);
      for (const float* bias : {static_cast<const float*>(nullptr), p.bias.data()}) {
        std::vector<float> y(static_cast<size_t>(p.m * p.ldy), kGuard);
        quant::repacked_gemm_reference(t, p.packed.data(), p.n_out, n_in, p.xq.data(), p.ldxq, p.m,
                                       0, 3, y.data(), p.ldy, bias);
        for (int64_t i = 0; i < p.m; ++i) {
          for (int64_t o = 0; o < p.n_out; ++o) {
            double scale = 0;
            const double want = quant::dot_int8_reference(t, p.rows.data() + o * p.stride,
                                                          p.xq.data() + i * p.ldxq, n_in, &scale) +
                                (bias ? bias[o] : 0.0);
            scale += bias ? std::fabs(bias[o]) : 0.0;
            EXPECT_NEAR(y[i * p.ldy + o], want, 1e-5 * scale + 1e-30)
                << where(p, "twin") << " y[" << i << ", " << o << "]";
          }
          for (int64_t o = p.n_out; o < p.ldy; ++o) EXPECT_EQ(y[i * p.ldy + o], kGuard);
        }
      }
    }
  }
}

// Zero-padded rows of the last group give 0 and the zero bytes of padding are in place.
TEST(RepackK, PaddingRowsAreZero) {
  std::mt19937 rng(29);
  for (QuantType t : kTypes) {
    const Problem p = make_problem(t, 5, 512, 1, rng);
    std::vector<float> y(16);
    // Read all 16 lanes as if n_out were 16: lanes 5..15 are the padding.
    quant::repacked_gemm_reference(t, p.packed.data(), 16, 512, p.xq.data(), p.ldxq, 1, 0, 1,
                                   y.data(), 16, nullptr);
    for (int o = 5; o < 16; ++o) EXPECT_EQ(y[o], 0.0f) << quant::quant_format(t).name << " " << o;
  }
}

// Every runnable SIMD target, bit for bit the twin.
TEST(RepackK, EveryTargetIsTheTwinBitForBit) {
  std::mt19937 rng(31);
  const std::vector<Target> targets = runnable_targets();
  if (targets.empty()) GTEST_SKIP() << "no SIMD target on this CPU";
  for (QuantType t : kTypes) {
    for (int64_t n_in : {256, 1280}) {
      for (int64_t m = 1; m <= 17; m += (m < 10 ? 1 : 7)) {
        const int64_t n_out = 1 + static_cast<int64_t>(rng() % 60);
        const Problem p = make_problem(t, n_out, n_in, m, rng);
        const int64_t groups = (n_out + 15) / 16;
        const float* bias = m % 2 ? p.bias.data() : nullptr;
        std::vector<float> want(static_cast<size_t>(m * p.ldy), kGuard);
        quant::repacked_gemm_reference(t, p.packed.data(), n_out, n_in, p.xq.data(), p.ldxq, m, 0,
                                       groups, want.data(), p.ldy, bias);
        for (const Target& tg : targets) {
          std::vector<float> y(static_cast<size_t>(m * p.ldy), kGuard);
          // Two calls over split group ranges, as threads make them.
          const int64_t split = groups / 2;
          ASSERT_TRUE(tg.fn(
              task(t, p.packed.data(), n_out, n_in, p.xq.data(), p.ldxq, m, y.data(), p.ldy, bias),
              0, split));
          ASSERT_TRUE(tg.fn(
              task(t, p.packed.data(), n_out, n_in, p.xq.data(), p.ldxq, m, y.data(), p.ldy, bias),
              split, groups));
          int bad = 0;
          for (size_t k = 0; k < y.size() && bad < 5; ++k) {
            if (std::memcmp(&y[k], &want[k], 4) != 0) {
              ++bad;
              ADD_FAILURE() << where(p, tg.name.c_str()) << " y[" << k / p.ldy << ", " << k % p.ldy
                            << "] = " << y[k] << ", twin " << want[k];
            }
          }
        }
      }
    }
  }
}

// A row's bits are the same alone, in any slice of a batch, on every target.
TEST(RepackK, RowsDoNotDependOnTheBatch) {
  std::mt19937 rng(37);
  for (QuantType t : kTypes) {
    const Problem p = make_problem(t, 40, 512, 17, rng);
    for (const Target& tg : runnable_targets()) {
      std::vector<float> all(static_cast<size_t>(p.m * p.ldy));
      tg.fn(task(t, p.packed.data(), p.n_out, p.n_in, p.xq.data(), p.ldxq, p.m, all.data(), p.ldy,
                 p.bias.data()),
            0, 3);
      for (int64_t i = 0; i < p.m; ++i) {
        for (int64_t m = 1; i + m <= p.m; m += 3) {
          std::vector<float> part(static_cast<size_t>(m * p.ldy));
          tg.fn(task(t, p.packed.data(), p.n_out, p.n_in, p.xq.data() + i * p.ldxq, p.ldxq, m,
                     part.data(), p.ldy, p.bias.data()),
                0, 3);
          for (int64_t r = 0; r < m; ++r) {
            ASSERT_EQ(std::memcmp(&part[r * p.ldy], &all[(i + r) * p.ldy], 4 * p.n_out), 0)
                << where(p, tg.name.c_str()) << " row " << i + r << " in a call of " << m;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace qkv::test
