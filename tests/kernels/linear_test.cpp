// Parity of the linear layers (y = x · Wᵀ + bias) with the double-accumulating reference, for every
// weight type, both paths (matrix-vector kernels for small m, the GEMM library above), every SIMD
// target the CPU has, 1 and 2 threads, strided x and y with guard values.
//
// Tolerance: |y - ref| <= 1e-5 · (sum_k |x_k w_k| + |bias|) + 1e-30 per element, for all weight
// types. The kernels widen f16, bf16 and q8_0 weights to exactly the fp32 values the reference
// reads (a q8_0 d·q has at most 11 + 7 significant bits), so the only difference is fp32
// accumulation: the matrix-vector kernels sum chains of n_in/16 <= 70 products (bound 70 · 2^-24
// = 4e-6 of sum |x w|); BLAS sums longer chains whose random-sign rounding errors grow like
// sqrt(n_in) · 2^-24 (~2e-6). A dropped or doubled product shifts a dot product by ~1/n_in >= 1e-3
// of sum |x w| for n_in <= 1100, which this tolerance catches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/test_scale.h"
#include "core/cpu_features.h"
#include "core/half.h"
#include "kernels/cpu/linear_gemm.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/linear.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/gemv.h"
#include "mapped_file.h"
#include "qkv/error.h"
#include "random_blocks.h"

namespace qkv::test {
namespace {

using kernels::Linear;
using kernels::WeightType;
using kernels::WeightView;
using kernels::cpu::LinearTargetOps;
constexpr int64_t kQ8Bytes = sizeof(kernels::quant::BlockQ8_0);

constexpr double kTol = 1e-5;
constexpr float kGuard = -12345.5f;
constexpr WeightType kTypes[] = {
    WeightType::f32,  WeightType::f16,  WeightType::bf16, WeightType::q8_0,   WeightType::q4_0,
    WeightType::q4_1, WeightType::q5_0, WeightType::q5_1, WeightType::q2_k,   WeightType::q3_k,
    WeightType::q4_k, WeightType::q5_k, WeightType::q6_k, WeightType::iq4_nl, WeightType::iq4_xs};

// Random blocks: every code, scale and sign bit random, the f16 fields finite with magnitudes
// in [2^-`lo`, 2^`hi`) so every decoded value is finite.
void random_blocks(kernels::quant::QuantType q, int64_t n_blocks, uint8_t* out, std::mt19937& rng,
                   int lo = 12, int hi = 0) {
  const int64_t bytes = kernels::quant::quant_block_bytes(q);
  random_block_rows(q, out, n_blocks, kernels::quant::quant_block_elems(q), bytes, rng, lo, hi);
}

// A random weight [n_out, n_in] stored in `type`, rows `row_bytes` apart (padding filled with
// garbage that must never be read as weights), starting `offset` bytes into its buffer.
struct Weight {
  std::vector<uint8_t> bytes;
  WeightView view;
};

Weight make_weight(WeightType type, int64_t n_out, int64_t n_in, int64_t row_pad, int64_t offset,
                   std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int64_t packed = kernels::weight_row_bytes(type, n_in);
  const int64_t stride = packed + row_pad;
  Weight w;
  w.bytes.assign(static_cast<size_t>(offset + n_out * stride),
                 0xff);  // 0xff..: NaN in f16/bf16/f32
  uint8_t* base = w.bytes.data() + offset;
  for (int64_t o = 0; o < n_out; ++o) {
    uint8_t* row = base + o * stride;
    std::vector<float> v(static_cast<size_t>(n_in));
    for (float& f : v) f = u(rng);
    for (int64_t k = 0; k < n_in; ++k) {
      uint16_t h = 0;
      switch (type) {
        case WeightType::f32:
          std::memcpy(row + 4 * k, &v[k], 4);
          break;
        case WeightType::f16:
          h = core::f32_to_f16(v[k]);
          std::memcpy(row + 2 * k, &h, 2);
          break;
        case WeightType::bf16:
          h = core::f32_to_bf16(v[k]);
          std::memcpy(row + 2 * k, &h, 2);
          break;
        default:
          break;
      }
    }
    if (const auto q = kernels::weight_quant_type(type); q && type != WeightType::q8_0) {
      // Scales up to 2^-4, so the products stay near the size of the other types' (about 1).
      random_blocks(*q, n_in / kernels::quant::quant_block_elems(*q), row, rng, 10, -4);
    }
    if (type == WeightType::q8_0) {
      for (int64_t b = 0; b < n_in / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[b * 32 + j]));
        const uint16_t d = core::f32_to_f16(amax / 127);
        const float dd = core::f16_to_f32(d);
        std::memcpy(row + kQ8Bytes * b, &d, 2);
        for (int j = 0; j < 32; ++j) {
          const float q = dd > 0 ? std::nearbyint(v[b * 32 + j] / dd) : 0.f;
          row[kQ8Bytes * b + 2 + j] =
              static_cast<uint8_t>(static_cast<int8_t>(std::clamp(q, -127.f, 127.f)));
        }
      }
    }
  }
  w.view = WeightView{type, n_out, n_in, base, row_pad ? stride : 0};
  return w;
}

struct Shape {
  WeightType type;
  int64_t m, n_in, n_out;
  bool bias;
  int64_t row_pad = 0, offset = 0, x_pad = 3, y_pad = 5;
  uint32_t seed = 1;
  kernels::LinearPath path = kernels::LinearPath::automatic;
  kernels::LinearLayout layout = kernels::LinearLayout::rows;
  std::string name() const {
    return std::string(kernels::weight_type_name(type)) +
           (layout == kernels::LinearLayout::interleaved ? " interleaved" : "") + " m" +
           std::to_string(m) + " n_in" + std::to_string(n_in) + " n_out" + std::to_string(n_out) +
           (bias ? " bias" : "") + " row_pad" + std::to_string(row_pad) + " offset" +
           std::to_string(offset) + " path" + std::to_string(static_cast<int>(path));
  }
};

// Runs one shape on every target and thread count; checks the tolerance and the guards.
void check(const Shape& s) {
  std::mt19937 rng(s.seed);
  const Weight w = make_weight(s.type, s.n_out, s.n_in, s.row_pad, s.offset, rng);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> bias(static_cast<size_t>(s.n_out));
  for (float& b : bias) b = u(rng);
  const int64_t ldx = s.n_in + s.x_pad, ldy = s.n_out + s.y_pad;
  // x [m, n_in] in rows of ldx; the padding is NaN, so reading it would poison the output.
  std::vector<float> x(static_cast<size_t>(s.m * ldx), std::numeric_limits<float>::quiet_NaN());
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t k = 0; k < s.n_in; ++k) x[i * ldx + k] = u(rng);

  const float* b = s.bias ? bias.data() : nullptr;
  std::vector<float> ref(static_cast<size_t>(s.m * ldy));
  kernels::linear_reference(w.view, b, x.data(), s.m, ldx, ref.data(), ldy);
  // Error scale per element: sum_k |x_ik w_ok| + |bias_o|.
  std::vector<double> scale(static_cast<size_t>(s.m * s.n_out));
  std::vector<float> wrow(static_cast<size_t>(s.n_in));
  for (int64_t o = 0; o < s.n_out; ++o) {
    kernels::weight_row_to_f32(w.view, o, wrow.data());
    for (int64_t i = 0; i < s.m; ++i) {
      double a = b ? std::fabs(b[o]) : 0.0;
      for (int64_t k = 0; k < s.n_in; ++k) a += std::fabs(double(x[i * ldx + k]) * wrow[k]);
      scale[i * s.n_out + o] = a;
    }
  }

  const Linear lin(w.view, b, kernels::LinearDot::exact, s.layout);
  const bool interleaved = s.layout == kernels::LinearLayout::interleaved &&
                           (s.type == WeightType::f16 || s.type == WeightType::bf16);
  ASSERT_EQ(lin.interleaved(), interleaved) << s.name();
  // The interleaved layout's matrix-vector arithmetic is stated exactly (linear_target.h): every
  // target gives the generic target's bits.
  const bool same_bits =
      interleaved &&
      (s.path == kernels::LinearPath::gemv ||
       (s.path == kernels::LinearPath::automatic && s.m <= kernels::linear_gemv_max_rows(s.type)));
  std::vector<float> first;
  for (const LinearTargetOps* t : kernels::cpu::linear_targets_runnable()) {
    for (int threads : {1, 2}) {
      const std::string where =
          s.name() + " target " + t->name + " threads " + std::to_string(threads);
      std::vector<float> y(static_cast<size_t>(s.m * ldy), kGuard);
      lin.forward_on(*t, s.path, x.data(), s.m, ldx, y.data(), ldy, threads);
      if (same_bits && first.empty()) first = y;
      if (same_bits) {
        EXPECT_EQ(std::memcmp(y.data(), first.data(), y.size() * 4), 0)
            << where << ": not the bits of " << kernels::cpu::linear_targets_runnable()[0]->name;
      }
      int bad = 0;
      for (int64_t i = 0; i < s.m && bad < 5; ++i) {
        for (int64_t o = 0; o < s.n_out && bad < 5; ++o) {
          const double err = std::fabs(double(y[i * ldy + o]) - ref[i * ldy + o]);
          if (!(err <= kTol * scale[i * s.n_out + o] + 1e-30)) {
            ++bad;
            ADD_FAILURE() << where << " y[" << i << ", " << o << "] = " << y[i * ldy + o]
                          << ", reference " << ref[i * ldy + o] << ", error " << err
                          << " > tolerance " << kTol * scale[i * s.n_out + o];
          }
        }
        for (int64_t o = s.n_out; o < ldy && i + 1 < s.m; ++o) {
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

// n, rounded up to whole blocks for the block formats.
int64_t fit(WeightType t, int64_t n) {
  const auto q = kernels::weight_quant_type(t);
  if (!q) return n;
  const int64_t b = kernels::quant::quant_block_elems(*q);
  return (n + b - 1) / b * b;
}

std::vector<int64_t> n_in_choices(WeightType t) {
  if (const auto q = kernels::weight_quant_type(t)) {
    if (kernels::quant::quant_block_elems(*q) == 256) return {256, 512, 768, 1280};
    return {32, 64, 96, 160, 320, 1088};
  }
  return {1, 7, 8, 15, 16, 17, 33, 100, 257, 1000};
}

TEST(Linear, RandomShapesEveryTypeAndPath) {
  std::mt19937 rng(7);
  const int64_t ms[] = {1, 2, 3, 5, 17, 64, 300};
  const int64_t n_outs[] = {1, 3, 5, 37, 129};
  for (WeightType type : kTypes) {
    const auto n_ins = n_in_choices(type);
    for (int64_t m : ms) {
      for (int c = 0; c < cases(m >= 64 ? 3 : 8); ++c) {
        Shape s{type, m, n_ins[rng() % n_ins.size()], n_outs[rng() % 5], rng() % 2 == 0};
        // Keep the reference cheap (the K formats' rows are whole blocks of 256).
        if (m >= 64) s.n_in = std::min<int64_t>(s.n_in, n_ins.front() == 256 ? 256 : 320);
        s.row_pad = rng() % 3 == 0 ? 2 * (1 + rng() % 5) : 0;
        s.x_pad = rng() % 4;
        s.y_pad = 1 + rng() % 4;
        s.seed = static_cast<uint32_t>(rng());
        // Every m on the automatic path and, in turn, forced onto each of the two paths.
        s.path = static_cast<kernels::LinearPath>(c % 3);
        check(s);
        s.layout = kernels::LinearLayout::interleaved;  // f16/bf16 copied; the others ignore it
        check(s);
      }
    }
  }
}

// The input gradient dx = dy · W (Linear::backward_input) against its double-accumulating twin,
// for every weight type, strided dy and dx with guard values, overwritten and accumulated. The
// tolerance is the forward's, per element relative to sum_o |dy_o w_ok| (plus the old value when
// accumulating): the same fp32 products summed by the library in another order. Panels: n_out up
// to 2,200 rows of 2,048 columns cross the 16 MiB panel boundary of the converted types.
TEST(Linear, BackwardInputMatchesTheReference) {
  std::mt19937 rng(11);
  struct Case {
    int64_t m, n_in, n_out;
  };
  for (WeightType type : kTypes) {
    const auto n_ins = n_in_choices(type);
    std::vector<Case> cases_list = {
        {1, n_ins.front(), 3}, {5, n_ins.back(), 37}, {33, n_ins[1], 129}};
    if (type == WeightType::f16 || type == WeightType::q8_0) cases_list.push_back({3, 2048, 2200});
    for (const Case& c : cases_list) {
      for (const auto layout : {kernels::LinearLayout::rows, kernels::LinearLayout::interleaved}) {
        for (bool accumulate : {false, true}) {
          const Weight w = make_weight(type, c.n_out, c.n_in, rng() % 2 ? 6 : 0, 0, rng);
          std::uniform_real_distribution<float> u(-1.f, 1.f);
          const int64_t lddy = c.n_out + 2, lddx = c.n_in + 3;
          std::vector<float> dy(static_cast<size_t>(c.m * lddy),
                                std::numeric_limits<float>::quiet_NaN());
          for (int64_t i = 0; i < c.m; ++i)
            for (int64_t o = 0; o < c.n_out; ++o) dy[i * lddy + o] = u(rng);
          std::vector<float> dx(static_cast<size_t>(c.m * lddx), kGuard), old(dx.size());
          for (int64_t i = 0; i < c.m; ++i)
            for (int64_t k = 0; k < c.n_in; ++k) dx[i * lddx + k] = u(rng);
          old = dx;
          std::vector<float> ref(dx.size());
          kernels::linear_backward_reference(w.view, dy.data(), c.m, lddy, ref.data(), lddx);
          std::vector<double> scale(static_cast<size_t>(c.m * c.n_in));
          std::vector<float> wrow(static_cast<size_t>(c.n_in));
          for (int64_t o = 0; o < c.n_out; ++o) {
            kernels::weight_row_to_f32(w.view, o, wrow.data());
            for (int64_t i = 0; i < c.m; ++i)
              for (int64_t k = 0; k < c.n_in; ++k)
                scale[i * c.n_in + k] += std::fabs(double(dy[i * lddy + o]) * wrow[k]);
          }
          const Linear lin(w.view, nullptr, kernels::LinearDot::exact, layout);
          lin.backward_input(dy.data(), c.m, lddy, dx.data(), lddx, accumulate, 2);
          int bad = 0;
          for (int64_t i = 0; i < c.m && bad < 5; ++i) {
            for (int64_t k = 0; k < lddx && bad < 5; ++k) {
              const size_t at = static_cast<size_t>(i * lddx + k);
              if (k >= c.n_in) {
                if (dx[at] != kGuard) ++bad, ADD_FAILURE() << "wrote the padding dx[" << i << "]";
                continue;
              }
              const double want = ref[at] + (accumulate ? double(old[at]) : 0.0);
              const double tol =
                  kTol * (scale[i * c.n_in + k] + (accumulate ? std::fabs(old[at]) : 0.0)) + 1e-30;
              if (!(std::fabs(dx[at] - want) <= tol)) {
                ++bad;
                ADD_FAILURE() << kernels::weight_type_name(type) << " m" << c.m << " n_in" << c.n_in
                              << " n_out" << c.n_out << " accumulate " << accumulate << ": dx[" << i
                              << ", " << k << "] = " << dx[at] << ", reference " << want
                              << (lin.interleaved() ? " (interleaved)" : "");
              }
            }
          }
        }
      }
    }
  }
}

// m just below and above the switch from the matrix-vector kernels to the GEMM library.
TEST(Linear, AroundTheCrossover) {
  for (WeightType type : kTypes) {
    const int64_t mx = kernels::linear_gemv_max_rows(type);
    for (int64_t m : {mx - 1, mx, mx + 1}) {
      if (m < 1) continue;
      check(Shape{type, m, fit(type, 250), 67, true});
    }
  }
}

// Large enough that several work items of both paths run on both threads.
TEST(Linear, ManyWorkItems) {
  for (WeightType type : kTypes) {
    for (int64_t m : {int64_t{1}, int64_t{4}, int64_t{40}})
      check(Shape{type, m, fit(type, 515), cases(8) > 2 ? 1100 : 300, true});
  }
}

// fp32 rows that are not 4-byte aligned (an odd row stride or data offset in a mapped file) go
// through the converting path instead of being handed to BLAS in place.
TEST(Linear, UnalignedF32) {
  for (int64_t m : {int64_t{1}, int64_t{20}}) {
    Shape s{WeightType::f32, m, 45, 29, true};
    s.row_pad = 2;
    s.offset = 1;
    check(s);
  }
}

// The converting GEMM path keeps its weight panels in the caller's LinearScratch (one per
// thread): reused across calls, the same result as a call with scratch of its own, freed by
// release(). Skipped without a GEMM library (then no panel is converted).
TEST(Linear, ConvertedPanelsLiveInTheCallersScratch) {
  if (!kernels::cpu::gemm_available()) GTEST_SKIP() << "no GEMM library in this build";
  std::mt19937 rng(11);
  const int64_t m = 40, n_in = 96, n_out = 70;
  const Weight w = make_weight(WeightType::f16, n_out, n_in, 0, 0, rng);
  const Linear lin(w.view);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(static_cast<size_t>(m * n_in));
  for (float& v : x) v = u(rng);
  std::vector<float> own(static_cast<size_t>(m * n_out)), kept(own.size()), again(own.size());
  // One thread: the same panels in the same order on every call.
  lin.forward(x.data(), m, n_in, own.data(), n_out, 1);  // scratch of its own
  kernels::LinearScratch scratch;
  lin.forward(x.data(), m, n_in, kept.data(), n_out, 1, &scratch);
  EXPECT_EQ(own, kept);
  const size_t bytes = scratch.bytes();
  EXPECT_GE(bytes, static_cast<size_t>(n_in) * sizeof(float));  // at least one converted row
  lin.forward(x.data(), m, n_in, again.data(), n_out, 1, &scratch);
  EXPECT_EQ(own, again);
  EXPECT_EQ(scratch.bytes(), bytes);  // reused, not grown
  scratch.release();
  EXPECT_EQ(scratch.bytes(), 0u);
}

TEST(Linear, ConvertersMatchTheScalarRowReader) {
  std::mt19937 rng(3);
  for (WeightType type : kTypes) {
    const int64_t n_in = fit(type, 37);
    const Weight w = make_weight(type, 5, n_in, 6, 0, rng);
    const int64_t stride = w.view.row_bytes;
    std::vector<float> expect(static_cast<size_t>(n_in));
    for (const LinearTargetOps* t : kernels::cpu::linear_targets_runnable()) {
      std::vector<float> got(static_cast<size_t>(4 * (n_in + 1)), kGuard);
      t->to_f32(type, static_cast<const uint8_t*>(w.view.data), stride, n_in, 1, 5, got.data(),
                n_in + 1);
      for (int64_t o = 1; o < 5; ++o) {
        kernels::weight_row_to_f32(w.view, o, expect.data());
        for (int64_t k = 0; k < n_in; ++k) {
          ASSERT_EQ(got[(o - 1) * (n_in + 1) + k], expect[k])
              << t->name << " row " << o << " k " << k;
        }
        if (o < 4) {
          EXPECT_EQ(got[(o - 1) * (n_in + 1) + n_in], kGuard);
        }
      }
    }
  }
}

// The SIMD block decoders against the scalar dequantizer (the oracle, itself checked against
// llama.cpp's hashes in tests/formats/quant_dequant_test.cpp): bit for bit, on random blocks with
// scales from tiny to large, at every offset of a chunk.
TEST(Linear, QuantDecodersMatchTheScalarDequantizerBitForBit) {
  using namespace kernels::quant;
  std::mt19937 rng(11);
  for (const QuantFormat& f : kQuantFormats) {
    for (int c = 0; c < cases(20); ++c) {
      const int64_t n_blocks = 1 + rng() % (f.block_elems == 256 ? 4 : 24);
      std::vector<uint8_t> blocks(static_cast<size_t>(n_blocks * f.block_bytes));
      random_blocks(f.type, n_blocks, blocks.data(), rng, 24, 15);
      const int64_t n = n_blocks * f.block_elems;
      std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), kGuard);
      dequantize(f.type, blocks.data(), n, want.data());
      const int64_t k0 = f.block_elems * (rng() % n_blocks);
      avx2::decode(f.type, blocks.data(), k0, n - k0, got.data());
      for (int64_t k = 0; k < n - k0; ++k) {
        ASSERT_EQ(std::memcmp(&got[k], &want[k0 + k], 4), 0)
            << f.name << " value " << k0 + k << ": " << got[k] << " vs " << want[k0 + k];
      }
    }
  }
}

// Batch invariance (qkv serve's batched decode steps, qkv::eval_batch): on the matrix-vector path
// a row's result is bitwise the same whatever the other rows and their number, on every target,
// type and thread count: calls of 1..9 rows against one of 11. A kernel whose accumulation
// depended on the row group (1..kGemvRows rows per pass, AVX-512 tiles of up to 4 rows) or on
// where the threads cut the outputs would fail here.
TEST(Linear, MatrixVectorRowsDoNotDependOnTheBatch) {
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (WeightType type : kTypes) {
    // 4400: rows longer than one row of x in half of L1, which one row of x takes several weight
    // rows per pass (f32/f16/bf16 at m = 1).
    for (const int64_t n_in : {fit(type, 300), fit(type, 4400)}) {
      const int64_t n_out = 37;
      const Weight w = make_weight(type, n_out, n_in, 0, 0, rng);
      std::vector<float> bias(static_cast<size_t>(n_out));
      for (float& b : bias) b = u(rng);
      for (const auto layout : {kernels::LinearLayout::rows, kernels::LinearLayout::interleaved}) {
        const Linear lin(w.view, bias.data(), kernels::LinearDot::exact, layout);
        constexpr int64_t kBatch = 11;  // 2 full groups of 4 rows and a group of 3
        std::vector<float> x(static_cast<size_t>(kBatch * n_in));
        for (float& f : x) f = u(rng);
        for (const LinearTargetOps* t : kernels::cpu::linear_targets_runnable()) {
          for (int threads : {1, 2}) {
            std::vector<float> all(static_cast<size_t>(kBatch * n_out));
            lin.forward_on(*t, kernels::LinearPath::gemv, x.data(), kBatch, n_in, all.data(), n_out,
                           threads);
            for (int64_t i = 0; i < kBatch; ++i) {
              for (int64_t m = 1; m <= 9 && i + m <= kBatch; ++m) {
                std::vector<float> part(static_cast<size_t>(m * n_out));
                lin.forward_on(*t, kernels::LinearPath::gemv, x.data() + i * n_in, m, n_in,
                               part.data(), n_out, 3 - threads);
                for (int64_t o = 0; o < m * n_out; ++o) {
                  ASSERT_EQ(std::memcmp(&part[o], &all[i * n_out + o], 4), 0)
                      << t->name << " " << kernels::weight_type_name(type)
                      << (lin.interleaved() ? " interleaved" : "") << " row " << i + o / n_out
                      << " in a call of " << m << " rows: " << part[o] << " vs in the batch of "
                      << kBatch << ": " << all[i * n_out + o];
                }
              }
            }
          }
        }
      }
    }
  }
}

// fp32/f16/bf16 weights read from a memory-mapped model file are copied once into memory of
// Linear's own (huge pages: decode streams them; f16/bf16 interleaved where asked) and the file's
// pages dropped. The copy must give the bits of the same layout built from memory on both paths
// and in backward_input, with padded rows in the file, and leave the file's bytes as they were.
TEST(Linear, MappedFloatWeightsAreCopiedWithTheSameResults) {
  std::mt19937 rng(41);
  for (WeightType type : {WeightType::f32, WeightType::f16, WeightType::bf16}) {
    const int64_t n_out = 70, n_in = 4400, pad = 12;
    const Weight w = make_weight(type, n_out, n_in, pad, 0, rng);
    const size_t bytes = w.bytes.size();
    const MappedCopy map(w.bytes.data(), bytes);
    ASSERT_NE(map.data(), nullptr);
    WeightView mv = w.view;
    mv.data = map.data();
    const Linear in_place(w.view), copied(mv);
    const auto* lo = map.map_begin();
    const auto* got_data = static_cast<const uint8_t*>(copied.view().data);
    EXPECT_TRUE(got_data < lo || got_data >= lo + map.map_size())
        << kernels::weight_type_name(type) << ": the weight was not copied out of the mapping";
    // The interleaved layout (as models load f16/bf16) from the mapping, against the same layout
    // built from the heap copy.
    constexpr auto kIl = kernels::LinearLayout::interleaved;
    const Linear il_heap(w.view, nullptr, kernels::LinearDot::exact, kIl),
        il_mapped(mv, nullptr, kernels::LinearDot::exact, kIl);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t m : {1, 3, 40}) {
      std::vector<float> x(static_cast<size_t>(m * n_in));
      for (float& f : x) f = u(rng);
      std::vector<float> dy(static_cast<size_t>(m * n_out));
      for (float& f : dy) f = u(rng);
      for (const auto& [a, b] : {std::pair{&in_place, &copied}, std::pair{&il_heap, &il_mapped}}) {
        const std::string what = std::string(kernels::weight_type_name(type)) +
                                 (b->interleaved() ? " interleaved" : "") + " m " +
                                 std::to_string(m);
        std::vector<float> want(static_cast<size_t>(m * n_out)), got(want.size());
        a->forward(x.data(), m, n_in, want.data(), n_out, 2);
        b->forward(x.data(), m, n_in, got.data(), n_out, 2);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << what;
        std::vector<float> dx_want(static_cast<size_t>(m * n_in)), dx_got(dx_want.size());
        a->backward_input(dy.data(), m, n_out, dx_want.data(), n_in, false, 2);
        b->backward_input(dy.data(), m, n_out, dx_got.data(), n_in, false, 2);
        EXPECT_EQ(std::memcmp(dx_got.data(), dx_want.data(), dx_got.size() * 4), 0)
            << what << " backward";
      }
    }
    EXPECT_EQ(std::memcmp(mv.data, w.view.data, bytes), 0) << "the mapped weight changed";
  }
}

// Every target the CPU has is run by the tests above; the AVX-512 one must be among them (and be
// the one chosen) on a CPU that has it, or its kernels would go untested and unused.
TEST(Linear, TheBestTargetIsRunnableAndSelected) {
  const auto targets = kernels::cpu::linear_targets_runnable();
  if (!core::cpu_features().has_avx512_target()) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::vector<std::string> names;
  for (const LinearTargetOps* t : targets) names.push_back(t->name);
  EXPECT_NE(std::find(names.begin(), names.end(), "avx512"), names.end());
  if (!std::getenv("QKV_CPU_TARGET")) {
    EXPECT_STREQ(kernels::cpu::linear_target_selected().name, "avx512");
  }
}

// m = 0 writes nothing on any target or path (y keeps its guard values, the bias is not added),
// accepts null x and y, and still checks the strides.
TEST(Linear, ZeroRowsIsANoOp) {
  std::mt19937 rng(1);
  const Weight w = make_weight(WeightType::f16, 3, 8, 0, 0, rng);
  const float bias[3] = {1.f, 2.f, 3.f};
  const Linear lin(w.view, bias);
  const std::vector<float> x(16, 1.f);
  for (const auto* target : kernels::cpu::linear_targets_runnable()) {
    for (kernels::LinearPath path :
         {kernels::LinearPath::automatic, kernels::LinearPath::gemv, kernels::LinearPath::gemm}) {
      std::vector<float> y(8, kGuard);
      lin.forward_on(*target, path, x.data(), 0, 8, y.data(), 4);
      for (float v : y) EXPECT_EQ(v, kGuard) << target->name;
      EXPECT_NO_THROW(lin.forward_on(*target, path, nullptr, 0, 8, nullptr, 3));
    }
  }
  EXPECT_THROW(lin.forward(x.data(), 0, 7, nullptr, 3), InvalidArgument);  // ldx < n_in
  EXPECT_THROW(lin.forward(x.data(), 0, 8, nullptr, 2), InvalidArgument);  // ldy < n_out
  EXPECT_THROW(lin.forward(x.data(), -1, 8, nullptr, 3), InvalidArgument);
}

TEST(Linear, RejectsBadWeightsAndStrides) {
  std::vector<uint8_t> buf(4096);
  const auto make = [&](WeightType t, int64_t n_out, int64_t n_in, int64_t row_bytes) {
    return Linear(WeightView{t, n_out, n_in, buf.data(), row_bytes});
  };
  EXPECT_THROW(make(WeightType::f32, 0, 8, 0), InvalidArgument);
  EXPECT_THROW(make(WeightType::f32, 4, 0, 0), InvalidArgument);
  EXPECT_THROW(Linear(WeightView{WeightType::f16, 4, 8, nullptr, 0}), InvalidArgument);
  EXPECT_THROW(make(WeightType::q8_0, 4, 48, 0), InvalidArgument);
  EXPECT_THROW(make(WeightType::f16, 4, 8, 15), InvalidArgument);
  EXPECT_THROW(make(WeightType::q8_0, 4, 64, 67), InvalidArgument);
  EXPECT_NO_THROW(make(WeightType::q8_0, 4, 64, 68));
  EXPECT_THROW(make(WeightType::q4_k, 4, 128, 0), InvalidArgument);  // not whole blocks of 256
  EXPECT_THROW(make(WeightType::q4_0, 4, 48, 0), InvalidArgument);
  EXPECT_NO_THROW(make(WeightType::q6_k, 2, 256, 0));

  const Linear lin = make(WeightType::f32, 4, 8, 0);
  std::vector<float> x(64), y(64);
  EXPECT_THROW(lin.forward(x.data(), 2, 7, y.data(), 4), InvalidArgument);   // ldx < n_in
  EXPECT_THROW(lin.forward(x.data(), 2, 8, y.data(), 3), InvalidArgument);   // ldy < n_out
  EXPECT_THROW(lin.forward(x.data(), -1, 8, y.data(), 4), InvalidArgument);  // m < 0
  EXPECT_THROW(lin.forward(nullptr, 1, 8, y.data(), 4), InvalidArgument);
  EXPECT_THROW(Linear().forward(x.data(), 1, 8, y.data(), 4), InvalidArgument);
}

// The project runs OpenMP everywhere; the pthread OpenBLAS would start a second thread pool.
TEST(Linear, GemmLibraryIsTheOpenMPBuild) {
  if (!kernels::cpu::gemm_available()) GTEST_SKIP() << "built without a GEMM library";
  EXPECT_NE(kernels::cpu::gemm_library_name().find("openmp"), std::string_view::npos)
      << kernels::cpu::gemm_library_name();
  EXPECT_NE(kernels::linear_backend_name().find(kernels::cpu::linear_target_selected().name),
            std::string_view::npos);
}

}  // namespace
}  // namespace qkv::test
