// Interleaved int8 weights (kernels/quant/repack.h), for every format with a layout:
//   - the reference twin (canonical fp32 chain) against the double oracle dot_int8_reference,
//     which reads the original blocks: proves the layout holds the right values;
//   - every target's kernels and Linear's int8 forward against the twin, bit for bit (the
//     canonical arithmetic is the same sequence of fp32 operations everywhere), with n_out not a
//     multiple of 16, padded row strides, bias or none, m = 1..17, 1-3 threads, guard values
//     around y;
//   - batch invariance: a row's bits do not depend on the other rows of the call or on m.
//
// Twin vs oracle tolerance: 1e-5 * (sum |block terms| + |bias|), the oracle's scale, as in
// linear_int8_test: each block term is rounded three times (d_w * d_a, (float)I_b, the fma), 2^-24
// of a partial sum bounded by that scale each, over at most 34 blocks here (< 6.1e-6); a wrong
// code or scale (>= 1 / n_blocks of the scale, >= 3e-2) fails.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/linear.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/repack.h"
#include "mapped_file.h"
#include "random_blocks.h"

namespace qkv::test {
namespace {

using kernels::Linear;
using kernels::LinearDot;
using kernels::WeightType;
using kernels::WeightView;
using kernels::cpu::LinearTargetOps;
namespace quant = kernels::quant;

constexpr float kGuard = -12345.5f;

std::vector<quant::QuantType> repacked_types() {
  std::vector<quant::QuantType> out;
  for (const quant::QuantFormat& f : quant::kQuantFormats) {
    if (quant::repack_supported(f.type)) out.push_back(f.type);
  }
  return out;
}

// Random blocks (every code byte random, Q8_0's -128 included), f16 scales in +-[2^-10, 2^-4);
// rows 32 bytes past a 64-byte boundary (as in a GGUF file), `row_pad` bytes between rows.
struct Weight {
  std::vector<uint8_t> bytes;
  WeightView view;
  int64_t stride = 0;
};

Weight make_weight(quant::QuantType q, int64_t n_out, int64_t n_in, int64_t row_pad,
                   std::mt19937& rng) {
  const WeightType type = kernels::weight_type_of(q);
  Weight w;
  w.stride = quant::quant_row_bytes(q, n_in) + row_pad;
  w.bytes.resize(static_cast<size_t>(n_out * w.stride + 64));
  uint8_t* base = w.bytes.data() + 32;
  random_block_rows(q, base, n_out, n_in, w.stride, rng, 10, -4);
  w.view = WeightView{type, n_out, n_in, base, row_pad ? w.stride : 0};
  return w;
}

std::vector<float> make_x(int64_t m, int64_t n_in, int64_t ldx, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(m * ldx), std::numeric_limits<float>::quiet_NaN());
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t k = 0; k < n_in; ++k) {
      float v = u(rng);
      if (k / 32 % 5 == 2) v *= 40.f;
      if (i % 2 == 1 && k / 32 == 1) v = 0.f;
      x[i * ldx + k] = v;
    }
  }
  return x;
}

// The packed weight, 64-byte aligned.
struct Packed {
  std::vector<uint8_t> bytes;
  const uint8_t* data = nullptr;
};

Packed pack(quant::QuantType q, const Weight& w) {
  Packed p;
  const int64_t bytes = quant::repacked_bytes(q, w.view.n_out, w.view.n_in);
  p.bytes.assign(static_cast<size_t>(bytes + 64), 0xEE);
  auto* out = p.bytes.data() + (64 - reinterpret_cast<uintptr_t>(p.bytes.data()) % 64) % 64;
  const int64_t groups = (w.view.n_out + quant::kRepackRows - 1) / quant::kRepackRows;
  // In two calls, as threads split the groups.
  quant::repack(q, static_cast<const uint8_t*>(w.view.data), w.stride, w.view.n_out, w.view.n_in, 0,
                groups / 2, out);
  quant::repack(q, static_cast<const uint8_t*>(w.view.data), w.stride, w.view.n_out, w.view.n_in,
                groups / 2, groups, out);
  p.data = out;
  return p;
}

// Quantized rows of x, ld bytes apart.
std::vector<uint8_t> quantize_rows(quant::QuantType q, const std::vector<float>& x, int64_t m,
                                   int64_t n_in, int64_t ldx, int64_t ld) {
  std::vector<uint8_t> xq(static_cast<size_t>(m * ld));
  for (int64_t i = 0; i < m; ++i) {
    quant::quantize_act_reference(q, x.data() + i * ldx, n_in, xq.data() + i * ld);
  }
  return xq;
}

TEST(Repack, LayoutSizes) {
  for (quant::QuantType q : repacked_types()) {
    const int64_t e = quant::quant_block_elems(q);
    EXPECT_EQ(quant::repacked_group_bytes(q, 7 * e) % 64, 0) << quant::quant_format(q).name;
    EXPECT_EQ(quant::repacked_bytes(q, 17, 7 * e), 2 * quant::repacked_group_bytes(q, 7 * e));
    // No more than the format's own bytes plus the padding to 64 of the two regions; the K
    // formats unpack their 6-bit scales or widen d to fp32: at most 4 bytes more per row and
    // super-block of 256 (2.8% of Q4_K, repack_k.cpp).
    const int64_t k_extra = e == quant::kQKK ? 4 * quant::kRepackRows * 64 : 0;
    EXPECT_LE(quant::repacked_group_bytes(q, 64 * e),
              quant::kRepackRows * quant::quant_row_bytes(q, 64 * e) + 128 + k_extra)
        << quant::quant_format(q).name;
  }
  EXPECT_FALSE(quant::repack_supported(quant::QuantType::q2_k));
  EXPECT_FALSE(quant::repack_supported(quant::QuantType::q3_k));
}

// The twin reads the layout; the oracle reads the original blocks.
TEST(Repack, ReferenceMatchesTheOracleOfTheOriginalBlocks) {
  std::mt19937 rng(23);
  for (quant::QuantType q : repacked_types()) {
    const int64_t e = quant::quant_block_elems(q);
    for (int64_t n_in : {e, 3 * e, (e == 32 ? 34 : 4) * e}) {
      const int64_t n_out = 37, m = 3, ldy = n_out + 3;
      const Weight w = make_weight(q, n_out, n_in, 32, rng);
      const Packed p = pack(q, w);
      const std::vector<float> x = make_x(m, n_in, n_in, rng);
      const int64_t ld = quant::act_row_bytes(q, n_in);
      const std::vector<uint8_t> xq = quantize_rows(q, x, m, n_in, n_in, ld);
      std::vector<float> bias(static_cast<size_t>(n_out));
      for (float& b : bias) b = std::uniform_real_distribution<float>(-1.f, 1.f)(rng);
      std::vector<float> y(static_cast<size_t>(m * ldy), kGuard);
      quant::repacked_gemm_reference(q, p.data, n_out, n_in, xq.data(), ld, m, 0, 3, y.data(), ldy,
                                     bias.data());
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t o = 0; o < n_out; ++o) {
          double scale = 0;
          const double want =
              quant::dot_int8_reference(q, static_cast<const uint8_t*>(w.view.data) + o * w.stride,
                                        xq.data() + i * ld, n_in, &scale) +
              bias[o];
          EXPECT_NEAR(y[i * ldy + o], want, 1e-5 * (scale + std::fabs(bias[o])))
              << quant::quant_format(q).name << " n_in " << n_in << " y[" << i << ", " << o << "]";
        }
        for (int64_t o = n_out; o < ldy; ++o) EXPECT_EQ(y[i * ldy + o], kGuard);
      }
    }
  }
}

// Every target, directly on the packed groups and through Linear, equals the twin bit for bit.
TEST(Repack, EveryTargetIsTheReferenceBitForBit) {
  std::mt19937 rng(29);
  for (quant::QuantType q : repacked_types()) {
    const int64_t e = quant::quant_block_elems(q);
    for (int64_t n_in : {e, 2 * e, (e == 32 ? 34 : 5) * e}) {
      for (int64_t n_out : {1, 15, 16, 17, 50}) {
        const int64_t row_pad = rng() % 2 ? 32 : 0, ldx = n_in + 5, ldy = n_out + 3;
        const Weight w = make_weight(q, n_out, n_in, row_pad, rng);
        const Packed p = pack(q, w);
        std::vector<float> bias(static_cast<size_t>(n_out));
        for (float& b : bias) b = std::uniform_real_distribution<float>(-1.f, 1.f)(rng);
        const int64_t m = 17;
        const std::vector<float> x = make_x(m, n_in, ldx, rng);
        const int64_t ld = (quant::act_row_bytes(q, n_in) + 63) / 64 * 64;
        const std::vector<uint8_t> xq = quantize_rows(q, x, m, n_in, ldx, ld);
        const int64_t groups = (n_out + 15) / 16;
        for (const float* b :
             {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
          std::vector<float> ref(static_cast<size_t>(m * ldy), kGuard);
          quant::repacked_gemm_reference(q, p.data, n_out, n_in, xq.data(), ld, m, 0, groups,
                                         ref.data(), ldy, b);
          const Linear lin(w.view, b, LinearDot::int8);
          for (const LinearTargetOps* t : kernels::cpu::linear_targets_runnable()) {
            const std::string where = std::string(quant::quant_format(q).name) + " n_in " +
                                      std::to_string(n_in) + " n_out " + std::to_string(n_out) +
                                      (b ? " bias" : "") + " target " + t->name;
            for (int64_t mm : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{9}, m}) {
              std::vector<float> y(static_cast<size_t>(mm * ldy), kGuard);
              const kernels::cpu::RepackedTask task{q,  p.data, n_out,    n_in, xq.data(),
                                                    ld, mm,     y.data(), ldy,  b};
              for (int64_t g = 0; g < groups; ++g) t->gemm_repacked(task, g, g + 1);
              ASSERT_EQ(std::memcmp(y.data(), ref.data(), y.size() * 4), 0)
                  << where << " m " << mm << " (kernel)";
              for (int threads : {1, 2, 3}) {
                std::vector<float> yl(static_cast<size_t>(mm * ldy), kGuard);
                lin.forward_on(*t, kernels::LinearPath::automatic, x.data(), mm, ldx, yl.data(),
                               ldy, threads);
                ASSERT_EQ(std::memcmp(yl.data(), ref.data(), yl.size() * 4), 0)
                    << where << " m " << mm << " threads " << threads << " (Linear)";
              }
            }
          }
        }
      }
    }
  }
}

// A row's bits whatever the call: m = 1..17 calls starting at every row, against one call of 17
// rows, on every target and 1 or 2 threads (more rows than one chunk of items: 70).
TEST(Repack, RowsDoNotDependOnTheBatch) {
  std::mt19937 rng(31);
  for (quant::QuantType q : repacked_types()) {
    const int64_t n_in = 4 * quant::quant_block_elems(q), n_out = 40;
    const Weight w = make_weight(q, n_out, n_in, 0, rng);
    const Linear lin(w.view, nullptr, LinearDot::int8);
    constexpr int64_t kBatch = 70;
    const std::vector<float> x = make_x(kBatch, n_in, n_in, rng);
    for (const LinearTargetOps* t : kernels::cpu::linear_targets_runnable()) {
      std::vector<float> all(static_cast<size_t>(kBatch * n_out));
      lin.forward_on(*t, kernels::LinearPath::automatic, x.data(), kBatch, n_in, all.data(), n_out,
                     2);
      for (int64_t i = 0; i < 17; ++i) {
        for (int64_t m = 1; m <= 17; ++m) {
          std::vector<float> part(static_cast<size_t>(m * n_out));
          lin.forward_on(*t, kernels::LinearPath::automatic, x.data() + i * n_in, m, n_in,
                         part.data(), n_out, 1 + static_cast<int>(m % 2));
          ASSERT_EQ(std::memcmp(part.data(), all.data() + i * n_out, part.size() * 4), 0)
              << t->name << " " << quant::quant_format(q).name << " rows " << i << ".." << i + m;
        }
      }
    }
  }
}

// A weight read from a memory-mapped file (as models are): after the copy, Linear drops the
// file's pages from the process; the original must still read back exactly (the embedding rows
// and the exact paths use it), and the int8 forward must not change. A writable buffer with the
// same bytes is left alone (checked by every other test here, whose weights are in vectors).
TEST(Repack, MappedFileWeightsStayReadable) {
  std::mt19937 rng(37);
  const quant::QuantType q = repacked_types().front();
  const int64_t n_out = 300, n_in = 64 * quant::quant_block_elems(q);
  const Weight w = make_weight(q, n_out, n_in, 0, rng);
  const size_t bytes = static_cast<size_t>(n_out * w.stride);
  const MappedCopy map(w.view.data, bytes);
  ASSERT_NE(map.data(), nullptr);
  WeightView mv = w.view;
  mv.data = map.data();
  const std::vector<float> x = make_x(3, n_in, n_in, rng);
  std::vector<float> want(static_cast<size_t>(3 * n_out)), got(want.size());
  Linear(w.view, nullptr, LinearDot::int8).forward(x.data(), 3, n_in, want.data(), n_out, 1);
  const Linear lin(mv, nullptr, LinearDot::int8);
  lin.forward(x.data(), 3, n_in, got.data(), n_out, 1);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0);
  EXPECT_EQ(std::memcmp(mv.data, w.view.data, bytes), 0) << "the mapped weight changed";
}

}  // namespace
}  // namespace qkv::test
