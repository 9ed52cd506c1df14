#include <cstring>
#include <optional>

#include "formats/quant_types.h"
#include "kernels/quant/quantize.h"
#include "qkv/error.h"
#include "qkv/quantize.h"

namespace qkv {
namespace {

namespace kq = kernels::quant;

std::optional<kq::QuantType> quant_type_named(std::string_view name) {
  for (const kq::QuantFormat& f : kq::kQuantFormats) {
    if (f.name == name) return f.type;
  }
  return std::nullopt;
}

// llama.cpp's LLAMA_FTYPE_MOSTLY_* values (general.file_type).
uint32_t file_type(kq::QuantType q) {
  using Q = kq::QuantType;
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

}  // namespace

std::vector<std::string_view> quantize_type_names() {
  std::vector<std::string_view> names;
  for (const kq::QuantFormat& f : kq::kQuantFormats) {
    if (kq::can_quantize(f.type)) names.push_back(f.name);
  }
  return names;
}

std::string quantize_type_problem(std::string_view type) {
  const std::optional<kq::QuantType> q = quant_type_named(type);
  if (q && kq::can_quantize(*q)) return {};
  const std::vector<std::string_view> names = quantize_type_names();
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) list += i + 1 == names.size() ? " or " : ", ";
    list += names[i];
  }
  return "expected " + list + ", found \"" + std::string(type) + "\"" +
         (q ? " (its quantizer is not written yet)" : "");
}

QuantizeResult quantize_gguf(const ModelFile& m, std::string_view type, const std::string& out_path,
                             const std::function<void(const std::string&)>& on_note) {
  const std::string problem = quantize_type_problem(type);
  if (!problem.empty()) throw InvalidArgument("quantize_gguf: type: " + problem);
  if (m.format != FileFormat::gguf) {
    throw InvalidArgument("quantize_gguf: " + m.path + ": expected a GGUF file, found " +
                          std::string(file_format_name(m.format)));
  }
  const kq::QuantType q = *quant_type_named(type);
  const TensorType out_type = formats::tensor_type_of(q);
  const int64_t block = kq::quant_block_elems(q);
  std::vector<GgufTensorDecl> decls;
  std::vector<bool> quantized;
  QuantizeResult r;
  for (const TensorInfo& t : m.tensors) {
    GgufTensorDecl d{t.name, t.type, t.shape};
    const bool matrix = t.shape.size() >= 2 && t.name.ends_with("weight");
    bool quantize = matrix && t.type != out_type;
    if (quantize && t.shape.back() % block != 0) {
      if (on_note) {
        on_note(t.name + ": rows of " + std::to_string(t.shape.back()) +
                " values are not whole blocks of " + std::to_string(block) + "; kept " +
                std::string(tensor_type_name(t.type)));
      }
      quantize = false;
    }
    if (quantize) d.type = out_type;
    decls.push_back(d);
    quantized.push_back(quantize);
    r.in_bytes += t.n_bytes;
  }
  Metadata meta = m.metadata;
  meta.set("general.file_type", MetaValue::make_uint(MetaValue::Type::u32, file_type(q)));
  meta.set("general.quantization_version", MetaValue::make_uint(MetaValue::Type::u32, 2));
  write_gguf_streaming(out_path, meta, decls, [&](size_t i, std::span<std::byte> out) {
    const TensorInfo& t = m.tensors[i];
    if (!quantized[i]) {
      std::memcpy(out.data(), t.data, out.size());
    } else {
      const std::vector<float> v = tensor_to_f32(t);
      kq::quantize(q, v.data(), static_cast<int64_t>(v.size()), out.data());
    }
    r.out_bytes += out.size();
  });
  return r;
}

}  // namespace qkv
