// A Session's scratch and timings (qkv/session.h): the forward passes' workspace belongs to the
// session (no thread_local buffers), can be measured and freed without changing any result, and
// stats() counts what the passes did. On the real stories260K model (../shared).
#include <gtest/gtest.h>

#include <vector>

#include "common/shared_data.h"
#include "qkv/session.h"

namespace qkv {
namespace workspace_test {  // a unity build shares session_test.cpp's anonymous namespace
namespace {

constexpr const char* kModel = "models/stories260K/stories260K.bin";
constexpr const char* kTok = "models/stories260K/tok512.bin";

Model load_stories(const std::filesystem::path& model) {
  return Model::load(model.string(),
                     {.tokenizer_path = test::shared_file(kTok).string(), .progress = {}});
}

TEST(SessionWorkspace, ReleasedAndRegrownWithTheSameLogits) {
  QKV_REQUIRE_SHARED(model_path, kModel);
  Session session(load_stories(model_path), {.n_threads = 1});
  EXPECT_EQ(session.workspace_bytes(), 0u);
  const std::vector<int32_t> ids = {1, 403, 407, 261, 378, 432, 383};
  const auto first = session.eval(ids, /*all_logits=*/true);
  const std::vector<float> before(first.begin(), first.end());
  // At least the residual stream and the q projection of 7 tokens (64 wide).
  EXPECT_GE(session.workspace_bytes(), 2 * ids.size() * 64 * sizeof(float));
  session.release_workspace();
  EXPECT_EQ(session.workspace_bytes(), 0u);
  session.reset();
  const auto second = session.eval(ids, /*all_logits=*/true);
  EXPECT_EQ(before, std::vector<float>(second.begin(), second.end()));
  EXPECT_GT(session.workspace_bytes(), 0u);
}

// Two sessions on one model keep their scratch apart: interleaved decodes give what each gives
// alone.
TEST(SessionWorkspace, InterleavedSessionsDoNotShareScratch) {
  QKV_REQUIRE_SHARED(model_path, kModel);
  const Model model = load_stories(model_path);
  const std::vector<int32_t> a = {1, 403, 407, 261}, b = {1, 378, 432, 383, 261, 407};
  auto alone = [&](const std::vector<int32_t>& ids) {
    Session s(model, {.n_threads = 1});
    const auto l = s.eval(ids, true);
    return std::vector<float>(l.begin(), l.end());
  };
  const std::vector<float> want_a = alone(a), want_b = alone(b);
  Session sa(model, {.n_threads = 1}), sb(model, {.n_threads = 1});
  const auto la = sa.eval(a, true);
  const std::vector<float> got_a(la.begin(), la.end());
  const auto lb = sb.eval(b, true);
  EXPECT_EQ(got_a, want_a);
  EXPECT_EQ(std::vector<float>(lb.begin(), lb.end()), want_b);
}

TEST(SessionStats, CountTokensAndTimeUntilReset) {
  QKV_REQUIRE_SHARED(model_path, kModel);
  Session session(load_stories(model_path), {.n_threads = 1});
  EXPECT_EQ(session.stats().tokens, 0);
  const std::vector<int32_t> ids = {1, 403, 407, 261, 378};
  session.eval(ids);
  const int32_t next[1] = {432};
  session.eval(next);
  const SessionStats s = session.stats();
  EXPECT_EQ(s.tokens, 6);
  EXPECT_GT(s.matmul_seconds, 0.0);
  EXPECT_GT(s.attention_seconds, 0.0);
  EXPECT_GE(s.other_seconds, 0.0);
  session.reset_stats();
  const SessionStats z = session.stats();
  EXPECT_EQ(z.tokens, 0);
  EXPECT_EQ(z.matmul_seconds + z.attention_seconds + z.other_seconds, 0.0);
}

}  // namespace
}  // namespace workspace_test
}  // namespace qkv
