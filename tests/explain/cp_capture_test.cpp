// AttentionCapture under context parallelism (SessionOptions::context_parallel) against the same
// capture in one process: as one rank without mpirun, and on two ranks under mpirun
// (tests/distributed/run_mpi.py). Each rank runs the one-process session itself, so rank 0
// compares its assembled maps with maps computed from all keys in one place: the rows, their
// positions and every probability (within 2e-6: the ring's lse is the one-call lse summed in
// another order, a few ulps of lse ~ 5, docs/DISTRIBUTED.md). Prompt lengths the 2P zig-zag chunks
// do not divide, a sliding-window layer with soft-capping and GQA (Gemma 2, ../shared), learned
// positions and MHA (the built-in GPT-2), chosen rows that are not consecutive (runs of rows)
// and decode steps. Observers that need q, k and v, or want to edit activations, are refused by
// name on every rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/shared_data.h"
#include "qkv/distributed.h"
#include "qkv/error.h"
#include "qkv/explain.h"
#include "qkv/session.h"

namespace qkv {
namespace {

std::optional<Model> load(const std::string& name) {
  if (name == "builtin") {
    const std::string path = std::string(QKV_SOURCE_DIR) + "/models/qkv-stories.gguf";
    if (!std::filesystem::exists(path)) return std::nullopt;
    return Model::load(path);
  }
  const auto file = test::shared_file("fixtures/gguf-families/gemma2/model-f32.gguf");
  if (file.empty()) return std::nullopt;
  return Model::load(file.string());
}

// Runs `n` prompt ids then `steps` one-token decode steps with a capture attached.
AttentionCapture run(const Model& model, int64_t n, int steps, const CaptureOptions& o,
                     Communicator* comm) {
  AttentionCapture cap(model, o);
  Session s(model, {.n_ctx = 128, .n_threads = 1, .observer = &cap, .context_parallel = comm});
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < n; ++i) {
    ids.push_back(static_cast<int32_t>((7 * i + 3) % model.config().n_vocab));
  }
  s.eval(ids);
  for (int t = 0; t < steps; ++t) {
    const int32_t id = static_cast<int32_t>((11 * t + 5) % model.config().n_vocab);
    s.eval(std::span<const int32_t>(&id, 1));
  }
  return cap;
}

class CpCapture : public ::testing::TestWithParam<std::string> {};

TEST_P(CpCapture, MapsEqualOneProcess) {
  const std::optional<Model> model = load(GetParam());
  if (!model) GTEST_SKIP() << GetParam() << " is not available (../shared or models/)";
  Communicator& comm = Communicator::world();
  const int64_t n_head = model->config().n_head;
  CaptureOptions all;
  CaptureOptions some;
  some.layers = {static_cast<int>(model->config().n_layer) - 1};
  some.heads = {1, static_cast<int>(n_head) - 1};
  for (int64_t n : {5, 23, 37}) {
    some.rows = {0, 3, 4, n - 2, n + 1};  // runs of 1 and 2 rows, and a decode step
    for (const CaptureOptions* o : {&all, &some}) {
      SCOPED_TRACE(GetParam() + ", " + std::to_string(n) + " tokens, " +
                   (o == &all ? "every row and head" : "chosen rows and heads"));
      const AttentionCapture one = run(*model, n, 3, *o, nullptr);
      const AttentionCapture par = run(*model, n, 3, *o, &comm);
      if (comm.rank() != 0) {
        EXPECT_EQ(par.n_tokens(), 0);  // only rank 0's capture is handed rows
        continue;
      }
      ASSERT_EQ(par.n_tokens(), one.n_tokens());
      ASSERT_EQ(par.layers(), one.layers());
      ASSERT_EQ(par.heads(), one.heads());
      double worst = 0;
      for (size_t li = 0; li < one.layers().size(); ++li) {
        for (size_t hi = 0; hi < one.heads().size(); ++hi) {
          for (int64_t p = 0; p < one.n_tokens(); ++p) {
            ASSERT_EQ(par.has_row(li, hi, p), one.has_row(li, hi, p)) << "position " << p;
          }
          const std::vector<float> a = one.map(li, hi), b = par.map(li, hi);
          ASSERT_EQ(a.size(), b.size());
          for (size_t i = 0; i < a.size(); ++i) {
            worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
          }
        }
      }
      EXPECT_LE(worst, 2e-6);
      EXPECT_EQ(par.stored_floats(), one.stored_floats());  // same rows, same trimmed lengths
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CpCapture, ::testing::Values("builtin", "gemma2"));

// Wants layer 1's attention as q, k and v (on_attention only).
class WholeEventObserver : public Observer {
 public:
  bool wants_attention(int layer) override { return layer == 1; }
};

TEST(CpCaptureErrors, ObserverWithoutRowsIsRefusedOnEveryRank) {
  const std::optional<Model> model = load("builtin");
  if (!model) GTEST_SKIP() << "models/qkv-stories.gguf is not in this checkout";
  WholeEventObserver obs;
  Session s(
      *model,
      {.n_ctx = 64, .n_threads = 1, .observer = &obs, .context_parallel = &Communicator::world()});
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7};
  try {
    s.eval(ids);
    ADD_FAILURE() << "eval did not throw";
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("observer of layer 1"), std::string::npos) << what;
    EXPECT_NE(what.find("Observer::attention_rows"), std::string::npos) << what;
  }
}

// Asks for every row of layer 0 and a head the model does not have.
class BadHeadObserver : public Observer {
 public:
  bool wants_attention(int layer) override { return layer == 0; }
  bool attention_rows(int, int64_t first, int64_t n_q, AttentionRowsRequest& r) override {
    for (int64_t i = 0; i < n_q; ++i) r.positions.push_back(first + i);
    r.heads = {0, 99};
    return true;
  }
};

TEST(CpCaptureErrors, HeadOutOfRangeIsNamedOnEveryRank) {
  const std::optional<Model> model = load("builtin");
  if (!model) GTEST_SKIP() << "models/qkv-stories.gguf is not in this checkout";
  BadHeadObserver obs;
  Session s(
      *model,
      {.n_ctx = 64, .n_threads = 1, .observer = &obs, .context_parallel = &Communicator::world()});
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  try {
    s.eval(ids);
    ADD_FAILURE() << "eval did not throw";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("head 99 of layer 0; the model has 4 heads"),
              std::string::npos)
        << e.what();
  }
}

// Wants to edit activations (an ablation).
class EditingObserver : public Observer {
 public:
  bool wants_edits() override { return true; }
};

TEST(CpCaptureErrors, EditingObserverIsRefusedOnEveryRank) {
  const std::optional<Model> model = load("builtin");
  if (!model) GTEST_SKIP() << "models/qkv-stories.gguf is not in this checkout";
  EditingObserver obs;
  Session s(
      *model,
      {.n_ctx = 64, .n_threads = 1, .observer = &obs, .context_parallel = &Communicator::world()});
  const std::vector<int32_t> ids = {1, 2, 3};
  try {
    s.eval(ids);
    ADD_FAILURE() << "eval did not throw";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("Observer::wants_edits"), std::string::npos) << e.what();
  }
}

TEST(CpCaptureErrors, DetailHeadIsRefused) {
  const std::optional<Model> model = load("builtin");
  if (!model) GTEST_SKIP() << "models/qkv-stories.gguf is not in this checkout";
  ExplainOptions o;
  o.capture.detail_layer = 0;
  o.capture.detail_head = 1;
  o.context_parallel = &Communicator::world();
  try {
    explain(*model, "Once upon a time", o);
    ADD_FAILURE() << "explain did not throw";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("detail head"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qkv

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  qkv::Communicator& comm = qkv::Communicator::world();
  const int rc = RUN_ALL_TESTS();
  // The job fails when any rank failed.
  const double worst = comm.max(rc);
  if (worst != 0 && comm.rank() == 0) std::fprintf(stderr, "a rank failed (see above)\n");
  return worst != 0 ? 1 : 0;
}
