// qkv tokenize -m MODEL [-t TOKENIZER] "text" [--json] [--no-special] [--no-parse-special]
//   Prints the token ids and pieces of the text. MODEL is a GGUF, an HF folder, a llama2.c .bin
//   (its tokenizer.bin beside it or given with -t), or a tokenizer file alone.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "model_source.h"

namespace qkv::app {
namespace cmd_tokenize {  // one per subcommand: the qkv target is a unity build
namespace {

struct TokenizeOptions {
  std::string model;
  std::string tokenizer;
  std::string text;
  bool json = false;
  bool no_special = false;
  bool no_parse_special = false;
};

void run(const TokenizeOptions& o) {
  if (o.model.empty() && o.tokenizer.empty()) {
    throw Error("pass a model (-m model.gguf, an HF folder, a llama2.c .bin) or a tokenizer (-t)");
  }
  std::string text = o.text;
  if (text == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  TokenizerSpec spec;
  if (o.model.empty()) {
    spec = read_tokenizer_file(o.tokenizer);
  } else {
    const ModelFile m = open_model(o.model);
    spec = tokenizer_spec_for(m, o.tokenizer);
  }
  const Tokenizer tok(std::move(spec));
  const std::vector<int32_t> ids =
      tok.encode(text, {.add_special = !o.no_special, .parse_special = !o.no_parse_special});
  if (o.json) {
    nlohmann::json j;
    j["ids"] = ids;
    j["pieces"] = nlohmann::json::array();
    for (int32_t id : ids) j["pieces"].push_back(tok.token(id));
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  std::printf("%zu tokens\n", ids.size());
  for (int32_t id : ids) std::printf("%8d  %s\n", id, escape_piece(tok.token(id)).c_str());
}

void setup(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  add_model_option(app, o->model);
  add_tokenizer_option(app, o->tokenizer);
  app.add_option("text", o->text, "text to tokenize (\"-\" reads standard input)")->required();
  add_json_flag(app, o->json)->description("print {\"ids\": [...], \"pieces\": [...]}");
  app.add_flag("--no-special", o->no_special, "add no BOS / EOS / [CLS] [SEP]");
  app.add_flag("--no-parse-special", o->no_parse_special,
               "tokenize special tokens written in the text (<|endoftext|>) as plain text");
  app.callback([o] { run(*o); });
}

Registrar reg("tokenize", "Tokenize text with a model's tokenizer", setup);

}  // namespace
}  // namespace cmd_tokenize
}  // namespace qkv::app
