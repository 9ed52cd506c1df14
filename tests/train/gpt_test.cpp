// The training model (src/train/gpt.h): gradients by finite differences, determinism, the
// optimizer's schedule and clipping, and checkpoints that the inference runtime loads with the
// same logits. The comparison with PyTorch autograd is tests/train/torch_gpt.py.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>

#include "qkv/error.h"
#include "qkv/model.h"
#include "qkv/session.h"
#include "qkv/tokenizer.h"
#include "train/checkpoint.h"
#include "train/gpt.h"
#include "train/optimizer.h"
#include "train/random.h"

namespace qkv::learn {
namespace {

GptConfig tiny_config(int64_t n_vocab = 40) {
  GptConfig c;
  c.n_vocab = n_vocab;
  c.n_ctx = 12;
  c.n_embd = 16;
  c.n_head = 2;
  c.n_layer = 2;
  return c;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
};

Batch random_batch(const GptConfig& c, int64_t B, int64_t T, uint64_t seed) {
  Rng rng(seed);
  Batch b;
  for (int64_t i = 0; i < B * T; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.n_vocab))));
    b.targets.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.n_vocab))));
  }
  b.targets[1] = -1;  // an ignored position
  return b;
}

// Central differences of the fp32 loss against backward() on parameters drawn from every tensor.
// h = 1e-2 keeps the fp32 rounding of the loss (~1e-7 relative) at ~1e-5 in the quotient; the
// truncation error is O(h²) ≈ 1e-4 of the curvature. A wrong or missing term is off by O(1).
TEST(Gpt, GradientsMatchFiniteDifferences) {
  const GptConfig c = tiny_config();
  Gpt m(c);
  m.init_weights(3);
  // Larger weights than the initialisation, so every path carries a visible gradient.
  Rng rng(11);
  for (float& p : m.params()) p += static_cast<float>(0.1 * rng.normal());
  const int64_t B = 2, T = 9;
  const Batch b = random_batch(c, B, T, 5);
  m.zero_grad();
  m.forward(b.tokens.data(), b.targets.data(), B, T, 1);
  m.backward(1);
  const std::vector<float> grads = m.grads();
  int checked = 0;
  for (const ParamTensor& t : m.tensors()) {
    for (int k = 0; k < 3; ++k) {
      int64_t i = t.offset + static_cast<int64_t>(rng.below(static_cast<uint64_t>(t.size)));
      if (t.name == "position_embd.weight") i = t.offset + (k % T) * c.n_embd + k;
      const float saved = m.params()[static_cast<size_t>(i)];
      const float h = 1e-2f;
      m.params()[static_cast<size_t>(i)] = saved + h;
      const double up = m.forward(b.tokens.data(), b.targets.data(), B, T, 1);
      m.params()[static_cast<size_t>(i)] = saved - h;
      const double down = m.forward(b.tokens.data(), b.targets.data(), B, T, 1);
      m.params()[static_cast<size_t>(i)] = saved;
      const double fd = (up - down) / (2.0 * h);
      const double g = grads[static_cast<size_t>(i)];
      EXPECT_NEAR(g, fd, 2e-4 + 0.03 * std::abs(fd)) << t.name << " element " << i - t.offset;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * static_cast<int>(m.tensors().size()));
}

TEST(Gpt, DeterministicForAThreadCount) {
  const GptConfig c = tiny_config();
  Gpt a(c), b(c);
  a.init_weights(9);
  b.init_weights(9);
  EXPECT_EQ(a.params(), b.params());
  Gpt other(c);
  other.init_weights(10);
  EXPECT_NE(a.params(), other.params());
  const Batch batch = random_batch(c, 3, 12, 1);
  for (Gpt* m : {&a, &b}) {
    m->zero_grad();
    m->forward(batch.tokens.data(), batch.targets.data(), 3, 12, 2);
    m->backward(2);
  }
  EXPECT_EQ(a.grads(), b.grads());
}

TEST(Gpt, InitialLossIsNearUniform) {
  const GptConfig c = tiny_config(64);
  Gpt m(c);
  m.init_weights(1);
  const Batch b = random_batch(c, 2, 12, 2);
  const double loss = m.forward(b.tokens.data(), b.targets.data(), 2, 12, 1);
  EXPECT_NEAR(loss, std::log(64.0), 0.1);  // std 0.02 weights: logits near 0
}

TEST(Gpt, RejectsBadInput) {
  Gpt m(tiny_config());
  std::vector<int32_t> tokens(13, 1), targets(13, 1);
  EXPECT_THROW(m.forward(tokens.data(), targets.data(), 1, 13, 1), InvalidArgument);  // > n_ctx
  tokens[3] = 40;
  EXPECT_THROW(m.forward(tokens.data(), targets.data(), 1, 12, 1), InvalidArgument);
  EXPECT_THROW(m.backward(1), InvalidArgument);
  GptConfig bad = tiny_config();
  bad.n_head = 3;
  EXPECT_THROW(Gpt{bad}, InvalidArgument);
}

TEST(Optimizer, ScheduleWarmsUpThenDecays) {
  const int64_t steps = 100, warmup = 10;
  EXPECT_DOUBLE_EQ(learning_rate(0, steps, warmup, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(9, steps, warmup, 1.0, 0.1), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(10, steps, warmup, 1.0, 0.1), 1.0);
  EXPECT_NEAR(learning_rate(99, steps, warmup, 1.0, 0.1), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(10 + 89 / 2.0, steps, warmup, 1.0, 0.1), 0.55, 0.02);
  for (int64_t s = warmup + 1; s < steps; ++s) {
    EXPECT_LT(learning_rate(s, steps, warmup, 1.0, 0.1),
              learning_rate(s - 1, steps, warmup, 1.0, 0.1));
  }
}

TEST(Optimizer, ClipsTheGlobalNorm) {
  std::vector<float> g = {3.f, 4.f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 10.0), 5.0);
  EXPECT_FLOAT_EQ(g[0], 3.f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 1.0), 5.0);
  EXPECT_NEAR(std::hypot(g[0], g[1]), 1.0, 1e-6);
  EXPECT_NEAR(g[0] / g[1], 0.75, 1e-6);
}

TEST(Optimizer, AdamWFirstStepMovesByLearningRate) {
  // After one step m̂ = g and v̂ = g², so every weight moves by lr · sign(g), plus decay.
  std::vector<ParamTensor> tensors = {{"w", {2, 2}, 0, 4, true}, {"b", {2}, 4, 2, false}};
  std::vector<float> p = {1, 1, 1, 1, 1, 1}, g = {0.5f, -2.f, 1e-3f, -1e-3f, 3.f, -3.f};
  AdamWOptions o;
  o.weight_decay = 0.5;
  AdamW opt(6, o);
  opt.update(p, g, tensors, 0.1);
  const float decayed = 1.f - 0.1f * 0.5f;
  EXPECT_NEAR(p[0], decayed - 0.1f, 1e-5);
  EXPECT_NEAR(p[1], decayed + 0.1f, 1e-5);
  EXPECT_NEAR(p[2], decayed - 0.1f, 1e-4);
  EXPECT_NEAR(p[4], 1.f - 0.1f, 1e-5);  // no decay on the bias
  EXPECT_NEAR(p[5], 1.f + 0.1f, 1e-5);
  EXPECT_EQ(opt.step(), 1);
}

// A checkpoint is a GPT-2 GGUF: the inference runtime loads it and computes the same logits.
TEST(Checkpoint, RuntimeLoadsItWithTheSameLogits) {
  const TokenizerSpec spec = train_byte_bpe(
      "the cat sat on the mat. the dog sat on the log.\n\n",
      BpeTrainOptions{.vocab_size = 270, .end_of_text = "<|endoftext|>", .min_pair_count = 2});
  GptConfig c = tiny_config(static_cast<int64_t>(spec.tokens.size()));
  Gpt m(c);
  m.init_weights(4);
  Rng rng(2);
  for (float& p : m.params()) p += static_cast<float>(0.05 * rng.normal());
  const auto dir =
      std::filesystem::temp_directory_path() / ("qkv_gpt_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "model.gguf").string();
  write_model_gguf(path, m, spec, 7, 1.5);

  std::vector<int32_t> tokens = {3, 17, 200, 5, 1, 99, 42, 7};
  m.forward(tokens.data(), nullptr, 1, static_cast<int64_t>(tokens.size()), 1);
  const float* ours = m.logits();
  Session s(Model::load(path));
  EXPECT_EQ(s.model().config().n_vocab, c.n_vocab);
  const std::span<const float> ref = s.eval(tokens, /*all_logits=*/true);
  ASSERT_EQ(ref.size(), tokens.size() * static_cast<size_t>(c.n_vocab));
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, double(std::abs(ref[i] - ours[i])));
  // Two fp32 implementations of the same network (fast exp/tanh in the runtime): ~1e-5.
  EXPECT_LT(worst, 1e-4);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qkv::learn
