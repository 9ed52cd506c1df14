// Probabilities recomputed from the saved LSE equal the reference softmax, rows sum to one, and
// probs · V reproduces the fast kernel's output.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attention_harness.h"
#include "qkv/error.h"

namespace qkv::test {
namespace {

// The reference softmax row of (b, h, i), from the definition in attention.h.
std::vector<double> reference_row(const kernels::AttentionProblem& p, int64_t b, int64_t h,
                                  int64_t i) {
  std::vector<double> s(static_cast<size_t>(p.n_kv), -INFINITY);
  int64_t lo, hi;
  p.key_range(b, i, &lo, &hi);
  double m = -INFINITY;
  for (int64_t j = lo; j < hi; ++j) {
    double dot = 0;
    for (int64_t c = 0; c < p.head_dim; ++c) {
      dot += double(view_element(p.q, b, i, h, c)) * view_element(p.k, b, j, h / p.group, c);
    }
    s[j] = kernels::transform_score(p, b, h, i, j, dot * p.scale);
    m = std::max(m, s[j]);
  }
  double sum = 0;
  for (auto& x : s) x = m == -INFINITY ? 0 : std::exp(x - m), sum += x;
  for (auto& x : s) x = sum > 0 ? x / sum : 0;
  return s;
}

TEST(AttentionProbs, MatchReferenceAndReproduceOutput) {
  std::mt19937 rng(7);
  // Head sizes that are whole vectors for every target (the vector path when no soft-cap, ALiBi
  // or explicit mask applies) and odd ones (the scalar path).
  const int64_t dims[] = {24, 64, 17, 128, 32};
  const DType dtypes[] = {DType::f16, DType::f32, DType::bf16};
  for (int n = 0; n < 15; ++n) {
    Case c;
    c.batch = 2, c.n_q = 40 + n, c.n_kv = 90 + 7 * n, c.n_head = 4, c.n_head_kv = n % 2 ? 2 : 4;
    c.head_dim = dims[n % 5], c.head_dim_v = 24;
    c.kv_dtype = dtypes[n % 3];
    c.layout = static_cast<Layout>(n % 3);
    c.opt.causal = n % 2 == 0;
    if (n % 4 == 1) c.opt.window_left = 10;
    if (n % 4 == 3) c.alibi = {0.5f, 0.25f, 0.1f, 0.05f};
    if (n == 5) c.opt.softcap = 3.f;
    c.seed = rng();
    attach_options(c);
    const Inputs in = make_inputs(c);
    Output o({c.batch, c.n_q, c.n_head, c.head_dim_v}, Layout::bshd);
    attention(in.q.view, in.k.view, in.v.view, o.view, o.lse_view(), c.opt);
    const auto p = kernels::make_problem(in.q.view, in.k.view, in.v.view, o.view, {}, c.opt);

    const int64_t b = n % 2, h = n % 4;
    const std::vector<int64_t> rows{0, 3, c.n_q - 1};
    std::vector<float> probs(rows.size() * static_cast<size_t>(c.n_kv), -1.f);
    attention_probs(in.q.view, in.k.view, o.lse_view(), b, h, rows, probs.data(), c.opt);
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto ref = reference_row(p, b, h, rows[r]);
      double sum = 0;
      for (int64_t j = 0; j < c.n_kv; ++j) {
        const float pj = probs[r * c.n_kv + j];
        EXPECT_NEAR(pj, ref[j], 2e-6) << c.name() << " row " << rows[r] << " key " << j;
        sum += pj;
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
      for (int64_t d = 0; d < c.head_dim_v; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < c.n_kv; ++j) {
          acc += probs[r * c.n_kv + j] * view_element(in.v.view, b, j, h / p.group, d);
        }
        EXPECT_NEAR(acc, o.at(b, rows[r], h, d), 3e-5);
      }
    }
  }
}

TEST(AttentionProbs, RejectsBadRowsAndHeads) {
  std::vector<float> q(1 * 4 * 2 * 8, 0.f), k(1 * 6 * 2 * 8, 0.f), lse(8, 0.f), probs(64);
  auto qv = View4::dense(q.data(), DType::f32, {1, 4, 2, 8});
  auto kv = View4::dense(k.data(), DType::f32, {1, 6, 2, 8});
  const std::vector<int64_t> bad_row{4};
  EXPECT_THROW(attention_probs(qv, kv, lse, 0, 0, bad_row, probs.data()), InvalidArgument);
  const std::vector<int64_t> ok_row{1};
  EXPECT_THROW(attention_probs(qv, kv, lse, 0, 2, ok_row, probs.data()), InvalidArgument);
  EXPECT_THROW(attention_probs(qv, kv, {}, 0, 0, ok_row, probs.data()), InvalidArgument);
}

}  // namespace
}  // namespace qkv::test
