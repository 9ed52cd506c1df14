// The materialised peer of `qkv bench attention` (GEMM library, S in memory, row softmax) against
// the reference, so that the time it reports is the time of a correct computation; and the row
// softmax each SIMD target gives it, against double precision.
//
// Tolerance: 3e-5 of max |out - ref| / (1 + |ref|), as for the fused kernel (attention_test.cpp):
// fp32 products of length head_dim and n_kv, and the exp2 polynomial (2e-7).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "attention_harness.h"
#include "qkv/error.h"
#include "qkv_bench/attention_materialised.h"
#include "qkv_bench/probe_targets.h"

namespace qkv::test {
namespace {

constexpr double kTol = 3e-5;

double max_rel_err(const Output& a, const Output& b) {
  const auto& s = a.view.shape;
  double e = 0;
  for (int64_t x = 0; x < s[0]; ++x)
    for (int64_t i = 0; i < s[1]; ++i)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t c = 0; c < s[3]; ++c) {
          const double r = b.at(x, i, h, c);
          e = std::max(e, std::abs(a.at(x, i, h, c) - r) / (1 + std::abs(r)));
        }
  return e;
}

TEST(AttentionMaterialised, MatchesTheReference) {
  if (!kernels::cpu::attention_materialised_available()) {
    GTEST_SKIP() << "built without a GEMM library";
  }
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const DType dts[] = {DType::f32, DType::f16, DType::bf16};
  for (int n = 0; n < 40; ++n) {
    Case c;
    c.seed = rng();
    c.batch = pick(1, 2);
    c.n_head_kv = pick(1, 3);
    c.n_head = c.n_head_kv * pick(1, 4);
    c.head_dim = pick(1, 80);
    c.head_dim_v = pick(0, 2) == 0 ? pick(1, 80) : c.head_dim;
    c.n_kv = pick(1, 300);
    c.n_q = pick(0, 2) == 0 ? c.n_kv : pick(1, 200);  // n_q > n_kv too: rows with no keys
    c.kv_dtype = dts[pick(0, 2)];
    c.layout = pick(0, 1) == 0 ? Layout::bshd : Layout::bhsd;
    c.opt.causal = pick(0, 1);
    const Inputs in = make_inputs(c);
    const std::array<int64_t, 4> oshape{c.batch, c.n_q, c.n_head, c.head_dim_v};
    Output got(oshape, c.layout), ref(oshape, Layout::bshd);
    kernels::cpu::attention_materialised(in.q.view, in.k.view, in.v.view, got.view, c.opt.causal,
                                         1 + n % 2);
    AttentionOptions ro = c.opt;
    ro.backend = Backend::reference;
    attention(in.q.view, in.k.view, in.v.view, ref.view, {}, ro);
    EXPECT_LE(max_rel_err(got, ref), kTol) << c.name();
    EXPECT_TRUE(got.guards_intact()) << "wrote outside the output view: " << c.name();
  }
}

TEST(AttentionMaterialised, RejectsWhatItDoesNotSupport) {
  if (!kernels::cpu::attention_materialised_available()) {
    GTEST_SKIP() << "built without a GEMM library";
  }
  Case c;
  c.layout = Layout::gapped;  // q and out with stride 2 along head_dim
  const Inputs in = make_inputs(c);
  Output out({c.batch, c.n_q, c.n_head, c.head_dim_v}, c.layout);
  EXPECT_THROW(
      kernels::cpu::attention_materialised(in.q.view, in.k.view, in.v.view, out.view, false, 1),
      InvalidArgument);
  Case d;
  const Inputs di = make_inputs(d);
  Output wrong({d.batch, d.n_q, d.n_head, d.head_dim_v + 1}, d.layout);
  EXPECT_THROW(
      kernels::cpu::attention_materialised(di.q.view, di.k.view, di.v.view, wrong.view, false, 1),
      InvalidArgument);
}

TEST(AttentionMaterialised, RowSoftmaxOnEveryTarget) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-30.f, 30.f);
  for (const auto* t : bench::probe_ops_runnable()) {
    for (int64_t n : {1, 7, 8, 16, 33, 100}) {
      for (int64_t valid : {int64_t{-2}, int64_t{0}, int64_t{1}, n / 2, n - 1, n, n + 3}) {
        std::vector<float> s(static_cast<size_t>(n + 8));
        for (auto& x : s) x = u(rng);
        const std::vector<float> in = s;
        t->softmax_row(s.data(), valid, n);
        const int64_t nv = std::clamp<int64_t>(valid, 0, n);
        double m = -std::numeric_limits<double>::infinity(), sum = 0;
        for (int64_t j = 0; j < nv; ++j) m = std::max(m, double{in[j]});
        for (int64_t j = 0; j < nv; ++j) sum += std::exp(in[j] - m);
        for (int64_t j = 0; j < n; ++j) {
          const double want = j < nv ? std::exp(in[j] - m) / sum : 0.0;
          EXPECT_NEAR(s[j], want, 1e-6 * (1 + want))
              << t->name << " n " << n << " valid " << valid << " j " << j;
        }
        for (int64_t j = n; j < n + 8; ++j) EXPECT_EQ(s[j], in[j]) << "wrote past the row";
      }
    }
    // A row whose valid entries are all -inf gives zeros, not NaN.
    std::vector<float> s(10, -std::numeric_limits<float>::infinity());
    t->softmax_row(s.data(), 10, 10);
    for (float x : s) EXPECT_EQ(x, 0.f) << t->name;
  }
}

TEST(AttentionMaterialised, ToF32OnEveryTarget) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-4.f, 4.f);
  for (const auto* t : bench::probe_ops_runnable()) {
    for (int64_t n : {1, 9, 64, 71}) {
      std::vector<uint16_t> h(static_cast<size_t>(n)), b(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        h[i] = core::f32_to_f16(u(rng));
        b[i] = core::f32_to_bf16(u(rng));
      }
      std::vector<float> got(static_cast<size_t>(n) + 1, 99.f);
      t->to_f32(h.data(), DType::f16, got.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(got[i], core::f16_to_f32(h[i])) << t->name;
      t->to_f32(b.data(), DType::bf16, got.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(got[i], core::bf16_to_f32(b[i])) << t->name;
      EXPECT_EQ(got[n], 99.f) << "wrote past n";
    }
  }
}

}  // namespace
}  // namespace qkv::test
