// qkv embed -m MODEL TEXT... [--pooling cls|mean|pooler] [--no-normalize] [--json] [--threads N]
//   One sentence embedding per TEXT from an encoder (BERT): one line of numbers per text, or
//   {"n_embd": D, "pooling": "...", "normalized": true, "embeddings": [[...], ...]} with --json.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "qkv/session.h"

namespace qkv::app {
namespace cmd_embed {  // one per subcommand: the qkv target is a unity build
namespace {

struct EmbedCliOptions {
  std::string model;
  std::string tokenizer;
  std::vector<std::string> texts;
  std::string pooling = "cls";
  bool no_normalize = false;
  bool no_parse_special = false;
  bool json = false;
  int threads = 0;
};

void run(const EmbedCliOptions& o) {
  const Model model = Model::load(
      o.model, {.tokenizer_path = o.tokenizer, .require_tokenizer = true, .progress = {}});
  const EmbedOptions opt{.pooling = o.pooling == "mean"     ? Pooling::mean
                                    : o.pooling == "pooler" ? Pooling::pooler
                                                            : Pooling::cls,
                         .normalize = !o.no_normalize,
                         .parse_special = !o.no_parse_special,
                         .n_threads = o.threads};
  std::vector<std::vector<float>> out;
  for (const std::string& text : o.texts) out.push_back(embed(model, text, opt));
  if (o.json) {
    nlohmann::json j;
    j["n_embd"] = model.config().n_embd;
    j["pooling"] = o.pooling;
    j["normalized"] = opt.normalize;
    j["embeddings"] = out;
    std::cout << j.dump() << "\n";
    return;
  }
  for (const auto& e : out) {
    for (size_t i = 0; i < e.size(); ++i) std::printf(i ? " %.7g" : "%.7g", double(e[i]));
    std::printf("\n");
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<EmbedCliOptions>();
  app.add_option("-m,--model", o->model, "encoder model: GGUF file or HF folder (BERT)")
      ->required();
  app.add_option("-t,--tokenizer", o->tokenizer, "tokenizer file (tokenizer.json, vocab.txt)");
  app.add_option("texts", o->texts, "texts to embed, one embedding each")->required();
  app.add_option("--pooling", o->pooling,
                 "cls: the [CLS] state; mean: the mean of the token states; pooler: BERT's pooler")
      ->check(CLI::IsMember({"cls", "mean", "pooler"}))
      ->capture_default_str();
  app.add_flag("--no-normalize", o->no_normalize, "leave the embedding unnormalised (default: L2)");
  app.add_flag("--no-parse-special", o->no_parse_special,
               "tokenize special tokens written in the text ([SEP]) as plain text");
  app.add_flag("--json", o->json, "print JSON");
  app.add_option("--threads", o->threads, "threads (0 = all)")->capture_default_str();
  app.callback([o] { run(*o); });
}

Registrar reg("embed", "Sentence embeddings from an encoder model (BERT)", setup);

}  // namespace
}  // namespace cmd_embed
}  // namespace qkv::app
