// qkv quantize -m IN.gguf -o OUT.gguf --type Q4_0|Q4_1|Q5_0|Q5_1|Q8_0 --pure
//   Writes the GGUF again with its weight matrices in one block format, quantized as llama.cpp's
//   llama-quantize does without an importance matrix (ggml's reference quantizers: the tensor
//   bytes are identical to llama-quantize --pure's; tests/apps/quantize_cli_test.py). Every 2-D
//   tensor whose name ends in "weight" is quantized; vectors (norms, biases) keep their type, and
//   so does a matrix whose rows are not whole blocks of 32 (a note names it). The metadata is
//   copied, with general.file_type and general.quantization_version set as llama.cpp sets them.
//   Without --pure llama.cpp mixes types (output.weight in Q6_K, ...); qkv cannot write the K
//   formats yet, so --pure is required.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>

#include "command.h"
#include "qkv/error.h"
#include "qkv/model_file.h"
#include "qkv/quantize.h"

namespace qkv::app {
namespace cmd_quantize {  // one per subcommand: the qkv target is a unity build
namespace {

struct QuantizeArgs {
  std::string in, out, type;
  bool pure = false;
};

void run(const QuantizeArgs& a) {
  const std::string problem = quantize_type_problem(a.type);
  if (!problem.empty()) throw InvalidArgument("--type: " + problem);
  if (!a.pure) {
    throw InvalidArgument(
        "without --pure llama.cpp's presets put output.weight (and more) in Q6_K, which qkv "
        "cannot write yet; pass --pure to put every weight matrix in " +
        a.type);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ModelFile m = open_model(a.in);
  if (m.format != FileFormat::gguf) {
    throw InvalidArgument(a.in + ": expected a GGUF file, found " +
                          std::string(file_format_name(m.format)) +
                          " (convert it first: qkv convert -m IN -o IN.gguf)");
  }
  const QuantizeResult r = quantize_gguf(m, a.type, a.out, [](const std::string& note) {
    std::fprintf(stderr, "note: %s\n", note.c_str());
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s: tensors %.2f MB -> %.2f MB (%s, pure) in %.2f s\n", a.out.c_str(),
               static_cast<double>(r.in_bytes) / 1e6, static_cast<double>(r.out_bytes) / 1e6,
               a.type.c_str(), s);
}

void setup(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  app.add_option("-m,--model", a->in, "input GGUF (F32, F16, BF16 or already quantized)")
      ->required();
  app.add_option("-o,--out", a->out, "output .gguf")->required();
  app.add_option("--type", a->type, "block format: Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0")->required();
  app.add_flag("--pure", a->pure, "every weight matrix in --type (required for now)");
  app.callback([a] { run(*a); });
}

Registrar reg("quantize", "Quantize a GGUF's weights to a block format, as llama-quantize does",
              setup);

}  // namespace
}  // namespace cmd_quantize
}  // namespace qkv::app
