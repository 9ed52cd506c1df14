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

const EnumNames<Pooling> kPoolingNames{
    {"cls", Pooling::cls}, {"mean", Pooling::mean}, {"pooler", Pooling::pooler}};

struct EmbedCliOptions {
  std::string model;
  std::string tokenizer;
  std::vector<std::string> texts;
  Pooling pooling = Pooling::cls;
  bool no_normalize = false;
  bool no_parse_special = false;
  bool json = false;
  int threads = 0;
};

void run(const EmbedCliOptions& o) {
  const Model model = Model::load(
      o.model, {.tokenizer_path = o.tokenizer, .require_tokenizer = true, .progress = {}});
  const EmbedOptions opt{.pooling = o.pooling,
                         .normalize = !o.no_normalize,
                         .parse_special = !o.no_parse_special,
                         .n_threads = o.threads};
  std::vector<std::vector<float>> out;
  for (const std::string& text : o.texts) out.push_back(embed(model, text, opt));
  if (o.json) {
    nlohmann::json j;
    j["n_embd"] = model.config().n_embd;
    j["pooling"] = enum_name(kPoolingNames, o.pooling);
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
  add_model_option(app, o->model)->required();
  add_tokenizer_option(app, o->tokenizer);
  app.add_option("texts", o->texts, "texts to embed, one embedding each")->required();
  add_enum_option(app, "--pooling", o->pooling,
                  "cls: the [CLS] state; mean: the mean of the token states; pooler: BERT's pooler",
                  kPoolingNames);
  app.add_flag("--no-normalize", o->no_normalize, "leave the embedding unnormalised (default: L2)");
  app.add_flag("--no-parse-special", o->no_parse_special,
               "tokenize special tokens written in the text ([SEP]) as plain text");
  add_json_flag(app, o->json);
  add_threads_option(app, o->threads);
  app.callback([o] { run(*o); });
}

Registrar reg("embed", "Sentence embeddings from an encoder model (BERT)", setup);

}  // namespace
}  // namespace cmd_embed
}  // namespace qkv::app
