// Analyses on hand-built maps whose answers are known.
#include <gtest/gtest.h>

#include <cmath>

#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {
namespace {

// A causal map where every row puts all its mass on key f(i).
std::vector<float> one_hot(int64_t n, int64_t (*f)(int64_t)) {
  std::vector<float> m(static_cast<size_t>(n * n), 0.f);
  for (int64_t i = 0; i < n; ++i) m[static_cast<size_t>(i * n + f(i))] = 1.f;
  return m;
}

TEST(Analysis, EntropyOfOneHotIsZeroAndOfUniformIsLogN) {
  const int64_t n = 4;
  const std::vector<float> prev = one_hot(n, [](int64_t i) { return std::max<int64_t>(i - 1, 0); });
  for (double h : row_entropy(prev, n)) EXPECT_NEAR(h, 0.0, 1e-12);
  std::vector<float> causal_uniform(n * n, 0.f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) causal_uniform[i * n + j] = 1.f / float(i + 1);
  }
  const std::vector<double> h = row_entropy(causal_uniform, n);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(h[i], std::log(double(i + 1)), 1e-6);
  // Unnormalised rows are renormalised; empty rows give 0.
  std::vector<float> half(n * n, 0.f);
  half[1 * n + 0] = 0.25f;
  half[1 * n + 1] = 0.25f;
  EXPECT_NEAR(row_entropy(half, n)[1], std::log(2.0), 1e-6);
  EXPECT_EQ(row_entropy(half, n)[2], 0.0);
  EXPECT_THROW(row_entropy(half, n + 1), InvalidArgument);
}

TEST(Analysis, LookScoresFindPreviousFirstSelfSameWordAndInduction) {
  const int64_t n = 6;
  const std::vector<int32_t> ids = {1, 7, 8, 9, 7, 8};  // "7 8" repeats: an induction pattern
  const std::vector<int32_t> words = {0, 1, 1, 2, 3, 3};
  const LookScores prev =
      look_scores(one_hot(n, [](int64_t i) { return std::max<int64_t>(i - 1, 0); }), n, ids, words);
  EXPECT_DOUBLE_EQ(prev.previous, 1.0);
  EXPECT_DOUBLE_EQ(prev.first, 1.0 / 5);  // only row 1's previous token is the first
  EXPECT_DOUBLE_EQ(prev.self, 1.0 / 6);   // row 0 attends itself
  EXPECT_DOUBLE_EQ(prev.entropy, 0.0);
  // Rows with other tokens of their word: 1, 2, 4, 5; rows 2 and 5 look at them.
  EXPECT_DOUBLE_EQ(prev.same_word, 2.0 / 4);

  const LookScores sink =
      look_scores(one_hot(n, [](int64_t) -> int64_t { return 0; }), n, ids, words);
  EXPECT_DOUBLE_EQ(sink.first, 1.0);
  EXPECT_DOUBLE_EQ(sink.previous, 1.0 / 5);
  const LookScores self = look_scores(one_hot(n, [](int64_t i) { return i; }), n, ids, words);
  EXPECT_DOUBLE_EQ(self.self, 1.0);
  EXPECT_DOUBLE_EQ(self.same_word, 0.0);

  // Induction: row 4 (token 7) attends key 2 (after the earlier 7), row 5 (token 8) key 3.
  std::vector<float> ind = one_hot(n, [](int64_t i) { return i; });
  ind[4 * n + 4] = 0;
  ind[4 * n + 2] = 1;
  ind[5 * n + 5] = 0;
  ind[5 * n + 3] = 1;
  EXPECT_DOUBLE_EQ(look_scores(ind, n, ids, words).induction, 1.0);
  EXPECT_DOUBLE_EQ(self.induction, 0.0);
}

// Rows a capture did not keep (all zeros: its budget, or a subset of rows asked for) count in no
// mean: the scores are those of the stored rows, and `rows` says how many there were.
TEST(Analysis, LookScoresLeaveOutRowsNotStored) {
  const int64_t n = 6;
  const std::vector<int32_t> ids = {1, 7, 8, 9, 7, 8};
  const std::vector<int32_t> words = {0, 1, 1, 2, 3, 3};
  std::vector<float> prev = one_hot(n, [](int64_t i) { return std::max<int64_t>(i - 1, 0); });
  EXPECT_EQ(look_scores(prev, n, ids, words).rows, n);
  for (int64_t i : {3, 4, 5}) std::fill_n(prev.begin() + i * n, n, 0.f);  // rows 3..5 dropped
  const LookScores s = look_scores(prev, n, ids, words);
  EXPECT_EQ(s.rows, 3);
  EXPECT_DOUBLE_EQ(s.previous, 1.0);  // rows 1 and 2, not (1 + 1) / 5
  EXPECT_DOUBLE_EQ(s.first, 1.0 / 2);
  EXPECT_DOUBLE_EQ(s.self, 1.0 / 3);       // row 0 of rows 0..2
  EXPECT_DOUBLE_EQ(s.same_word, 1.0 / 2);  // rows 1 and 2 have word mates; row 2 looks at one
  // A sparse (top-k) row keeps part of its mass and still counts.
  prev[4 * n + 3] = 0.5f;
  EXPECT_EQ(look_scores(prev, n, ids, words).rows, 4);
  EXPECT_DOUBLE_EQ(look_scores(prev, n, ids, words).previous, 2.5 / 3);
  // Nothing stored: no rows and zero scores, never a division by zero.
  const LookScores none = look_scores(std::vector<float>(n * n, 0.f), n, ids, words);
  EXPECT_EQ(none.rows, 0);
  EXPECT_EQ(none.previous, 0.0);
  EXPECT_EQ(none.entropy, 0.0);
  EXPECT_FALSE(std::isnan(none.self));
}

TEST(Analysis, MeanMapAndRollout) {
  const int64_t n = 3;
  const std::vector<float> a = one_hot(n, [](int64_t i) { return i; });
  const std::vector<float> b = one_hot(n, [](int64_t) -> int64_t { return 0; });
  std::vector<float> both = a;
  both.insert(both.end(), b.begin(), b.end());
  const std::vector<float> mean = mean_map(both, 2, n);
  EXPECT_FLOAT_EQ(mean[0], 1.f);           // row 0: both on key 0
  EXPECT_FLOAT_EQ(mean[1 * n + 0], 0.5f);  // row 1: half self, half first
  EXPECT_FLOAT_EQ(mean[1 * n + 1], 0.5f);

  // Identity attention: rollout is the identity through any number of layers.
  std::vector<float> two = a;
  two.insert(two.end(), a.begin(), a.end());
  const std::vector<float> id = attention_rollout(two, 2, n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) EXPECT_NEAR(id[i * n + j], i == j ? 1 : 0, 1e-6);
  }
  // Everything on key 0: one layer gives 0.5 I + 0.5 e0; two layers give 0.25 I + 0.75 e0
  // off row 0 (A^2 with A = 0.5 I + 0.5 * 1 e0^T).
  std::vector<float> sinks = b;
  sinks.insert(sinks.end(), b.begin(), b.end());
  const std::vector<float> r1 = attention_rollout(b, 1, n);
  EXPECT_NEAR(r1[2 * n + 0], 0.5, 1e-6);
  EXPECT_NEAR(r1[2 * n + 2], 0.5, 1e-6);
  EXPECT_NEAR(r1[0], 1.0, 1e-6);
  const std::vector<float> r2 = attention_rollout(sinks, 2, n);
  EXPECT_NEAR(r2[2 * n + 0], 0.75, 1e-6);
  EXPECT_NEAR(r2[2 * n + 2], 0.25, 1e-6);
  EXPECT_NEAR(r2[2 * n + 1], 0.0, 1e-6);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += r2[i * n + j];
    EXPECT_NEAR(s, 1.0, 1e-6);
  }
}

TEST(Analysis, TopAttendedIsSortedAndSkipsZeros) {
  const int64_t n = 4;
  std::vector<float> m(n * n, 0.f);
  m[3 * n + 0] = 0.2f;
  m[3 * n + 1] = 0.5f;
  m[3 * n + 3] = 0.3f;
  const std::vector<Attended> top = top_attended(m, n, 3, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].key, 1);
  EXPECT_EQ(top[1].key, 3);
  EXPECT_EQ(top_attended(m, n, 3, 10).size(), 3u);
  EXPECT_TRUE(top_attended(m, n, 0, 3).empty());
  EXPECT_THROW(top_attended(m, n, 4, 1), InvalidArgument);
}

}  // namespace
}  // namespace qkv
