// qkv::train (qkv/trainer.h): data preparation, the training loop, validation, checkpoints and
// resuming. Batches are a pure function of (seed, step), so a resumed run draws exactly the
// batches the uninterrupted run would have drawn.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "qkv/error.h"
#include "qkv/model_file.h"
#include "qkv/tokenizer.h"
#include "qkv/trainer.h"
#include "train/checkpoint.h"
#include "train/gpt.h"
#include "train/optimizer.h"
#include "train/random.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
using learn::Gpt;
using learn::GptConfig;

// The tokenizer's name as checkpoints record it (part of the data hash: keep these strings).
const char* tokenizer_name(TrainTokenizer t) {
  return t == TrainTokenizer::byte ? "byte" : "bpe";
}

void check_options(const TrainOptions& o) {
  auto positive = [](const char* name, int64_t v) {
    if (v < 1) core::throw_invalid("train: TrainOptions::", name, " must be at least 1, found ", v);
  };
  positive("n_layer", o.n_layer);
  positive("n_head", o.n_head);
  positive("n_embd", o.n_embd);
  positive("n_ctx", o.n_ctx);
  positive("batch", o.batch);
  positive("steps", o.steps);
  positive("eval_every", o.eval_every);
  positive("eval_batches", o.eval_batches);
  positive("checkpoint_every", o.checkpoint_every);
  if (o.n_embd % o.n_head != 0) {
    core::throw_invalid("train: TrainOptions::n_embd ", o.n_embd,
                        " is not a multiple of TrainOptions::n_head ", o.n_head);
  }
  if (o.tokenizer != TrainTokenizer::bpe && o.tokenizer != TrainTokenizer::byte) {
    core::throw_invalid("train: TrainOptions::tokenizer: expected bpe or byte, found value ",
                        static_cast<int>(o.tokenizer));
  }
  if (o.tokenizer == TrainTokenizer::bpe && (o.vocab_size < 257 || o.vocab_size > 65536)) {
    core::throw_invalid("train: TrainOptions::vocab_size must be in [257, 65536], found ",
                        o.vocab_size);
  }
  if (!(o.lr > 0) || !(o.min_lr >= 0) || o.min_lr > o.lr) {
    core::throw_invalid(
        "train: expected 0 <= TrainOptions::min_lr <= TrainOptions::lr and "
        "TrainOptions::lr > 0, found TrainOptions::lr ",
        o.lr, ", TrainOptions::min_lr ", o.min_lr);
  }
  if (!(o.val_fraction > 0 && o.val_fraction < 0.5)) {
    core::throw_invalid("train: TrainOptions::val_fraction must be in (0, 0.5), found ",
                        o.val_fraction);
  }
  if (o.warmup < 0)
    core::throw_invalid("train: TrainOptions::warmup must be >= 0, found ", o.warmup);
  if (o.out_dir.empty()) core::throw_invalid("train: TrainOptions::out_dir is empty");
  if (o.n_threads < 0)
    core::throw_invalid("train: TrainOptions::n_threads must be >= 0, found ", o.n_threads);
}

std::string read_text(const std::string& path) {
  return core::read_input_file(path);
}

// Documents are separated by blank lines.
std::vector<std::string_view> split_documents(std::string_view text) {
  std::vector<std::string_view> docs;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\n\n", start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view d = text.substr(start, end - start);
    while (!d.empty() && (d.front() == '\n' || d.front() == '\r')) d.remove_prefix(1);
    if (!d.empty()) docs.push_back(d);
    start = end + 2;
  }
  return docs;
}

uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Tokens of the documents, each followed by the end-of-text token.
std::vector<int32_t> tokenize_documents(const Tokenizer& tok,
                                        std::span<const std::string_view> docs, int32_t eot) {
  std::vector<int32_t> out;
  EncodeOptions eo;
  eo.add_special = false;
  eo.parse_special = false;
  for (std::string_view d : docs) {
    const std::vector<int32_t> ids = tok.encode(d, eo);
    out.insert(out.end(), ids.begin(), ids.end());
    out.push_back(eot);
  }
  return out;
}

// Fills tokens/targets [B, T] with windows of `data` starting at `starts`.
void fill_batch(const std::vector<int32_t>& data, const std::vector<int64_t>& starts, int64_t T,
                std::vector<int32_t>& tokens, std::vector<int32_t>& targets) {
  const auto B = static_cast<int64_t>(starts.size());
  tokens.resize(static_cast<size_t>(B * T));
  targets.resize(static_cast<size_t>(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      tokens[static_cast<size_t>(b * T + t)] = data[static_cast<size_t>(starts[b] + t)];
      targets[static_cast<size_t>(b * T + t)] = data[static_cast<size_t>(starts[b] + t + 1)];
    }
}

void write_text(const std::string& path, const std::string& text) {
  core::write_output_file(path, text);
}

void write_curves(const std::string& dir, const std::vector<LossPoint>& history,
                  const std::vector<std::pair<std::string, std::string>>& settings) {
  std::ostringstream csv;
  csv << "step,train_loss,val_loss\n";
  for (const LossPoint& p : history) {
    csv << p.step << ',' << p.train_loss << ',';
    if (p.val_loss) csv << *p.val_loss;
    csv << '\n';
  }
  write_text(dir + "/loss.csv", csv.str());
  write_text(dir + "/loss.svg", loss_curve_svg(history));
  write_text(dir + "/loss.html", loss_curve_html(history, settings));
  write_loss_curve_png(dir + "/loss.png", history);
}

// The text, split into documents; the last val_fraction of them are held out. The documents
// are views into `text`, so a Corpus is built in place and never copied or moved.
struct Corpus {
  std::string text;
  std::vector<std::string_view> docs;
  std::span<const std::string_view> train_docs, val_docs;

  explicit Corpus(const TrainOptions& o)
      : text(o.text_path.empty() ? generate_corpus(o.corpus) : read_text(o.text_path)),
        docs(split_documents(text)) {
    if (docs.size() < 2) {
      throw Error("train: " + (o.text_path.empty() ? std::string("the corpus") : o.text_path) +
                  " has " + std::to_string(docs.size()) +
                  " document(s); need at least 2 (documents are separated by blank lines)");
    }
    const auto n_val_docs =
        std::max<size_t>(1, static_cast<size_t>(static_cast<double>(docs.size()) * o.val_fraction));
    train_docs = std::span<const std::string_view>(docs.data(), docs.size() - n_val_docs);
    val_docs = std::span<const std::string_view>(docs.data() + train_docs.size(), n_val_docs);
  }
  Corpus(const Corpus&) = delete;
  Corpus& operator=(const Corpus&) = delete;
};

struct RunPaths {
  std::string state, tokenizer, model;
  explicit RunPaths(const std::string& dir)
      : state(dir + "/state.gguf"),
        tokenizer(dir + "/tokenizer.gguf"),
        model(dir + "/model.gguf") {}
};

// Resuming reads the run's tokenizer; a fresh run trains one on the training documents only
// (write_tokenizer puts it next to the checkpoints once the run is known to be valid).
TokenizerSpec load_or_train_tokenizer(const TrainOptions& o, const Corpus& corpus,
                                      const RunPaths& paths) {
  if (o.resume) {
    if (!fs::exists(paths.state)) {
      throw Error("train: TrainOptions::resume: " + paths.state +
                  " does not exist (start without TrainOptions::resume)");
    }
    return tokenizer_spec_from_gguf(read_gguf(paths.tokenizer));
  }
  std::string train_text;
  for (std::string_view d : corpus.train_docs) {
    train_text.append(d);
    train_text.append("\n\n");
  }
  BpeTrainOptions bo;
  bo.vocab_size = o.tokenizer == TrainTokenizer::byte ? 257 : o.vocab_size;
  return train_byte_bpe(train_text, bo);
}

// Creates the output folder and writes a fresh run's tokenizer.gguf. Called only once the run
// is valid: a run refused for too little text used to rewrite an earlier run's tokenizer.gguf,
// and resuming that run then went on with the wrong tokenizer.
void write_run_start(const TrainOptions& o, const TokenizerSpec& spec, const RunPaths& paths) {
  if (o.resume) return;
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) core::throw_error("cannot create the output folder ", o.out_dir, ": ", ec.message());
  GgufWriter w;
  Metadata md;
  md.set("general.architecture", MetaValue::make_string("gpt2"));
  tokenizer_spec_to_gguf(spec, md);
  for (const auto& [k, v] : md.entries()) w.set(k, v);
  w.write(paths.tokenizer);
}

// A path that exists and is not a folder cannot hold the outputs: refused in words before any
// work (std::filesystem's own error is raw).
void check_out_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    core::throw_invalid("the output folder ", dir,
                        " exists and is not a folder; give a folder (new or existing)");
  }
}

struct TokenSplits {
  std::vector<int32_t> train, val;
};

// Both splits must hold more than one context window.
TokenSplits tokenize_splits(const Tokenizer& tok, const Corpus& corpus, int32_t eot, int64_t T) {
  TokenSplits s;
  s.train = tokenize_documents(tok, corpus.train_docs, eot);
  s.val = tokenize_documents(tok, corpus.val_docs, eot);
  if (static_cast<int64_t>(s.train.size()) < T + 2 || static_cast<int64_t>(s.val.size()) < T + 2) {
    throw Error("train: too little text: " + std::to_string(s.train.size()) + " training and " +
                std::to_string(s.val.size()) + " validation tokens, need more than the context (" +
                std::to_string(T + 1) +
                ") in each; use more text, a smaller TrainOptions::n_ctx or a larger "
                "TrainOptions::val_fraction");
  }
  return s;
}

GptConfig model_config(const TrainOptions& o, int64_t n_vocab) {
  GptConfig cfg;
  cfg.n_vocab = n_vocab;
  cfg.n_ctx = o.n_ctx;
  cfg.n_embd = o.n_embd;
  cfg.n_head = o.n_head;
  cfg.n_layer = o.n_layer;
  return cfg;
}

learn::AdamWOptions adamw_options(const TrainOptions& o) {
  learn::AdamWOptions ao;
  ao.beta1 = o.beta1;
  ao.beta2 = o.beta2;
  ao.weight_decay = o.weight_decay;
  return ao;
}

// The run's state: on resume, the saved one (whose model, data and seed must match these
// options), with parameters and moments loaded into model and opt; else fresh weights.
learn::RunState restore_or_init(const TrainOptions& o, const RunPaths& paths, const GptConfig& cfg,
                                uint64_t data_hash, const TokenizerSpec& spec, Gpt& model,
                                learn::AdamW& opt) {
  const std::string& state_path = paths.state;
  learn::RunState state;
  state.config = cfg;
  state.seed = o.seed;
  state.data_hash = data_hash;
  state.tokenizer_hash = learn::tokenizer_hash(spec);
  if (!o.resume) {
    model.init_weights(o.seed);
    return state;
  }
  const learn::RunState saved = learn::read_state_header(state_path);
  const GptConfig& s = saved.config;
  if (s.n_layer != cfg.n_layer || s.n_head != cfg.n_head || s.n_embd != cfg.n_embd ||
      s.n_ctx != cfg.n_ctx || s.n_vocab != cfg.n_vocab) {
    throw Error("train: TrainOptions::resume: " + state_path + " is a model of " +
                std::to_string(s.n_layer) + " layers x " + std::to_string(s.n_head) + " heads x " +
                std::to_string(s.n_embd) + ", context " + std::to_string(s.n_ctx) +
                ", vocabulary " + std::to_string(s.n_vocab) +
                "; the options ask for a different one");
  }
  if (saved.data_hash != data_hash || saved.seed != o.seed) {
    throw Error("train: TrainOptions::resume: " + state_path +
                " was trained on other text, tokenizer or seed than these options give");
  }
  // tokenizer.gguf is a separate file: it must be the one the run started with.
  if (saved.tokenizer_hash != 0 && saved.tokenizer_hash != state.tokenizer_hash) {
    throw Error("train: TrainOptions::resume: " + paths.tokenizer + " is not the tokenizer that " +
                state_path + " was trained with (it was replaced after the run started)");
  }
  learn::read_state_tensors(state_path, model, opt);
  state.step = saved.step;
  state.history = saved.history;
  return state;
}

// The validation loss over fixed windows, spread evenly over the held-out tokens.
class Validator {
 public:
  Validator(const std::vector<int32_t>& val_tokens, int64_t eval_batches, int64_t B, int64_t T)
      : val_tokens_(val_tokens), eval_batches_(eval_batches), B_(B), T_(T) {
    const auto n_val_windows = eval_batches * B;
    const int64_t val_span = static_cast<int64_t>(val_tokens.size()) - T - 1;
    starts_.resize(static_cast<size_t>(n_val_windows));
    for (int64_t i = 0; i < n_val_windows; ++i) {
      starts_[static_cast<size_t>(i)] = val_span * i / std::max<int64_t>(1, n_val_windows);
    }
  }

  double operator()(Gpt& model, int threads) const {
    std::vector<int32_t> tokens, targets;
    double sum = 0;
    for (int64_t e = 0; e < eval_batches_; ++e) {
      const std::vector<int64_t> starts(starts_.begin() + e * B_, starts_.begin() + (e + 1) * B_);
      fill_batch(val_tokens_, starts, T_, tokens, targets);
      sum += model.forward(tokens.data(), targets.data(), B_, T_, threads);
    }
    return sum / static_cast<double>(eval_batches_);
  }

 private:
  const std::vector<int32_t>& val_tokens_;
  int64_t eval_batches_, B_, T_;
  std::vector<int64_t> starts_;
};

// The run's settings (key, value) for the HTML loss curve.
std::vector<std::pair<std::string, std::string>> run_settings(const TrainOptions& o,
                                                              const GptConfig& cfg,
                                                              int64_t n_params,
                                                              const TokenSplits& splits) {
  return {
      {"data", o.text_path.empty() ? "built-in corpus (seed " + std::to_string(o.corpus.seed) +
                                         ", " + std::to_string(o.corpus.n_stories) + " stories)"
                                   : o.text_path},
      {"tokenizer",
       std::string(tokenizer_name(o.tokenizer)) + ", " + std::to_string(cfg.n_vocab) + " tokens"},
      {"model", std::to_string(cfg.n_layer) + " layers x " + std::to_string(cfg.n_head) +
                    " heads x " + std::to_string(cfg.n_embd) + ", context " +
                    std::to_string(cfg.n_ctx) + ", " + std::to_string(n_params) + " parameters"},
      {"batch", std::to_string(o.batch) + " x " + std::to_string(o.n_ctx) + " tokens"},
      {"steps", std::to_string(o.steps)},
      {"lr", std::to_string(o.lr) + " -> " + std::to_string(o.min_lr) + ", warm-up " +
                 std::to_string(o.warmup)},
      {"seed", std::to_string(o.seed)},
      {"training tokens", std::to_string(splits.train.size())},
      {"validation tokens", std::to_string(splits.val.size())},
  };
}

// The latest validation loss in the history, NaN when there is none.
double last_val_loss(const std::vector<LossPoint>& history) {
  for (auto it = history.rbegin(); it != history.rend(); ++it)
    if (it->val_loss) return *it->val_loss;
  return std::numeric_limits<double>::quiet_NaN();
}

// What the training loop leaves for the result.
struct LoopOutcome {
  double last_loss = 0;
  double last_val = std::numeric_limits<double>::quiet_NaN();
  int64_t steps_here = 0;  // steps run by this process
};

// A training batch [B, T] and the window starts it was drawn from; reused across steps.
struct Batch {
  std::vector<int32_t> tokens, targets;
  std::vector<int64_t> starts;
};

// One optimisation step on the batch of `step` (a pure function of seed and step): forward,
// backward, gradient clipping and the AdamW update. Fills p's loss, lr and grad_norm.
void take_step(const TrainOptions& o, int64_t step, const std::vector<int32_t>& train_tokens,
               Gpt& model, learn::AdamW& opt, Batch& batch, TrainProgress& p) {
  const int64_t T = o.n_ctx, B = o.batch;
  const int64_t span = static_cast<int64_t>(train_tokens.size()) - T - 1;
  auto& [tokens, targets, starts] = batch;
  starts.resize(static_cast<size_t>(B));
  learn::Rng rng(o.seed, 0x5eedba7c0000ull + static_cast<uint64_t>(step));
  for (int64_t b = 0; b < B; ++b)
    starts[static_cast<size_t>(b)] =
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(span) + 1));
  fill_batch(train_tokens, starts, T, tokens, targets);
  model.zero_grad();
  const double loss = model.forward(tokens.data(), targets.data(), B, T, o.n_threads);
  if (!std::isfinite(loss)) {
    throw Error("train: the loss became " + std::to_string(loss) + " at step " +
                std::to_string(step + 1) + "; lower TrainOptions::lr");
  }
  model.backward(o.n_threads);
  p.grad_norm = learn::clip_grad_norm(model.grads(), o.grad_clip);
  p.lr = learn::learning_rate(step, o.steps, o.warmup, o.lr, o.min_lr);
  opt.update(model.params(), model.grads(), model.tensors(), p.lr);
  p.loss = loss;
}

}  // namespace

TrainResult train(const TrainOptions& o,
                  const std::function<void(const TrainProgress&)>& on_progress) {
  check_options(o);
  const auto t_start = std::chrono::steady_clock::now();
  const int threads = o.n_threads;

  // ---- Data and tokenizer ----
  check_out_dir(o.out_dir);
  const Corpus corpus(o);
  const RunPaths paths(o.out_dir);
  uint64_t data_hash = fnv1a(corpus.text);
  data_hash = fnv1a(std::string(tokenizer_name(o.tokenizer)) + "/" + std::to_string(o.vocab_size),
                    data_hash);
  const TokenizerSpec spec = load_or_train_tokenizer(o, corpus, paths);
  const Tokenizer tok(spec);
  const int64_t T = o.n_ctx, B = o.batch;
  const TokenSplits splits = tokenize_splits(tok, corpus, spec.eos, T);
  write_run_start(o, spec, paths);  // nothing is written before this point

  // ---- Model and optimizer ----
  const GptConfig cfg = model_config(o, tok.n_vocab());
  Gpt model(cfg);
  learn::AdamW opt(model.n_params(), adamw_options(o));
  learn::RunState state = restore_or_init(o, paths, cfg, data_hash, spec, model, opt);
  const Validator evaluate(splits.val, o.eval_batches, B, T);
  const auto settings = run_settings(o, cfg, model.n_params(), splits);

  // ---- The loop ----
  const int64_t point_every = std::max<int64_t>(1, o.eval_every / 5);
  LoopOutcome out;
  out.last_val = last_val_loss(state.history);
  double loss_sum = 0;
  int64_t loss_count = 0;
  if (state.step == 0 && state.history.empty()) {
    // The untrained model's validation loss (about log V), the curve's first point.
    LossPoint p0;
    p0.val_loss = out.last_val = evaluate(model, threads);
    p0.train_loss = *p0.val_loss;
    state.history.push_back(p0);
  }
  Batch batch;
  const auto t_loop = std::chrono::steady_clock::now();
  for (int64_t step = state.step; step < o.steps; ++step) {
    TrainProgress p;
    take_step(o, step, splits.train, model, opt, batch, p);
    ++out.steps_here;
    out.last_loss = p.loss;
    loss_sum += p.loss;
    ++loss_count;

    const int64_t done = step + 1;
    p.step = done;
    p.steps = o.steps;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();
    p.elapsed_s = secs;
    p.tokens_per_s = secs > 0 ? static_cast<double>(out.steps_here * B * T) / secs : 0;
    const bool last = done == o.steps;
    if (done % o.eval_every == 0 || last) {
      out.last_val = evaluate(model, threads);
      p.val_loss = out.last_val;
    }
    if (done % point_every == 0 || last || p.val_loss) {
      LossPoint lp;
      lp.step = done;
      lp.train_loss = loss_sum / static_cast<double>(loss_count);
      lp.val_loss = p.val_loss;
      state.history.push_back(lp);
      loss_sum = 0;
      loss_count = 0;
    }
    if (done % o.checkpoint_every == 0 || last) {
      state.step = done;
      learn::write_model_gguf(paths.model, model, spec, done, out.last_val);
      learn::write_state_gguf(paths.state, state, model, opt);
      write_curves(o.out_dir, state.history, settings);
      p.checkpoint = true;
    }
    if (on_progress) on_progress(p);
  }
  if (out.steps_here == 0 && !fs::exists(paths.model)) {
    // Nothing ran (resumed at the end): still leave a model behind.
    learn::write_model_gguf(paths.model, model, spec, state.step, out.last_val);
  }

  TrainResult r;
  r.n_params = model.n_params();
  r.n_vocab = cfg.n_vocab;
  r.train_tokens = static_cast<int64_t>(splits.train.size());
  r.val_tokens = static_cast<int64_t>(splits.val.size());
  r.steps_done = std::max(state.step, o.steps);
  // Resumed at or past the last step: nothing ran here, so the last recorded loss stands.
  r.final_train_loss =
      out.steps_here > 0 || state.history.empty() ? out.last_loss : state.history.back().train_loss;
  r.final_val_loss = std::isnan(out.last_val) ? evaluate(model, threads) : out.last_val;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  r.history = state.history;
  r.model_path = paths.model;
  return r;
}

}  // namespace qkv
