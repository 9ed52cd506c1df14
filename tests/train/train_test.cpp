// qkv::train end to end on a small text: the loss falls, the outputs exist and load in the
// runtime, an interrupted run resumed from its checkpoint ends exactly where an uninterrupted run
// ends, and bad options or files give errors that name the problem.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "qkv/error.h"
#include "qkv/model.h"
#include "qkv/model_file.h"
#include "qkv/session.h"
#include "qkv/trainer.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() /
             ("qkv_train_test_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

// Documents with a learnable pattern: a counting rhyme with names that repeat inside a document.
std::string small_text() {
  const char* names[] = {"tom", "mia", "sam", "ana", "ben", "eva"};
  const char* things[] = {"ball", "cat", "cup", "hat"};
  std::string s;
  for (int d = 0; d < 120; ++d) {
    const std::string n = names[d % 6], t = things[(d / 6) % 4];
    s += n + " has a " + t + ". " + n + " likes the " + t + ". the " + t + " is red.\n\n";
  }
  return s;
}

TrainOptions small_options(const TempDir& dir, const std::string& text_path) {
  TrainOptions o;
  o.text_path = text_path;
  o.vocab_size = 300;
  o.n_layer = 2;
  o.n_head = 2;
  o.n_embd = 32;
  o.n_ctx = 32;
  o.batch = 4;
  o.steps = 40;
  o.warmup = 4;
  o.lr = 3e-3;
  o.min_lr = 3e-4;
  o.eval_every = 10;
  o.eval_batches = 2;
  o.checkpoint_every = 10;
  o.val_fraction = 0.1;
  o.out_dir = dir / "run";
  o.n_threads = 1;
  return o;
}

TEST(Train, LossFallsAndOutputsLoad) {
  TempDir dir("basic");
  std::ofstream(dir / "text.txt") << small_text();
  const TrainOptions o = small_options(dir, dir / "text.txt");
  int64_t calls = 0, checkpoints = 0;
  const TrainResult r = train(o, [&](const TrainProgress& p) {
    ++calls;
    checkpoints += p.checkpoint;
    EXPECT_EQ(p.step, calls);
    EXPECT_GT(p.tokens_per_s, 0);
  });
  EXPECT_EQ(calls, 40);
  EXPECT_EQ(checkpoints, 4);
  ASSERT_FALSE(r.history.empty());
  ASSERT_TRUE(r.history.front().val_loss.has_value());
  // From about log(V) to well below it on text this regular.
  EXPECT_LT(r.final_val_loss, 0.7 * std::log(static_cast<double>(r.n_vocab)));
  EXPECT_LT(r.final_val_loss, *r.history.front().val_loss);
  for (const char* f : {"model.gguf", "state.gguf", "tokenizer.gguf", "loss.csv", "loss.svg",
                        "loss.png", "loss.html"}) {
    EXPECT_TRUE(fs::exists(o.out_dir + "/" + f)) << f;
  }
  Model m = Model::load(r.model_path);
  EXPECT_EQ(m.config().n_layer, 2);
  EXPECT_EQ(m.n_params(), r.n_params);
  Session s(std::move(m));
  GenerateOptions g;
  g.max_new_tokens = 8;
  g.sampling.temperature = 0;
  g.stop_at_eos = false;
  const GenerateResult out = s.generate("tom has a", g);
  EXPECT_FALSE(out.ids.empty());
}

TEST(Train, ResumeContinuesExactly) {
  TempDir dir("resume");
  std::ofstream(dir / "text.txt") << small_text();
  TrainOptions o = small_options(dir, dir / "text.txt");
  o.steps = 20;
  o.out_dir = dir / "whole";
  const TrainResult whole = train(o);

  o.out_dir = dir / "interrupted";
  struct Stop {};
  EXPECT_THROW(train(o,
                     [](const TrainProgress& p) {
                       if (p.step == 13) throw Stop{};  // after the checkpoint at step 10
                     }),
               Stop);
  o.resume = true;
  const TrainResult resumed = train(o);
  EXPECT_EQ(resumed.steps_done, 20);
  EXPECT_DOUBLE_EQ(resumed.final_val_loss, whole.final_val_loss);
  const ModelFile a = read_gguf(dir / "whole/model.gguf");
  const ModelFile b = read_gguf(dir / "interrupted/model.gguf");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    ASSERT_EQ(a.tensors[i].n_bytes, b.tensors[i].n_bytes);
    EXPECT_EQ(0, std::memcmp(a.tensors[i].data, b.tensors[i].data, a.tensors[i].n_bytes))
        << a.tensors[i].name;
  }
  // The loss history is carried over, not restarted.
  EXPECT_EQ(resumed.history.size(), whole.history.size());
}

TEST(Train, ErrorsNameTheProblem) {
  TempDir dir("errors");
  std::ofstream(dir / "text.txt") << small_text();
  TrainOptions o = small_options(dir, dir / "text.txt");
  auto message = [&](const TrainOptions& opt) {
    try {
      train(opt);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  TrainOptions bad = o;
  bad.n_embd = 30;
  bad.n_head = 4;
  EXPECT_NE(message(bad).find("TrainOptions::n_embd 30"), std::string::npos);
  bad = o;
  bad.tokenizer = static_cast<TrainTokenizer>(7);
  EXPECT_NE(message(bad).find("TrainOptions::tokenizer"), std::string::npos);
  bad = o;
  bad.resume = true;
  EXPECT_NE(message(bad).find("does not exist"), std::string::npos);
  bad = o;
  bad.text_path = dir / "missing.txt";
  EXPECT_NE(message(bad).find("missing.txt"), std::string::npos);
  bad = o;
  std::ofstream(dir / "one.txt") << "just one document";
  bad.text_path = dir / "one.txt";
  EXPECT_NE(message(bad).find("document"), std::string::npos);

  o.steps = 10;
  train(o);
  TrainOptions other = o;
  other.resume = true;
  other.n_embd = 64;
  EXPECT_NE(message(other).find("different"), std::string::npos);
}

}  // namespace
}  // namespace qkv
