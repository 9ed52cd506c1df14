// qkv quantize: llama-quantize's presets and per-tensor mixing rules (without an importance
// matrix), over the quantizers of src/kernels/quant. The rules follow llama.cpp's
// llama_tensor_get_type for the presets listed in kPresets (dense models; the MoE-specific
// promotions of 8-expert models and the 70B attn_v rule are not reproduced).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>

#include "core/half.h"
#include "core/parallel.h"
#include "formats/quant_types.h"
#include "kernels/quant/quantize.h"
#include "qkv/error.h"
#include "qkv/quantize.h"

namespace qkv {
namespace {

namespace kq = kernels::quant;
using Q = kq::QuantType;

enum class Preset {
  q4_0,
  q4_1,
  q5_0,
  q5_1,
  q8_0,
  q2_k,
  q3_k_m,
  q4_k_m,
  q5_k_m,
  q6_k,
  iq4_nl,
  iq4_xs
};

struct PresetInfo {
  std::string_view name;
  Preset preset;
  Q base;          // the type of every quantized matrix before the mixing rules
  uint32_t ftype;  // llama.cpp's LLAMA_FTYPE_MOSTLY_* (general.file_type)
  bool alias;      // llama-quantize's alias (Q4_K for Q4_K_M), not listed
};

constexpr PresetInfo kPresets[] = {
    {"Q4_0", Preset::q4_0, Q::q4_0, 2, false},
    {"Q4_1", Preset::q4_1, Q::q4_1, 3, false},
    {"Q5_0", Preset::q5_0, Q::q5_0, 8, false},
    {"Q5_1", Preset::q5_1, Q::q5_1, 9, false},
    {"Q8_0", Preset::q8_0, Q::q8_0, 7, false},
    {"Q2_K", Preset::q2_k, Q::q2_k, 10, false},
    {"Q3_K_M", Preset::q3_k_m, Q::q3_k, 12, false},
    {"Q4_K_M", Preset::q4_k_m, Q::q4_k, 15, false},
    {"Q5_K_M", Preset::q5_k_m, Q::q5_k, 17, false},
    {"Q6_K", Preset::q6_k, Q::q6_k, 18, false},
    {"IQ4_NL", Preset::iq4_nl, Q::iq4_nl, 25, false},
    {"IQ4_XS", Preset::iq4_xs, Q::iq4_xs, 30, false},
    {"Q3_K", Preset::q3_k_m, Q::q3_k, 12, true},
    {"Q4_K", Preset::q4_k_m, Q::q4_k, 15, true},
    {"Q5_K", Preset::q5_k_m, Q::q5_k, 17, true},
};

const PresetInfo* preset_named(std::string_view name) {
  for (const PresetInfo& p : kPresets) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// llama.cpp's broad tensor roles, found from the name as it does (substrings, in this order).
enum class Role {
  output,
  token_embd,
  attn_v,
  attn_k,
  attn_q,
  attn_output,
  ffn_up,
  ffn_gate,
  ffn_down,
  other
};

Role role_of(std::string_view name) {
  auto has = [&](std::string_view s) { return name.find(s) != std::string_view::npos; };
  if (name == "output.weight") return Role::output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Role::token_embd;
  // attn_qkv and attn_kv_b count as attn_v (llama.cpp's category_is_attn_v).
  if (has("attn_qkv.weight") || has("attn_kv_b.weight") || has("attn_v.weight")) {
    return Role::attn_v;
  }
  if (has("attn_k.weight")) return Role::attn_k;
  if (has("attn_q.weight")) return Role::attn_q;
  if (has("attn_output.weight")) return Role::attn_output;
  if (has("ffn_up")) return Role::ffn_up;
  if (has("ffn_gate")) return Role::ffn_gate;
  if (has("ffn_down")) return Role::ffn_down;
  return Role::other;
}

// Whether llama-quantize quantizes the tensor at all: matrices named "...weight", except norms,
// MoE routers, position / token-type embeddings and a few small special tensors.
bool allows_quantization(const TensorInfo& t) {
  if (t.shape.size() < 2 || !t.name.ends_with("weight")) return false;
  for (const char* skip : {"_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d", "attn_rel_b.weight",
                           "altup", "laurel", "per_layer_model_proj"}) {
    if (t.name.find(skip) != std::string::npos) return false;
  }
  return t.name != "position_embd.weight" && t.name != "token_types.weight";
}

// The layer of "blk.N.*" (-1 otherwise): llama.cpp visits tensors by layer, then by name, and
// its attn_v / ffn_down counters follow that order.
int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
bool use_more_bits(int i, int n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// Where rows are not whole blocks of `t`: llama.cpp's fallback, then F16 if that does not fit.
TensorType with_fallback(Q t, int64_t ncols) {
  if (ncols % kq::quant_block_elems(t) == 0) return formats::tensor_type_of(t);
  Q f = t;
  switch (t) {
    case Q::q2_k:
    case Q::q3_k:
      f = Q::q4_0;
      break;
    case Q::q4_k:
      f = Q::q5_0;
      break;
    case Q::q5_k:
      f = Q::q5_1;
      break;
    case Q::q6_k:
      f = Q::q8_0;
      break;
    case Q::iq4_xs:
      f = Q::iq4_nl;
      break;
    default:
      break;
  }
  if (ncols % kq::quant_block_elems(f) != 0) return TensorType::f16;
  return formats::tensor_type_of(f);
}

struct MixState {
  Preset preset;
  std::string arch;
  int n_gqa = 1;
  int n_layer = 0;
  int n_attn_v = 0, i_attn_v = 0, i_ffn_down = 0;
  bool tied = true;  // no output.weight: token_embd is the output matrix too
};

// llama_tensor_get_type_impl for the presets of kPresets.
Q mixed_type(MixState& s, Q t, const TensorInfo& info, Role role) {
  const Preset p = s.preset;
  const bool falcon = s.arch == "falcon";
  if (role == Role::output || (s.tied && role == Role::token_embd)) {
    const int64_t ncols = info.shape.back();
    if (falcon || ncols % kq::quant_block_elems(t) != 0) return Q::q8_0;
    return t == Q::q8_0 ? t : Q::q6_k;
  }
  switch (role) {
    case Role::attn_v: {
      if (p == Preset::q2_k) {
        t = s.n_gqa >= 4 ? Q::q4_k : Q::q3_k;
      } else if (p == Preset::q3_k_m) {
        t = s.i_attn_v < 2 ? Q::q5_k : Q::q4_k;
      } else if ((p == Preset::iq4_nl || p == Preset::iq4_xs) && s.n_gqa >= 4) {
        t = Q::q5_k;
      } else if ((p == Preset::q4_k_m || p == Preset::q5_k_m) &&
                 use_more_bits(s.i_attn_v, s.n_attn_v)) {
        t = Q::q6_k;
      }
      ++s.i_attn_v;
      break;
    }
    case Role::ffn_down: {
      const int i = s.i_ffn_down, n = s.n_layer;
      if (p == Preset::q2_k) {
        t = Q::q3_k;
      } else if (p == Preset::q3_k_m) {
        t = i < n / 16 ? Q::q5_k : !falcon || use_more_bits(i, n) ? Q::q4_k : Q::q3_k;
      } else if (p == Preset::q4_k_m) {
        if (falcon) {
          t = i < n / 16 ? Q::q6_k : use_more_bits(i, n) ? Q::q5_k : Q::q4_k;
        } else if (use_more_bits(i, n)) {
          t = Q::q6_k;
        }
      } else if (i < n / 8 && (p == Preset::iq4_nl || p == Preset::iq4_xs)) {
        t = Q::q5_k;
      } else if (p == Preset::q5_k_m && use_more_bits(i, n)) {
        t = Q::q6_k;
      }
      ++s.i_ffn_down;
      break;
    }
    case Role::attn_output:
      if (!falcon) {
        if (p == Preset::q2_k) t = Q::q3_k;
        if (p == Preset::q3_k_m) t = Q::q4_k;
      }
      break;
    default:
      break;
  }
  return t;
}

}  // namespace

std::vector<std::string_view> quantize_type_names() {
  std::vector<std::string_view> names;
  for (const PresetInfo& p : kPresets) {
    if (!p.alias) names.push_back(p.name);
  }
  return names;
}

std::string quantize_type_problem(std::string_view type) {
  if (preset_named(type)) return {};
  const std::vector<std::string_view> names = quantize_type_names();
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) list += i + 1 == names.size() ? " or " : ", ";
    list += names[i];
  }
  return "expected " + list + ", found \"" + std::string(type) + "\"";
}

std::vector<QuantizedTensor> quantize_plan(const ModelFile& m, std::string_view type, bool pure) {
  const std::string problem = quantize_type_problem(type);
  if (!problem.empty()) throw InvalidArgument("quantize: type: " + problem);
  if (m.format != FileFormat::gguf) {
    throw InvalidArgument("quantize: " + m.path + ": expected a GGUF file, found " +
                          std::string(file_format_name(m.format)));
  }
  const PresetInfo& preset = *preset_named(type);
  MixState s;
  s.preset = preset.preset;
  s.arch = m.config.architecture;
  s.n_layer = static_cast<int>(m.config.n_layer);
  if (m.config.n_head > 0 && m.config.n_head_kv > 0) {
    s.n_gqa = static_cast<int>(m.config.n_head / m.config.n_head_kv);
  }
  for (const TensorInfo& t : m.tensors) {
    if (t.name == "output.weight") s.tied = false;
    if (role_of(t.name) == Role::attn_v) ++s.n_attn_v;
  }
  // llama.cpp's visiting order: by layer ("blk.N."; others first), then by name.
  std::vector<size_t> order(m.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = layer_of(m.tensors[a].name), lb = layer_of(m.tensors[b].name);
    if (la != lb) return la < lb;
    return m.tensors[a].name < m.tensors[b].name;
  });
  std::vector<QuantizedTensor> plan(m.tensors.size());
  for (const size_t i : order) {
    const TensorInfo& t = m.tensors[i];
    plan[i] = {t.name, t.type};
    if (!allows_quantization(t)) continue;
    Q q = preset.base;
    if (!pure) q = mixed_type(s, q, t, role_of(t.name));
    plan[i].type = with_fallback(q, t.shape.back());
  }
  return plan;
}

QuantizeResult quantize_gguf(const ModelFile& m, std::string_view type, const std::string& out_path,
                             const QuantizeOptions& options) {
  const PresetInfo* preset = preset_named(type);
  QuantizeResult r;
  r.tensors = quantize_plan(m, type, options.pure);
  for (size_t i = 0; i < m.tensors.size() && !options.allow_requantize; ++i) {
    const TensorInfo& t = m.tensors[i];
    if (tensor_type_is_quantized(t.type) && r.tensors[i].type != t.type) {
      throw InvalidArgument(
          "quantize: " + m.path + ": the tensor " + t.name + " is already quantized (" +
          std::string(tensor_type_name(t.type)) + "); quantizing it again to " +
          std::string(tensor_type_name(r.tensors[i].type)) +
          " adds a second rounding to the first. Quantize the F32, F16 or BF16 original, or "
          "allow requantizing");
    }
  }
  std::vector<GgufTensorDecl> decls;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorInfo& t = m.tensors[i];
    const TensorType out = r.tensors[i].type;
    decls.push_back({t.name, out, t.shape});
    r.in_bytes += t.n_bytes;
    if (options.on_note && allows_quantization(t) &&
        t.shape.back() % kq::quant_block_elems(preset->base) != 0) {
      options.on_note(t.name + ": rows of " + std::to_string(t.shape.back()) +
                      " values are not whole blocks of " +
                      std::to_string(kq::quant_block_elems(preset->base)) + "; written as " +
                      std::string(tensor_type_name(out)));
    }
  }
  Metadata meta = m.metadata;
  meta.set("general.file_type", MetaValue::make_uint(MetaValue::Type::u32, preset->ftype));
  meta.set("general.quantization_version", MetaValue::make_uint(MetaValue::Type::u32, 2));
  const int n_threads = core::resolve_threads(options.n_threads);
  write_gguf_streaming(out_path, meta, decls, [&](size_t i, std::span<std::byte> out) {
    const TensorInfo& t = m.tensors[i];
    const TensorType to = r.tensors[i].type;
    r.out_bytes += out.size();
    if (to == t.type) {
      std::memcpy(out.data(), t.data, out.size());
      return;
    }
    const std::vector<float> v = tensor_to_f32(t);
    const int64_t ncols = t.shape.back();
    const int64_t nrows = static_cast<int64_t>(v.size()) / ncols;
    if (to == TensorType::f16 || to == TensorType::f32) {
      for (size_t k = 0; k < v.size(); ++k) {
        if (to == TensorType::f16) {
          const uint16_t h = core::f32_to_f16(v[k]);
          std::memcpy(out.data() + 2 * k, &h, 2);
        } else {
          std::memcpy(out.data() + 4 * k, &v[k], 4);
        }
      }
      return;
    }
    const Q q = *formats::quant_type_of(to);
    const int64_t row_bytes = kq::quant_row_bytes(q, ncols);
    // Rows are independent: chunks of rows on all threads.
    const int64_t chunk = std::max<int64_t>(1, 65536 / ncols);
    const int64_t n_chunks = (nrows + chunk - 1) / chunk;
    core::parallel_for_dynamic(n_chunks, n_threads, [&](int64_t c, int) {
      const int64_t r0 = c * chunk, r1 = std::min(nrows, r0 + chunk);
      kq::quantize(q, v.data() + r0 * ncols, (r1 - r0) * ncols, out.data() + r0 * row_bytes);
    });
  });
  return r;
}

}  // namespace qkv
