// qkv train [--text FILE] [--out DIR] [--tokenizer bpe|byte] [--vocab N] [--layers L --heads H
//           --embd C --ctx T] [--batch B] [--steps N] [--lr X] [--min-lr X] [--warmup N]
//           [--weight-decay X] [--grad-clip X] [--seed S] [--eval-every N] [--eval-batches N]
//           [--checkpoint-every N] [--resume] [--stories N] [--corpus-seed S]
//           [--write-corpus FILE] [--threads N]
//   Trains a GPT-2-style model on a UTF-8 text file (documents separated by blank lines) or on
//   the built-in story corpus, printing a progress bar with tokens/s and the loss, and the
//   validation loss every --eval-every steps. DIR receives model.gguf (loads in qkv generate and
//   qkv explain), state.gguf (for --resume), tokenizer.gguf and the loss curve (loss.csv, .svg,
//   .png, .html). Ctrl-C, a crash or a time limit loses at most --checkpoint-every steps:
//   run the same command with --resume.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "command.h"
#include "qkv/error.h"
#include "qkv/file_io.h"
#include "qkv/trainer.h"

namespace qkv::app {
namespace cmd_train {  // one per subcommand: the qkv target is a unity build
namespace {

struct TrainCli {
  TrainOptions o;
  std::string write_corpus;
  bool quiet = false;
};

std::string duration(double s) {
  char b[32];
  if (s >= 3600) {
    std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
  } else if (s >= 60) {
    std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
  } else {
    std::snprintf(b, sizeof b, "%.0fs", s);
  }
  return b;
}

// The library names its options as TrainOptions fields; this command's users know them as flags.
std::string in_flags(std::string what) {
  static constexpr std::pair<std::string_view, std::string_view> kFlagOf[] = {
      {"n_layer", "--layers"},
      {"n_head", "--heads"},
      {"n_embd", "--embd"},
      {"n_ctx", "--ctx"},
      {"batch", "--batch"},
      {"steps", "--steps"},
      {"eval_every", "--eval-every"},
      {"eval_batches", "--eval-batches"},
      {"checkpoint_every", "--checkpoint-every"},
      {"tokenizer", "--tokenizer"},
      {"vocab_size", "--vocab"},
      {"min_lr", "--min-lr"},
      {"lr", "--lr"},
      {"val_fraction", "--val-fraction"},
      {"warmup", "--warmup"},
      {"out_dir", "--out"},
      {"n_threads", "--threads"},
      {"resume", "--resume"},
  };
  constexpr std::string_view kPrefix = "TrainOptions::";
  std::string out;
  size_t from = 0;
  for (size_t at = what.find(kPrefix); at != std::string::npos; at = what.find(kPrefix, from)) {
    out.append(what, from, at - from);
    size_t end = at + kPrefix.size();
    while (end < what.size() &&
           (std::isalnum(static_cast<unsigned char>(what[end])) != 0 || what[end] == '_')) {
      ++end;
    }
    const std::string_view field(what.data() + at + kPrefix.size(), end - at - kPrefix.size());
    std::string_view flag;
    for (const auto& [name, f] : kFlagOf) {
      if (name == field) flag = f;
    }
    if (flag.empty()) {
      out.append(what, at, end - at);  // a field with no flag stays as the library wrote it
    } else {
      out += flag;
    }
    from = end;
  }
  out.append(what, from, std::string::npos);
  return out;
}

TrainResult train_in_flags(const TrainOptions& o,
                           const std::function<void(const TrainProgress&)>& on_progress) {
  try {
    return train(o, on_progress);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(in_flags(e.what()));
  } catch (const Error& e) {
    throw Error(in_flags(e.what()));
  }
}

void run(const TrainCli& cli) {
  if (!cli.write_corpus.empty()) {
    write_output_file(cli.write_corpus, generate_corpus(cli.o.corpus));
    std::fprintf(stderr, "wrote the built-in corpus (%lld stories, seed %llu) to %s\n",
                 static_cast<long long>(cli.o.corpus.n_stories),
                 static_cast<unsigned long long>(cli.o.corpus.seed), cli.write_corpus.c_str());
    return;
  }
  const bool tty = isatty(fileno(stderr)) != 0;
  double last_val = NAN;
  const TrainResult r = train_in_flags(cli.o, [&](const TrainProgress& p) {
    if (p.val_loss) last_val = *p.val_loss;
    if (cli.quiet && !p.val_loss) return;
    // On a terminal, one line redrawn in place; otherwise a line per evaluation (logs stay short).
    if (!tty && !p.val_loss && p.step != p.steps) return;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * p.step / std::max<int64_t>(1, p.steps));
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
    const double eta =
        p.tokens_per_s > 0
            ? static_cast<double>((p.steps - p.step) * cli.o.batch * cli.o.n_ctx) / p.tokens_per_s
            : 0;
    char val[32] = "";
    if (!std::isnan(last_val)) std::snprintf(val, sizeof val, " val %.4f", last_val);
    std::fprintf(stderr, "%sstep %lld/%lld [%s] loss %.4f%s lr %.2e %.0f tok/s %s ETA %s%s",
                 tty ? "\r" : "", static_cast<long long>(p.step), static_cast<long long>(p.steps),
                 bar.c_str(), p.loss, val, p.lr, p.tokens_per_s, duration(p.elapsed_s).c_str(),
                 duration(eta).c_str(), tty && !p.val_loss ? "\x1b[K" : "\n");
    if (p.checkpoint && !tty)
      std::fprintf(stderr, "checkpoint at step %lld\n", static_cast<long long>(p.step));
  });
  if (tty) std::fprintf(stderr, "\n");
  std::printf(
      "trained %lld parameters (vocabulary %lld) for %lld steps in %s: training loss %.4f, "
      "validation loss %.4f\n"
      "model: %s\nloss curve: %s/loss.html (.svg, .png, .csv)\n",
      static_cast<long long>(r.n_params), static_cast<long long>(r.n_vocab),
      static_cast<long long>(r.steps_done), duration(r.seconds).c_str(), r.final_train_loss,
      r.final_val_loss, r.model_path.c_str(), cli.o.out_dir.c_str());
}

void setup(CLI::App& app) {
  auto cli = std::make_shared<TrainCli>();
  TrainOptions& o = cli->o;
  app.add_option("--text", o.text_path,
                 "UTF-8 text file, documents separated by blank lines (default: the built-in "
                 "story corpus)");
  app.add_option("-o,--out", o.out_dir, "output folder")->capture_default_str();
  add_enum_option(
      app, "--tokenizer", o.tokenizer, "bpe: trained on the text; byte: raw bytes",
      EnumNames<TrainTokenizer>{{"bpe", TrainTokenizer::bpe}, {"byte", TrainTokenizer::byte}});
  app.add_option("--vocab", o.vocab_size, "BPE vocabulary size")->capture_default_str();
  app.add_option("--layers", o.n_layer, "transformer blocks")->capture_default_str();
  app.add_option("--heads", o.n_head, "attention heads")->capture_default_str();
  app.add_option("--embd", o.n_embd, "model width")->capture_default_str();
  app.add_option("--ctx", o.n_ctx, "context length (tokens per training sequence)")
      ->capture_default_str();
  app.add_option("--batch", o.batch, "sequences per step")->capture_default_str();
  app.add_option("--steps", o.steps, "optimizer steps")->capture_default_str();
  app.add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  app.add_option("--min-lr", o.min_lr, "learning rate at the end of the cosine decay")
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "linear warm-up steps")->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay (matrices, embeddings)")
      ->capture_default_str();
  app.add_option("--grad-clip", o.grad_clip, "clip the global gradient norm (0: off)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "initialisation and batch order")
      ->check(seed_check())
      ->capture_default_str();
  app.add_option("--val-fraction", o.val_fraction, "documents held out for validation")
      ->capture_default_str();
  app.add_option("--eval-every", o.eval_every, "steps between validation losses")
      ->capture_default_str();
  app.add_option("--eval-batches", o.eval_batches, "batches per validation loss")
      ->capture_default_str();
  app.add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints")
      ->capture_default_str();
  app.add_flag("--resume", o.resume, "continue from OUT/state.gguf");
  app.add_option("--stories", o.corpus.n_stories, "built-in corpus: number of stories")
      ->capture_default_str();
  app.add_option("--corpus-seed", o.corpus.seed, "built-in corpus: generator seed")
      ->check(seed_check())
      ->capture_default_str();
  app.add_option("--write-corpus", cli->write_corpus,
                 "write the built-in corpus to FILE and exit (no training)");
  add_threads_option(app, o.n_threads);
  app.add_flag("-q,--quiet", cli->quiet, "print only validation steps");
  app.callback([cli] { run(*cli); });
}

Registrar reg("train", "Train a small GPT-2-style model (built-in corpus or a text file)", setup);

}  // namespace
}  // namespace cmd_train
}  // namespace qkv::app
