// qkv quantize -m IN.gguf -o OUT.gguf --type PRESET [--pure] [--allow-requantize] [--threads N]
//   Writes the GGUF again with its weight matrices quantized as llama.cpp's llama-quantize does
//   without an importance matrix. PRESET is one of llama-quantize's: Q4_0, Q4_1, Q5_0, Q5_1,
//   Q8_0 (ggml's reference quantizers: the same bytes as llama-quantize --pure), Q2_K, Q3_K_M,
//   Q4_K_M, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS (our own quantizers, per-tensor RMSE held against
//   llama-quantize's). The presets mix types per tensor by llama.cpp's rules (output.weight in
//   Q6_K, attn_v / ffn_down promoted by layer, Q5_0 / Q5_1 / Q8_0 where rows are not whole blocks
//   of 256); --pure puts every weight matrix in the preset's base type. Vectors (norms, biases)
//   keep their type. The metadata is copied, with general.file_type and
//   general.quantization_version set as llama.cpp sets them. docs/QUANTIZATION.md.
#include <CLI/CLI.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
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
  bool allow_requantize = false;
  bool verbose = false;
  int threads = 0;
};

void run(QuantizeArgs a) {
  // As llama-quantize: the preset's name in any case (q4_k_m is Q4_K_M).
  for (char& c : a.type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string problem = quantize_type_problem(a.type);
  if (!problem.empty()) throw InvalidArgument("--type: " + problem);
  if (a.threads < 0) {
    throw InvalidArgument("--threads: expected 0 (all) or more, found " +
                          std::to_string(a.threads));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ModelFile m = open_model(a.in);
  if (m.format != FileFormat::gguf) {
    throw InvalidArgument(a.in + ": expected a GGUF file, found " +
                          std::string(file_format_name(m.format)) +
                          " (convert it first: qkv convert -m IN -o IN.gguf)");
  }
  QuantizeOptions o;
  o.pure = a.pure;
  o.allow_requantize = a.allow_requantize;
  o.n_threads = a.threads;
  o.on_note = [](const std::string& note) { std::fprintf(stderr, "note: %s\n", note.c_str()); };
  const QuantizeResult r = quantize_gguf(m, a.type, a.out, o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::map<std::string_view, int> counts;
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    if (a.verbose) {
      std::fprintf(stderr, "%-40s %s\n", r.tensors[i].name.c_str(),
                   std::string(tensor_type_name(r.tensors[i].type)).c_str());
    }
    ++counts[tensor_type_name(r.tensors[i].type)];
  }
  std::string mix;
  for (const auto& [name, n] : counts) {
    mix += (mix.empty() ? "" : ", ") + std::to_string(n) + " " + std::string(name);
  }
  std::fprintf(stderr, "wrote %s: tensors %.2f MB -> %.2f MB (%s%s: %s) in %.2f s\n", a.out.c_str(),
               static_cast<double>(r.in_bytes) / 1e6, static_cast<double>(r.out_bytes) / 1e6,
               a.type.c_str(), a.pure ? ", pure" : "", mix.c_str(), s);
}

void setup(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  app.add_option("-m,--model", a->in,
                 "input GGUF (F32, F16 or BF16; already quantized with --allow-requantize)")
      ->required();
  app.add_option("-o,--out", a->out, "output .gguf")->required();
  app.add_option("--type", a->type,
                 "preset: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K, "
                 "IQ4_NL or IQ4_XS (Q3_K, Q4_K, Q5_K: the _M presets)")
      ->required();
  app.add_flag("--pure", a->pure, "every weight matrix in the preset's base type, no mixing");
  app.add_flag("--allow-requantize", a->allow_requantize,
               "quantize tensors that are already quantized again (both roundings add up: "
               "quantize the F32/F16/BF16 original where there is one)");
  app.add_option("--threads", a->threads, "threads (0: all)");
  app.add_flag("-v,--verbose", a->verbose, "list every tensor's type");
  app.callback([a] { run(*a); });
}

Registrar reg("quantize", "Quantize a GGUF's weights as llama-quantize does (presets or --pure)",
              setup);

}  // namespace
}  // namespace cmd_quantize
}  // namespace qkv::app
