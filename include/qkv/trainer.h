// qkv — training a small GPT-2-style model on the CPU (`qkv train`).
//
//   qkv::TrainOptions o;            // defaults: the built-in corpus, a 768-token BPE,
//   o.out_dir = "run";              // 4 layers x 4 heads x 128 wide, context 128
//   qkv::TrainResult r = qkv::train(o, [](const qkv::TrainProgress& p) { ... });
//   // run/model.gguf loads with qkv::Model::load and runs in `qkv generate` / `qkv explain`.
//
// What out_dir receives:
//   model.gguf        the latest checkpoint: a GPT-2 GGUF in llama.cpp's names and keys, with the
//                     tokenizer (tokenizer.ggml.*) inside
//   state.gguf        everything needed to resume: parameters, AdamW moments, step, data order
//                     and the loss history (written atomically next to model.gguf)
//   tokenizer.gguf    the tokenizer alone (vocabulary-only GGUF), trained once per run
//   loss.csv, loss.svg, loss.png, loss.html   the loss curve (training and validation)
// With resume = true a run continues from state.gguf exactly where the last checkpoint left it
// (the same batches, the same result as an uninterrupted run for the same thread count).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qkv/model.h"
#include "qkv/train.h"

namespace qkv {

// The tokenizer a run trains with: `bpe` is a byte-level BPE trained on the run's training text
// (vocab_size tokens); `byte` is the 256 bytes plus end-of-text.
enum class TrainTokenizer : uint8_t { bpe, byte };

// Errors about these options name them as written here ("TrainOptions::n_embd"), so a front end
// can say which of its own options sets each one.
struct TrainOptions {
  // Data: a UTF-8 text file (documents separated by blank lines), or the built-in corpus.
  std::string text_path;  // empty: generate_corpus(corpus)
  CorpusOptions corpus;
  TrainTokenizer tokenizer = TrainTokenizer::bpe;
  int32_t vocab_size = 768;    // bpe (the built-in corpus needs ~700 for one token a word)
  double val_fraction = 0.05;  // the last documents, held out for the validation loss

  // Model (GPT-2 architecture).
  int64_t n_layer = 4, n_head = 4, n_embd = 128, n_ctx = 128;

  // Optimisation.
  int64_t batch = 16;  // sequences per step, each n_ctx + 1 tokens
  int64_t steps = 2000;
  double lr = 2e-3, min_lr = 2e-4;
  int64_t warmup = 100;
  double weight_decay = 0.1, grad_clip = 1.0, beta1 = 0.9, beta2 = 0.95;
  uint64_t seed = 1;

  // Monitoring and checkpoints.
  int64_t eval_every = 100;  // steps between validation losses (and at the last step)
  int64_t eval_batches = 8;
  int64_t checkpoint_every = 250;  // and at the last step
  std::string out_dir = "qkv-train";
  bool resume = false;  // continue from out_dir/state.gguf (error when absent or different)
  int n_threads = 0;    // 0: all hardware threads
};

struct TrainProgress {
  int64_t step = 0;  // steps done
  int64_t steps = 0;
  double loss = 0;  // training loss of the last step
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;  // over the steps of this process
  double elapsed_s = 0;
  std::optional<double> val_loss;  // set on evaluation steps
  bool checkpoint = false;         // a checkpoint was written at this step
};

struct LossPoint {
  int64_t step = 0;
  double train_loss = 0;  // mean of the training losses since the previous point
  std::optional<double> val_loss;
};

struct TrainResult {
  int64_t n_params = 0;
  int64_t n_vocab = 0;
  int64_t train_tokens = 0, val_tokens = 0;  // tokens in each split
  int64_t steps_done = 0;
  double final_train_loss = 0;
  double final_val_loss = 0;
  double seconds = 0;
  std::vector<LossPoint> history;
  std::string model_path;
};

// Runs training; `on_progress` (may be empty) is called after every step. Throws
// InvalidArgument for bad options (naming the option), qkv::Error for unreadable files.
TrainResult train(const TrainOptions& options,
                  const std::function<void(const TrainProgress&)>& on_progress = {});

// The loss curve as a standalone SVG, and an HTML page with it, the run's settings (key, value)
// and the final numbers.
std::string loss_curve_svg(const std::vector<LossPoint>& history, int width = 720,
                           int height = 360);
std::string loss_curve_html(const std::vector<LossPoint>& history,
                            const std::vector<std::pair<std::string, std::string>>& settings);
// The loss curve as a PNG (RGB), drawn by qkv (no plotting library).
void write_loss_curve_png(const std::string& path, const std::vector<LossPoint>& history,
                          int width = 720, int height = 360);

// ---- Does a head resolve "it"? ---------------------------------------------------------------
// For each test sentence (generate_pronoun_cases), the exact attention of the pronoun's token on
// the antecedent's tokens and on the distractor's tokens, in every layer and head. A head gets a
// case right when the antecedent receives more weight than the distractor.
struct PronounHeadScore {
  int layer = 0, head = 0;
  double accuracy = 0;         // over all cases
  double accuracy_agent = 0;   // "tired"-style cases (the subject is the referent)
  double accuracy_object = 0;  // "wide"-style cases (the object is the referent)
  double mean_antecedent = 0;  // mean attention weight on the antecedent
  double mean_distractor = 0;  // ... and on the distractor
};
struct PronounProbe {
  int64_t n_cases = 0, n_agent = 0, n_object = 0;
  std::vector<PronounHeadScore> heads;  // every layer and head, best accuracy first
};
// Which pronoun of a case queries: "it" in "because it was too ...", or the "It" that starts
// the next sentence (the one whose next word names what the referent does).
enum class PronounAt : uint8_t { clause, follow_up };
// Throws qkv::Error when the model has no tokenizer or a case's words do not map to tokens.
PronounProbe probe_pronouns(const Model& model, const std::vector<PronounCase>& cases,
                            PronounAt at = PronounAt::clause, int n_threads = 0);

}  // namespace qkv
