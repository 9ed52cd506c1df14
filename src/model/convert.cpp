#include "qkv/convert.h"

#include <filesystem>

#include "core/error.h"
#include "core/half.h"
#include "model/arch.h"
#include "model/model_impl.h"

namespace qkv::model {

namespace {

struct Planned {
  const TensorSpec* spec;
  const TensorInfo* src;
  int layer;
  TensorType type;
  std::vector<int64_t> shape;  // as written, row-major [rows, cols]
  // Values stated by an HF config instead of a tensor (RoPE divisors); used when src is null.
  const std::vector<float>* values = nullptr;
};

// The RoPE divisors an HF config states as parameters (ModelConfig::rope_freqs...), which GGUF
// files carry as tensors; null for every other role.
const std::vector<float>* config_values(Role role, const ModelConfig& c) {
  const std::vector<float>* v = role == Role::rope_freqs           ? &c.rope_freqs
                                : role == Role::rope_factors_long  ? &c.rope_factors_long
                                : role == Role::rope_factors_short ? &c.rope_factors_short
                                                                   : nullptr;
  return v != nullptr && !v->empty() ? v : nullptr;
}

// llama.cpp's converter reorders the rows of Q and K of an HF LLaMA within each head from
// (first halves, second halves) to interleaved pairs, so that RoPE on pairs (2i, 2i+1) of the
// new rows equals rotate-half RoPE on pairs (i, i + head_dim/2) of the old ones:
//   new row h*hd + 2i + j  =  old row h*hd + j*hd/2 + i
std::vector<float> permute_rows(const std::vector<float>& w, int64_t n_head, int64_t head_dim,
                                int64_t cols) {
  std::vector<float> out(w.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t to = h * head_dim + 2 * i + j, from = h * head_dim + j * half + i;
        std::copy_n(w.data() + from * cols, cols, out.data() + to * cols);
      }
    }
  }
  return out;
}

void encode(const std::vector<float>& v, TensorType type, std::span<std::byte> out) {
  switch (type) {
    case TensorType::f32:
      std::memcpy(out.data(), v.data(), v.size() * 4);
      return;
    case TensorType::f16:
    case TensorType::bf16: {
      auto* h = reinterpret_cast<uint16_t*>(out.data());
      for (size_t i = 0; i < v.size(); ++i) {
        h[i] = type == TensorType::f16 ? core::f32_to_f16(v[i]) : core::f32_to_bf16(v[i]);
      }
      return;
    }
    case TensorType::q8_0:
      quantize_q8_0(v.data(), static_cast<int64_t>(v.size()), out.data());
      return;
    default:
      break;
  }
  core::throw_invalid("convert: cannot write dtype ", tensor_type_name(type));
}

}  // namespace
}  // namespace qkv::model

namespace qkv {

std::vector<std::string> convert_to_gguf(const Model& model, const std::string& path,
                                         const ConvertOptions& options) {
  using namespace qkv::model;  // this file's helpers
  const Model::Impl& m = ModelAccess::impl(model);
  std::vector<std::string> notes;
  const ModelConfig& c = m.config;
  std::vector<Planned> plan;
  for (int layer = -1; layer < c.n_layer; ++layer) {
    for (const TensorSpec& spec : arch_tensors(m.arch)) {
      if (spec.per_layer != (layer >= 0)) continue;
      const std::string name = tensor_name(spec, m.source, layer);
      if (const std::vector<float>* v = config_values(spec.role, c);
          v != nullptr && m.source == Source::hf && layer < 0) {
        plan.push_back(
            {&spec, nullptr, layer, TensorType::f32, {static_cast<int64_t>(v->size())}, v});
        continue;
      }
      if (name.empty()) continue;
      const TensorInfo* t = find_tensor(m.file, m.source, name);
      if (t == nullptr) continue;  // optional and absent (the loader checked the rest)
      Planned p{&spec, t, layer, TensorType::f32, {}};
      const bool matrix = spec.shape[1] != Dim::none;
      p.shape = t->shape;
      if (matrix && spec.hf_transposed && m.source == Source::hf) {
        std::swap(p.shape[0], p.shape[1]);
      }
      if (matrix) {
        p.type = options.dtype.value_or(t->type == TensorType::i32 ? TensorType::f32 : t->type);
        if (p.type == TensorType::q8_0 && p.shape[1] % 32 != 0) {
          // As llama.cpp's quantizer does: rows that are not whole blocks stay f16.
          p.type = TensorType::f16;
          notes.push_back(core::concat(name, ": rows of ", p.shape[1],
                                       " values are not whole q8_0 blocks; written as f16"));
        }
      }
      plan.push_back(std::move(p));
    }
  }
  Metadata md;
  const std::string name =
      options.name.empty() ? std::filesystem::path(m.file.path).filename().string() : options.name;
  md.set("general.architecture", MetaValue::make_string(std::string(architecture_name(m.arch))));
  md.set("general.name", MetaValue::make_string(name));
  set_gguf_hparams(m.arch, c, md);
  if (m.tokenizer) tokenizer_spec_to_gguf(m.tokenizer->spec(), md);
  std::vector<GgufTensorDecl> decls;
  for (const Planned& p : plan) {
    decls.push_back({tensor_name(*p.spec, Source::gguf, p.layer), p.type, p.shape});
  }
  const bool permute = m.arch == Architecture::llama && m.source == Source::hf;
  write_gguf_streaming(path, md, decls, [&](size_t i, std::span<std::byte> out) {
    const Planned& p = plan[i];
    std::vector<float> v = p.src != nullptr ? tensor_to_f32(*p.src) : *p.values;
    if (p.shape.size() == 2 && p.spec->hf_transposed && m.source == Source::hf) {
      const int64_t rows = p.shape[0], cols = p.shape[1];  // written [out, in]; stored [in, out]
      std::vector<float> t(v.size());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < cols; ++k) t[r * cols + k] = v[k * rows + r];
      }
      v = std::move(t);
    }
    if (m.traits->hf_norm_plus_one && m.source == Source::hf && is_norm_weight(p.spec->role)) {
      for (float& x : v) x += 1.0f;  // HF Gemma stores w - 1; GGUF stores the scale itself
    }
    if (permute) {
      const Role r = p.spec->role;
      const int64_t cols = p.shape.size() == 2 ? p.shape[1] : 1;
      if (r == Role::wq || r == Role::bq) v = permute_rows(v, c.n_head, c.head_dim, cols);
      if (r == Role::wk || r == Role::bk) v = permute_rows(v, c.n_head_kv, c.head_dim, cols);
    }
    encode(v, p.type, out);
  });
  return notes;
}

std::optional<Architecture> architecture_named(std::string_view name) {
  return model::parse_architecture(name);
}

std::vector<GgufTensorEntry> gguf_tensor_list(Architecture arch, const ModelConfig& c) {
  std::vector<GgufTensorEntry> out;
  for (model::GgufTensorPlan& t : model::gguf_tensor_plan(arch, c)) {
    out.push_back({std::move(t.name), std::move(t.shape), model::is_norm_weight(t.spec->role),
                   t.spec->role == model::Role::rope_freqs});
  }
  return out;
}

void set_gguf_arch_keys(Architecture arch, const ModelConfig& c, Metadata& md) {
  model::set_gguf_hparams(arch, c, md);
}

}  // namespace qkv
