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
#include <cstring>
#include <filesystem>
#include <memory>

#include "command.h"
#include "formats/quant_types.h"
#include "kernels/quant/quantize.h"
#include "qkv/model_file.h"

namespace qkv::app {
namespace cmd_quantize {  // one per subcommand: the qkv target is a unity build
namespace {

struct QuantizeArgs {
  std::string in, out, type;
  bool pure = false;
};

// llama.cpp's LLAMA_FTYPE_MOSTLY_* values (general.file_type).
uint32_t file_type(kernels::quant::QuantType q) {
  using Q = kernels::quant::QuantType;
  switch (q) {
    case Q::q4_0:
      return 2;
    case Q::q4_1:
      return 3;
    case Q::q8_0:
      return 7;
    case Q::q5_0:
      return 8;
    case Q::q5_1:
      return 9;
    default:
      return 0;
  }
}

void run(const QuantizeArgs& a) {
  namespace kq = kernels::quant;
  std::optional<kq::QuantType> q;
  for (const kq::QuantFormat& f : kq::kQuantFormats) {
    if (f.name == a.type) q = f.type;
  }
  if (!q || !kq::can_quantize(*q)) {
    throw InvalidArgument("--type: expected Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0, found \"" + a.type +
                          "\"" + (q ? " (its quantizer is not written yet)" : ""));
  }
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
  const TensorType out_type = formats::tensor_type_of(*q);
  const int64_t block = kq::quant_block_elems(*q);
  std::vector<GgufTensorDecl> decls;
  std::vector<bool> quantized;
  uint64_t in_bytes = 0, out_bytes = 0;
  for (const TensorInfo& t : m.tensors) {
    GgufTensorDecl d{t.name, t.type, t.shape};
    const bool matrix = t.shape.size() >= 2 && t.name.ends_with("weight");
    bool quantize = matrix && t.type != out_type;
    if (quantize && t.shape.back() % block != 0) {
      std::fprintf(stderr, "note: %s: rows of %lld values are not whole blocks of %lld; kept %s\n",
                   t.name.c_str(), static_cast<long long>(t.shape.back()),
                   static_cast<long long>(block), std::string(tensor_type_name(t.type)).c_str());
      quantize = false;
    }
    if (quantize) d.type = out_type;
    decls.push_back(d);
    quantized.push_back(quantize);
    in_bytes += t.n_bytes;
  }
  Metadata meta = m.metadata;
  meta.set("general.file_type", MetaValue::make_uint(MetaValue::Type::u32, file_type(*q)));
  meta.set("general.quantization_version", MetaValue::make_uint(MetaValue::Type::u32, 2));
  write_gguf_streaming(a.out, meta, decls, [&](size_t i, std::span<std::byte> out) {
    const TensorInfo& t = m.tensors[i];
    if (!quantized[i]) {
      std::memcpy(out.data(), t.data, out.size());
    } else {
      const std::vector<float> v = tensor_to_f32(t);
      kq::quantize(*q, v.data(), static_cast<int64_t>(v.size()), out.data());
    }
    out_bytes += out.size();
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s: tensors %.2f MB -> %.2f MB (%s, pure) in %.2f s\n", a.out.c_str(),
               static_cast<double>(in_bytes) / 1e6, static_cast<double>(out_bytes) / 1e6,
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
