// Sampler behaviour: greedy, each filter on its own, determinism, the repetition penalty and
// parameter validation. Distributions are checked by drawing many times with fixed seeds.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "qkv/session.h"

namespace qkv {
namespace {

SamplingParams plain(float temperature = 1.f) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.f;
  p.min_p = 0.f;
  return p;
}

// Counts of each token over n draws.
std::map<int32_t, int> draw(SamplingParams p, const std::vector<float>& logits, int n,
                            const std::vector<int32_t>& history = {}) {
  Sampler s(p);
  std::map<int32_t, int> count;
  for (int i = 0; i < n; ++i) ++count[s.sample(logits, history)];
  return count;
}

// Logits whose softmax is the given probabilities.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

TEST(Sampler, GreedyIsArgmaxFirstOnTies) {
  Sampler s(plain(0.f));
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 3.f, -2.f, 2.9f}, {}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{1.f, 5.f, 5.f, 0.f}, {}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{-7.f}, {}), 0);
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p = plain(1.5f);
  p.top_k = 1;
  std::vector<float> logits = {0.5f, 0.4f, 0.45f, 0.1f, 0.49f};
  EXPECT_EQ(draw(p, logits, 200), (std::map<int32_t, int>{{0, 200}}));
}

TEST(Sampler, TopKKeepsTheKMostLikely) {
  SamplingParams p = plain();
  p.top_k = 2;
  const auto c = draw(p, logits_of({0.1, 0.4, 0.2, 0.3}), 4000);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(c.count(1) && c.count(3));
  // Renormalised: 0.4 / 0.7 of the draws.
  EXPECT_NEAR(c.at(1) / 4000.0, 4.0 / 7.0, 0.03);
}

TEST(Sampler, FollowsTheDistribution) {
  const std::vector<double> probs = {0.5, 0.25, 0.125, 0.125};
  const int n = 20000;
  const auto c = draw(plain(), logits_of(probs), n);
  for (int32_t i = 0; i < 4; ++i) EXPECT_NEAR(c.at(i) / double(n), probs[i], 0.015) << i;
}

TEST(Sampler, TopPKeepsTheShortestPrefixReachingP) {
  SamplingParams p = plain();
  p.top_p = 0.7f;  // 0.5 + 0.25 reaches 0.7; 0.125s are out
  const auto c = draw(p, logits_of({0.125, 0.5, 0.125, 0.25}), 3000);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(c.count(1) && c.count(3));
  p.top_p = 0.5f;  // the top token alone reaches it
  EXPECT_EQ(draw(p, logits_of({0.125, 0.5, 0.125, 0.25}), 500), (std::map<int32_t, int>{{1, 500}}));
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheBest) {
  SamplingParams p = plain();
  p.min_p = 0.3f;  // floor 0.15: 0.1s are out, 0.2 stays
  const auto c = draw(p, logits_of({0.1, 0.5, 0.2, 0.1, 0.1}), 3000);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(c.count(1) && c.count(2));
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
  const auto logits = logits_of({0.6, 0.4});
  const int n = 20000;
  // T = 0.5 squares the odds: 0.36 / 0.52; T = 2 takes their square root.
  EXPECT_NEAR(draw(plain(0.5f), logits, n).at(0) / double(n), 0.36 / 0.52, 0.015);
  const double a = std::sqrt(0.6), b = std::sqrt(0.4);
  EXPECT_NEAR(draw(plain(2.f), logits, n).at(0) / double(n), a / (a + b), 0.015);
}

TEST(Sampler, SameSeedSameTokensOtherSeedOthers) {
  SamplingParams p = plain();
  p.seed = 1234;
  const std::vector<float> logits(100, 0.f);  // uniform: every draw depends on the generator
  Sampler a(p), b(p);
  p.seed = 99;
  Sampler c(p);
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(logits, {}));
    tb.push_back(b.sample(logits, {}));
    tc.push_back(c.sample(logits, {}));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(Sampler, SeededDrawsArePinned) {
  // The generator and the draw are defined without implementation-defined distributions, so
  // these values hold on every platform and standard library.
  SamplingParams p = plain();
  p.seed = 42;
  Sampler s(p);
  const std::vector<float> logits(10, 0.f);
  std::vector<int32_t> got;
  for (int i = 0; i < 8; ++i) got.push_back(s.sample(logits, {}));
  std::mt19937_64 rng(42);
  std::vector<int32_t> want;
  for (int i = 0; i < 8; ++i) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    want.push_back(static_cast<int32_t>(u * 10));
  }
  EXPECT_EQ(got, want);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p = plain(0.f);
  p.repeat_penalty = 2.f;
  Sampler s(p);
  // 4 / 2 = 2 < 3: the repeated positive logit loses to token 1.
  EXPECT_EQ(s.sample(std::vector<float>{4.f, 3.f}, std::vector<int32_t>{0}), 1);
  // -1 * 2 = -2 < -1.5: the repeated negative logit falls below token 1.
  EXPECT_EQ(s.sample(std::vector<float>{-1.f, -1.5f}, std::vector<int32_t>{0}), 1);
  // Repeats inside the window count once: 8 / 2 = 4 > 3 still wins.
  EXPECT_EQ(s.sample(std::vector<float>{8.f, 3.f}, std::vector<int32_t>{0, 0, 0}), 0);
}

TEST(Sampler, RepetitionPenaltyLooksOnlyAtTheLastN) {
  SamplingParams p = plain(0.f);
  p.repeat_penalty = 2.f;
  p.repeat_last_n = 2;
  Sampler s(p);
  // Token 0 is three tokens back: outside the window, not penalised.
  EXPECT_EQ(s.sample(std::vector<float>{4.f, 3.f, 0.f}, std::vector<int32_t>{0, 2, 2}), 0);
  EXPECT_EQ(s.sample(std::vector<float>{4.f, 3.f, 0.f}, std::vector<int32_t>{2, 0, 2}), 1);
  p.repeat_last_n = 0;  // off
  Sampler off(p);
  EXPECT_EQ(off.sample(std::vector<float>{4.f, 3.f}, std::vector<int32_t>{0}), 0);
}

TEST(Sampler, InvalidParametersNameTheParameterAndRange) {
  const auto expect_error = [](SamplingParams p, const std::string& name) {
    try {
      Sampler s(p);
      FAIL() << "no error for " << name;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("expected"), std::string::npos) << e.what();
    }
  };
  SamplingParams p;
  p.temperature = -0.1f;
  expect_error(p, "temperature");
  p = {};
  p.temperature = NAN;
  expect_error(p, "temperature");
  p = {};
  p.top_k = -1;
  expect_error(p, "top_k");
  p = {};
  p.top_p = 0.f;
  expect_error(p, "top_p");
  p = {};
  p.top_p = 1.5f;
  expect_error(p, "top_p");
  p = {};
  p.min_p = -0.5f;
  expect_error(p, "min_p");
  p = {};
  p.min_p = 2.f;
  expect_error(p, "min_p");
  p = {};
  p.repeat_penalty = 0.f;
  expect_error(p, "repeat_penalty");
  p = {};
  p.repeat_last_n = -3;
  expect_error(p, "repeat_last_n");
}

TEST(Sampler, BadInputsThrow) {
  Sampler s(plain());
  EXPECT_THROW(s.sample(std::span<const float>(), {}), InvalidArgument);
  SamplingParams p = plain();
  p.repeat_penalty = 1.3f;
  Sampler pen(p);
  EXPECT_THROW(pen.sample(std::vector<float>{1.f, 2.f}, std::vector<int32_t>{5}), InvalidArgument);
}

}  // namespace
}  // namespace qkv
