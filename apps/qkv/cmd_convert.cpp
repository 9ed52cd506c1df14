// qkv convert -m MODEL [-t TOKENIZER] -o OUT.gguf [--dtype f32|f16|bf16|q8_0] [--name NAME]
//   Writes a model (HF folder, llama2.c .bin, GGUF) as GGUF in llama.cpp's conventions: tensor
//   names and metadata keys, Q/K rows permuted for interleaved RoPE, the tokenizer inside.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "command.h"
#include "qkv/convert.h"
#include "qkv/model.h"

namespace qkv::app {
namespace cmd_convert {  // one per subcommand: the qkv target is a unity build
namespace {

struct ConvertArgs {
  std::string model, tokenizer, out, name;
  std::optional<TensorType> dtype;  // none: keep each tensor's type
  TensorType dtype_arg = TensorType::f32;
};

void run(const ConvertArgs& a) {
  ConvertOptions opt;
  opt.name = a.name;
  opt.dtype = a.dtype;
  const auto t0 = std::chrono::steady_clock::now();
  LoadOptions load;
  load.tokenizer_path = a.tokenizer;
  const Model model = Model::load(a.model, load);
  std::fprintf(stderr, "%s\n", model.describe().c_str());
  if (!model.has_tokenizer()) {
    std::fprintf(stderr, "note: no tokenizer found; the GGUF will have none (pass -t)\n");
  }
  for (const std::string& note : convert_to_gguf(model, a.out, opt)) {
    std::fprintf(stderr, "note: %s\n", note.c_str());
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // A device (-o /dev/null) has no size: say only where it went.
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(a.out, ec);
  if (ec) {
    std::fprintf(stderr, "wrote %s in %.2f s\n", a.out.c_str(), s);
  } else {
    std::fprintf(stderr, "wrote %s (%.1f MB) in %.2f s\n", a.out.c_str(),
                 static_cast<double>(bytes) / 1e6, s);
  }
}

void setup(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  add_model_option(app, a->model)->required();
  add_tokenizer_option(app, a->tokenizer);
  app.add_option("-o,--out", a->out, "output .gguf")->required();
  CLI::Option* dtype = add_enum_option(app, "--dtype", a->dtype_arg,
                                       "type of the weight matrices (default: as stored)",
                                       EnumNames<TensorType>{{"f32", TensorType::f32},
                                                             {"f16", TensorType::f16},
                                                             {"bf16", TensorType::bf16},
                                                             {"q8_0", TensorType::q8_0}});
  dtype->default_str("");
  app.add_option("--name", a->name, "general.name (default: the source file name)");
  app.callback([a, dtype] {
    if (dtype->count() > 0) a->dtype = a->dtype_arg;
    run(*a);
  });
}

Registrar reg("convert", "Write a model as GGUF (llama.cpp conventions)", setup);

}  // namespace
}  // namespace cmd_convert
}  // namespace qkv::app
