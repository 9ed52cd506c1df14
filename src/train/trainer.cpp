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

void check_options(const TrainOptions& o) {
  auto positive = [](const char* name, int64_t v) {
    if (v < 1) core::throw_invalid("train: ", name, " must be at least 1, found ", v);
  };
  positive("--layers", o.n_layer);
  positive("--heads", o.n_head);
  positive("--embd", o.n_embd);
  positive("--ctx", o.n_ctx);
  positive("--batch", o.batch);
  positive("--steps", o.steps);
  positive("--eval-every", o.eval_every);
  positive("--eval-batches", o.eval_batches);
  positive("--checkpoint-every", o.checkpoint_every);
  if (o.n_embd % o.n_head != 0) {
    core::throw_invalid("train: --embd ", o.n_embd, " is not a multiple of --heads ", o.n_head);
  }
  if (o.tokenizer != "bpe" && o.tokenizer != "byte") {
    core::throw_invalid("train: --tokenizer: expected bpe or byte, found \"", o.tokenizer, "\"");
  }
  if (o.tokenizer == "bpe" && (o.vocab_size < 257 || o.vocab_size > 65536)) {
    core::throw_invalid("train: --vocab must be in [257, 65536], found ", o.vocab_size);
  }
  if (!(o.lr > 0) || !(o.min_lr >= 0) || o.min_lr > o.lr) {
    core::throw_invalid("train: expected 0 <= --min-lr <= --lr and --lr > 0, found lr ", o.lr,
                        ", min-lr ", o.min_lr);
  }
  if (!(o.val_fraction > 0 && o.val_fraction < 0.5)) {
    core::throw_invalid("train: --val-fraction must be in (0, 0.5), found ", o.val_fraction);
  }
  if (o.warmup < 0) core::throw_invalid("train: --warmup must be >= 0, found ", o.warmup);
  if (o.out_dir.empty()) core::throw_invalid("train: --out is empty");
  if (o.n_threads < 0) core::throw_invalid("train: --threads must be >= 0, found ", o.n_threads);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("train: cannot open " + path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
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
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw Error("train: cannot write " + path);
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

}  // namespace

TrainResult train(const TrainOptions& o,
                  const std::function<void(const TrainProgress&)>& on_progress) {
  check_options(o);
  const auto t_start = std::chrono::steady_clock::now();
  const int threads = o.n_threads;

  // ---- Data and tokenizer ----
  const std::string text = o.text_path.empty() ? generate_corpus(o.corpus) : read_text(o.text_path);
  const std::vector<std::string_view> docs = split_documents(text);
  if (docs.size() < 2) {
    throw Error("train: " + (o.text_path.empty() ? std::string("the corpus") : o.text_path) +
                " has " + std::to_string(docs.size()) +
                " document(s); need at least 2 (documents are separated by blank lines)");
  }
  const auto n_val_docs =
      std::max<size_t>(1, static_cast<size_t>(static_cast<double>(docs.size()) * o.val_fraction));
  const std::span<const std::string_view> train_docs(docs.data(), docs.size() - n_val_docs);
  const std::span<const std::string_view> val_docs(docs.data() + train_docs.size(), n_val_docs);

  fs::create_directories(o.out_dir);
  const std::string state_path = o.out_dir + "/state.gguf";
  const std::string tokenizer_path = o.out_dir + "/tokenizer.gguf";
  const std::string model_path = o.out_dir + "/model.gguf";
  uint64_t data_hash = fnv1a(text);
  data_hash = fnv1a(o.tokenizer + "/" + std::to_string(o.vocab_size), data_hash);

  TokenizerSpec spec;
  if (o.resume) {
    if (!fs::exists(state_path)) {
      throw Error("train: --resume: " + state_path + " does not exist (start without --resume)");
    }
    spec = tokenizer_spec_from_gguf(read_gguf(tokenizer_path));
  } else {
    // The tokenizer learns from the training documents only.
    std::string train_text;
    for (std::string_view d : train_docs) {
      train_text.append(d);
      train_text.append("\n\n");
    }
    BpeTrainOptions bo;
    bo.vocab_size = o.tokenizer == "byte" ? 257 : o.vocab_size;
    spec = train_byte_bpe(train_text, bo);
    GgufWriter w;
    Metadata md;
    md.set("general.architecture", MetaValue::make_string("gpt2"));
    tokenizer_spec_to_gguf(spec, md);
    for (const auto& [k, v] : md.entries()) w.set(k, v);
    w.write(tokenizer_path);
  }
  const Tokenizer tok(spec);
  const int32_t eot = spec.eos;
  const std::vector<int32_t> train_tokens = tokenize_documents(tok, train_docs, eot);
  const std::vector<int32_t> val_tokens = tokenize_documents(tok, val_docs, eot);
  const int64_t T = o.n_ctx, B = o.batch;
  if (static_cast<int64_t>(train_tokens.size()) < T + 2 ||
      static_cast<int64_t>(val_tokens.size()) < T + 2) {
    throw Error("train: too little text: " + std::to_string(train_tokens.size()) +
                " training and " + std::to_string(val_tokens.size()) +
                " validation tokens, need more than the context (" + std::to_string(T + 1) +
                ") in each; use more text, a smaller --ctx or a larger --val-fraction");
  }

  // ---- Model and optimizer ----
  GptConfig cfg;
  cfg.n_vocab = tok.n_vocab();
  cfg.n_ctx = o.n_ctx;
  cfg.n_embd = o.n_embd;
  cfg.n_head = o.n_head;
  cfg.n_layer = o.n_layer;
  Gpt model(cfg);
  learn::AdamWOptions ao;
  ao.beta1 = o.beta1;
  ao.beta2 = o.beta2;
  ao.weight_decay = o.weight_decay;
  learn::AdamW opt(model.n_params(), ao);
  learn::RunState state;
  state.config = cfg;
  state.seed = o.seed;
  state.data_hash = data_hash;
  if (o.resume) {
    const learn::RunState saved = learn::read_state_header(state_path);
    const GptConfig& s = saved.config;
    if (s.n_layer != cfg.n_layer || s.n_head != cfg.n_head || s.n_embd != cfg.n_embd ||
        s.n_ctx != cfg.n_ctx || s.n_vocab != cfg.n_vocab) {
      throw Error("train: --resume: " + state_path + " is a model of " + std::to_string(s.n_layer) +
                  " layers x " + std::to_string(s.n_head) + " heads x " + std::to_string(s.n_embd) +
                  ", context " + std::to_string(s.n_ctx) + ", vocabulary " +
                  std::to_string(s.n_vocab) + "; the options ask for a different one");
    }
    if (saved.data_hash != data_hash || saved.seed != o.seed) {
      throw Error("train: --resume: " + state_path +
                  " was trained on other text, tokenizer or seed than these options give");
    }
    learn::read_state_tensors(state_path, model, opt);
    state.step = saved.step;
    state.history = saved.history;
  } else {
    model.init_weights(o.seed);
  }

  // Fixed validation windows, spread evenly over the held-out tokens.
  const auto n_val_windows = o.eval_batches * B;
  const int64_t val_span = static_cast<int64_t>(val_tokens.size()) - T - 1;
  std::vector<int64_t> val_starts(static_cast<size_t>(n_val_windows));
  for (int64_t i = 0; i < n_val_windows; ++i) {
    val_starts[static_cast<size_t>(i)] = val_span * i / std::max<int64_t>(1, n_val_windows);
  }
  auto evaluate = [&]() {
    std::vector<int32_t> tokens, targets;
    double sum = 0;
    for (int64_t e = 0; e < o.eval_batches; ++e) {
      const std::vector<int64_t> starts(val_starts.begin() + e * B,
                                        val_starts.begin() + (e + 1) * B);
      fill_batch(val_tokens, starts, T, tokens, targets);
      sum += model.forward(tokens.data(), targets.data(), B, T, threads);
    }
    return sum / static_cast<double>(o.eval_batches);
  };

  const std::vector<std::pair<std::string, std::string>> settings = {
      {"data", o.text_path.empty() ? "built-in corpus (seed " + std::to_string(o.corpus.seed) +
                                         ", " + std::to_string(o.corpus.n_stories) + " stories)"
                                   : o.text_path},
      {"tokenizer", o.tokenizer + ", " + std::to_string(cfg.n_vocab) + " tokens"},
      {"model", std::to_string(cfg.n_layer) + " layers x " + std::to_string(cfg.n_head) +
                    " heads x " + std::to_string(cfg.n_embd) + ", context " +
                    std::to_string(cfg.n_ctx) + ", " + std::to_string(model.n_params()) +
                    " parameters"},
      {"batch", std::to_string(B) + " x " + std::to_string(T) + " tokens"},
      {"steps", std::to_string(o.steps)},
      {"lr", std::to_string(o.lr) + " -> " + std::to_string(o.min_lr) + ", warm-up " +
                 std::to_string(o.warmup)},
      {"seed", std::to_string(o.seed)},
      {"training tokens", std::to_string(train_tokens.size())},
      {"validation tokens", std::to_string(val_tokens.size())},
  };

  // ---- The loop ----
  const int64_t point_every = std::max<int64_t>(1, o.eval_every / 5);
  std::vector<int32_t> tokens, targets;
  std::vector<int64_t> starts(static_cast<size_t>(B));
  const int64_t span = static_cast<int64_t>(train_tokens.size()) - T - 1;
  double loss_sum = 0, last_loss = 0, last_val = std::numeric_limits<double>::quiet_NaN();
  int64_t loss_count = 0, steps_here = 0;
  if (!state.history.empty()) {
    for (auto it = state.history.rbegin(); it != state.history.rend(); ++it)
      if (it->val_loss) {
        last_val = *it->val_loss;
        break;
      }
  }
  if (state.step == 0 && state.history.empty()) {
    // The untrained model's validation loss (about log V), the curve's first point.
    LossPoint p0;
    p0.val_loss = last_val = evaluate();
    p0.train_loss = *p0.val_loss;
    state.history.push_back(p0);
  }
  const auto t_loop = std::chrono::steady_clock::now();
  for (int64_t step = state.step; step < o.steps; ++step) {
    learn::Rng rng(o.seed, 0x5eedba7c0000ull + static_cast<uint64_t>(step));
    for (int64_t b = 0; b < B; ++b)
      starts[static_cast<size_t>(b)] =
          static_cast<int64_t>(rng.below(static_cast<uint64_t>(span) + 1));
    fill_batch(train_tokens, starts, T, tokens, targets);
    model.zero_grad();
    const double loss = model.forward(tokens.data(), targets.data(), B, T, threads);
    if (!std::isfinite(loss)) {
      throw Error("train: the loss became " + std::to_string(loss) + " at step " +
                  std::to_string(step + 1) + "; lower --lr");
    }
    model.backward(threads);
    const double norm = learn::clip_grad_norm(model.grads(), o.grad_clip);
    const double lr = learn::learning_rate(step, o.steps, o.warmup, o.lr, o.min_lr);
    opt.update(model.params(), model.grads(), model.tensors(), lr);
    ++steps_here;
    last_loss = loss;
    loss_sum += loss;
    ++loss_count;

    const int64_t done = step + 1;
    TrainProgress p;
    p.step = done;
    p.steps = o.steps;
    p.loss = loss;
    p.lr = lr;
    p.grad_norm = norm;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();
    p.elapsed_s = secs;
    p.tokens_per_s = secs > 0 ? static_cast<double>(steps_here * B * T) / secs : 0;
    const bool last = done == o.steps;
    if (done % o.eval_every == 0 || last) {
      last_val = evaluate();
      p.val_loss = last_val;
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
      learn::write_model_gguf(model_path, model, spec, done, last_val);
      learn::write_state_gguf(state_path, state, model, opt);
      write_curves(o.out_dir, state.history, settings);
      p.checkpoint = true;
    }
    if (on_progress) on_progress(p);
  }
  if (steps_here == 0 && !fs::exists(model_path)) {
    // Nothing ran (resumed at the end): still leave a model behind.
    learn::write_model_gguf(model_path, model, spec, state.step, last_val);
  }

  TrainResult r;
  r.n_params = model.n_params();
  r.n_vocab = cfg.n_vocab;
  r.train_tokens = static_cast<int64_t>(train_tokens.size());
  r.val_tokens = static_cast<int64_t>(val_tokens.size());
  r.steps_done = std::max(state.step, o.steps);
  r.final_train_loss = last_loss;
  r.final_val_loss = std::isnan(last_val) ? evaluate() : last_val;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  r.history = state.history;
  r.model_path = model_path;
  return r;
}

}  // namespace qkv
