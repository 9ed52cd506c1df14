// Loading: open the file, check the architecture's tensor list against it, bind each weight to
// its role (zero-copy where the stored layout allows), find the tokenizer.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "formats/quant_types.h"
#include "model/model_impl.h"

namespace qkv {

std::string_view architecture_name(Architecture a) {
  return model::arch_traits(a).name;
}

namespace {

using model::Role;

std::string shape_string(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

kernels::WeightType weight_type(const ModelFile& f, const TensorInfo& t) {
  switch (t.type) {
    case TensorType::f32:
      return kernels::WeightType::f32;
    case TensorType::f16:
      return kernels::WeightType::f16;
    case TensorType::bf16:
      return kernels::WeightType::bf16;
    default:
      break;
  }
  // Any block format, per tensor (a Q4_K_M file mixes Q4_K and Q6_K).
  if (const auto q = formats::quant_type_of(t.type)) return kernels::weight_type_of(*q);
  core::throw_error(f.path, ": tensor ", t.name, ": dtype ", tensor_type_name(t.type),
                    " is not a weight type (expected F32, F16, BF16 or a block format such as "
                    "Q8_0 or Q4_K)");
}

void check_config(const ModelFile& f, const ModelConfig& c) {
  auto need = [&](int64_t v, const char* what) {
    if (v <= 0) {
      core::throw_error(f.path, ": hyper-parameter ", what, ": expected > 0, found ", v);
    }
  };
  need(c.n_embd, "n_embd");
  need(c.n_layer, "n_layer");
  need(c.n_head, "n_head");
  need(c.n_head_kv, "n_head_kv");
  need(c.head_dim, "head_dim");
  need(c.n_ff, "n_ff");
  need(c.n_ctx, "n_ctx (context length)");
  if (c.n_head % c.n_head_kv != 0) {
    core::throw_error(f.path, ": n_head ", c.n_head, " is not a multiple of n_head_kv ",
                      c.n_head_kv);
  }
  if (c.n_layer > 4096 || c.n_head > 4096 || c.head_dim > 4096) {
    core::throw_error(f.path, ": hyper-parameters out of range: n_layer ", c.n_layer, ", n_head ",
                      c.n_head, ", head_dim ", c.head_dim);
  }
}

// The floating-point hyper-parameters, once defaults are filled in. A NaN, infinite, zero or
// negative epsilon or RoPE base passes every later step and turns the logits into NaN, which the
// sampler would read as token 0 forever: refused here, by name.
void check_float_config(const ModelFile& f, const ModelConfig& c, bool rope) {
  const std::pair<const char*, double> caps[] = {{"attention logit soft-cap", c.attn_softcap},
                                                 {"final logit soft-cap", c.final_softcap},
                                                 {"attention scale", c.attn_scale}};
  for (const auto& [what, v] : caps) {
    if (!std::isfinite(v) || v < 0) {
      core::throw_error(f.path, ": hyper-parameter ", what, ": expected a finite number >= 0 ",
                        "(0 = off / default), found ", v);
    }
  }
  if (c.sliding_window < 0) {
    core::throw_error(f.path, ": hyper-parameter sliding_window: expected >= 0, found ",
                      c.sliding_window);
  }
  if (!std::isfinite(c.norm_eps) || c.norm_eps <= 0 || c.norm_eps > 1) {
    core::throw_error(f.path, ": hyper-parameter norm epsilon: expected a finite number in ",
                      "(0, 1], found ", c.norm_eps);
  }
  if (rope && (!std::isfinite(c.rope_theta) || c.rope_theta <= 1)) {
    core::throw_error(f.path, ": hyper-parameter RoPE base (rope_theta / rope.freq_base): ",
                      "expected a finite number > 1, found ", c.rope_theta);
  }
}

// The epsilon and RoPE keys as the file states them: an explicit 0 (which the readers cannot tell
// from "absent") or a NaN is refused naming the key, before any default is filled in.
void check_float_keys(const ModelFile& f) {
  const std::string a = f.config.architecture + ".";
  const std::pair<std::string, double> keys[] = {{a + "attention.layer_norm_epsilon", 0.0},
                                                 {a + "attention.layer_norm_rms_epsilon", 0.0},
                                                 {a + "rope.freq_base", 1.0},
                                                 {"config.layer_norm_epsilon", 0.0},
                                                 {"config.layer_norm_eps", 0.0},
                                                 {"config.rms_norm_eps", 0.0},
                                                 {"config.rope_theta", 1.0}};
  for (const auto& [key, above] : keys) {
    const MetaValue* v = f.metadata.find(key);
    if (v == nullptr) continue;
    const double x = v->as_float(f.path + ": " + key);
    if (!std::isfinite(x) || x <= above) {
      core::throw_error(f.path, ": ", key, ": expected a finite number > ", above, ", found ", x);
    }
  }
}

// Tensors in files that are not weights of the model, kept by the tools that wrote them: buffers
// HF checkpoints store (GPT-2's causal-mask "attn.bias"/"attn.masked_bias", RoPE "inv_freq", BERT's
// "position_ids"), llama2.c's RoPE tables, and BERT's pre-training heads ("cls.*"), which an
// embedding model never runs.
// Anything else left unbound is an error: it means the hyper-parameters and the tensors disagree.
bool is_known_extra(const ModelFile& f, model::Source source, const std::string& name) {
  // llama2.c checkpoints store the RoPE tables (theta 10000) that the forward pass computes.
  if (source == model::Source::llama2c) return name == "freq_cis_real" || name == "freq_cis_imag";
  if (source != model::Source::hf) return false;
  auto ends_with = [&](std::string_view s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(".attn.bias") || ends_with(".attn.masked_bias") || ends_with(".inv_freq") ||
      ends_with("position_ids")) {
    return true;
  }
  return f.config.architecture == "bert" && name.rfind("cls.", 0) == 0;
}

// The hyper-parameters a dimension symbol comes from, for errors: "n_head 4 x head_dim 64".
std::string dim_source(model::Dim d, const ModelConfig& c) {
  using model::Dim;
  switch (d) {
    case Dim::vocab:
      return core::concat("n_vocab ", c.n_vocab);
    case Dim::ctx:
      return core::concat("context_length ", c.n_ctx);
    case Dim::embd:
      return core::concat("n_embd ", c.n_embd);
    case Dim::head:
      return core::concat("head_dim ", c.head_dim);
    case Dim::q:
      return core::concat("n_head ", c.n_head, " x head_dim ", c.head_dim);
    case Dim::kv:
      return core::concat("n_head_kv ", c.n_head_kv, " x head_dim ", c.head_dim);
    case Dim::qkv:
      return core::concat("(n_head ", c.n_head, " + 2 n_head_kv ", c.n_head_kv, ") x head_dim ",
                          c.head_dim);
    case Dim::ff:
      return core::concat("n_ff ", c.n_ff);
    case Dim::ff2:
      return core::concat("2 x n_ff ", c.n_ff);
    case Dim::rope_half:
      return core::concat("head_dim ", c.head_dim, " / 2");
    case Dim::none:
    case Dim::types:
      break;
  }
  return "";
}

// Binds one tensor; returns null when an optional one is absent.
class Binder {
 public:
  Binder(Model::Impl& m, const std::function<void(double)>& progress, kernels::LinearDot dot)
      : m_(m), progress_(progress), dot_(dot) {}

  const TensorInfo* find(const model::TensorSpec& spec, int layer, std::string* name_out) {
    const std::string name = model::tensor_name(spec, m_.source, layer);
    *name_out = name;
    if (name.empty()) return nullptr;
    const TensorInfo* t = model::find_tensor(m_.file, m_.source, name);
    if (t != nullptr) bound_.insert(t);
    return t;
  }

  // Every tensor of the file must have been bound to a role: one left over means the file's
  // hyper-parameters drop part of it (block_count lowered: its last layers) or a tensor was
  // renamed (an output head silently replaced by the tied embedding). Refused, naming them.
  void check_all_bound() const {
    std::vector<std::string> unused;
    for (const TensorInfo& t : m_.file.tensors) {
      if (bound_.count(&t) == 0 && !is_known_extra(m_.file, m_.source, t.name)) {
        unused.push_back(t.name);
      }
    }
    if (unused.empty()) return;
    std::string names;
    for (size_t i = 0; i < unused.size() && i < 8; ++i) names += (i ? ", " : "") + unused[i];
    if (unused.size() > 8) names += core::concat(", ... (", unused.size() - 8, " more)");
    core::throw_error(m_.file.path, ": ", unused.size(),
                      unused.size() == 1 ? " tensor is" : " tensors are", " not used by this ",
                      architecture_name(m_.arch), " model (", m_.config.n_layer,
                      " layers): ", names,
                      "; the file's hyper-parameters do not match its tensors, or a tensor has an "
                      "unexpected name");
  }

  // Checks the shape (and returns the [rows, cols] the role expects).
  void check_shape(const model::TensorSpec& spec, const TensorInfo& t) {
    const ModelConfig& c = m_.config;
    const int64_t rows = model::dim_size(spec.shape[0], c);
    const bool vector = spec.shape[1] == model::Dim::none;
    const int64_t cols = model::dim_size(spec.shape[1], c);
    std::vector<int64_t> want =
        vector ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, cols};
    if (!vector && spec.hf_transposed && m_.source == model::Source::hf)
      std::swap(want[0], want[1]);
    bool ok = t.shape.size() == want.size();
    for (size_t i = 0; ok && i < want.size(); ++i) ok = want[i] < 0 || t.shape[i] == want[i];
    if (!ok) {
      std::string w = shape_string(want);
      for (size_t at; (at = w.find("-1")) != std::string::npos;) w.replace(at, 2, "any");
      std::string from;
      for (model::Dim d : spec.shape) {
        const std::string h = dim_source(d, c);
        if (!h.empty() && from.find(h) == std::string::npos) from += (from.empty() ? "" : ", ") + h;
      }
      core::throw_error(m_.file.path, ": tensor ", t.name, " (", model::role_name(spec.role),
                        "): expected shape ", w, " from the hyper-parameters (", from, "), found ",
                        shape_string(t.shape),
                        "; the file's hyper-parameters and its tensors disagree");
    }
  }

  std::vector<float> vec(const TensorInfo& t) {
    m_.n_params += t.n_elements();
    return tensor_to_f32(t);
  }

  kernels::WeightView matrix(const model::TensorSpec& spec, const TensorInfo& t) {
    m_.n_params += t.n_elements();
    m_.matrix_bytes += static_cast<int64_t>(t.n_bytes);
    kernels::WeightView w;
    w.type = weight_type(m_.file, t);
    if (spec.hf_transposed && m_.source == model::Source::hf) {
      // Conv1D [in, out] -> [out, in], kept in its dtype.
      const int64_t in = t.shape[0], out = t.shape[1];
      if (kernels::weight_quant_type(w.type)) {
        core::throw_error(m_.file.path, ": tensor ", t.name, ": ", tensor_type_name(t.type),
                          " cannot be transposed");
      }
      const int64_t es = w.type == kernels::WeightType::f32 ? 4 : 2;
      auto& buf = m_.owned.emplace_back(static_cast<size_t>(in * out * es));
      for (int64_t i = 0; i < in; ++i) {
        for (int64_t o = 0; o < out; ++o) {
          std::memcpy(buf.data() + (o * in + i) * es, t.data + (i * out + o) * es,
                      static_cast<size_t>(es));
        }
      }
      w.n_out = out;
      w.n_in = in;
      w.data = buf.data();
    } else {
      w.n_out = t.shape[0];
      w.n_in = t.shape.size() > 1 ? t.shape[1] : 1;
      w.data = t.data;
      const int64_t block = tensor_type_block(t.type);
      if (w.n_in % block != 0) {
        core::throw_error(m_.file.path, ": tensor ", t.name, ": ", tensor_type_name(t.type),
                          " rows of ", w.n_in, " values are not whole blocks of ", block);
      }
    }
    return w;
  }

  void bind_all() {
    const auto specs = model::arch_tensors(m_.arch);
    m_.layers.resize(static_cast<size_t>(m_.config.n_layer));
    // Biases arrive before or after their matrix; collect per layer, then build Linears.
    struct Pending {
      kernels::WeightView w{};
      std::vector<float> b;
      bool has_w = false;
    };
    const int64_t n_layer = m_.config.n_layer;
    for (int64_t layer = -1; layer < n_layer; ++layer) {
      std::array<Pending, model::kRoleCount> got{};
      std::array<std::vector<float>, model::kRoleCount> vecs{};
      for (const model::TensorSpec& spec : specs) {
        if (spec.per_layer != (layer >= 0)) continue;
        std::string name;
        const TensorInfo* t = find(spec, static_cast<int>(layer), &name);
        if (t == nullptr) {
          if (spec.optional || name.empty()) continue;
          core::throw_error(m_.file.path, ": tensor ", name, " (", model::role_name(spec.role),
                            layer >= 0 ? ", layer " + std::to_string(layer) : std::string(),
                            ") is missing from this ", architecture_name(m_.arch), " model");
        }
        check_shape(spec, *t);
        const int r = static_cast<int>(spec.role);
        if (spec.shape[1] == model::Dim::none) {
          vecs[r] = vec(*t);
        } else {
          got[r].w = matrix(spec, *t);
          got[r].has_w = true;
        }
      }
      auto linear = [&](Role w, Role b) {
        const Pending& p = got[static_cast<int>(w)];
        if (!p.has_w) return kernels::Linear();
        const auto& bias = vecs[static_cast<int>(b)];
        return kernels::Linear(p.w, bias.empty() ? nullptr : bias.data(), dot_, kLayout);
      };
      // Role::count for b: no bias. HF Gemma checkpoints store RMSNorm weights as w - 1.
      auto norm = [&](Role w, Role b) {
        model::Norm n{
            std::move(vecs[static_cast<int>(w)]),
            b == Role::count ? std::vector<float>{} : std::move(vecs[static_cast<int>(b)])};
        if (m_.traits->hf_norm_plus_one && m_.source == model::Source::hf) {
          for (float& x : n.w) x += 1.0f;
        }
        return n;
      };
      auto linear_nb = [&](Role w) {
        const Pending& p = got[static_cast<int>(w)];
        return p.has_w ? kernels::Linear(p.w, nullptr, dot_, kLayout) : kernels::Linear();
      };
      if (layer < 0) {
        m_.tok_embd = got[static_cast<int>(Role::tok_embd)].w;
        m_.pos_embd = got[static_cast<int>(Role::pos_embd)].w;
        m_.type_embd = got[static_cast<int>(Role::type_embd)].w;
        m_.embd_norm = norm(Role::embd_norm_w, Role::embd_norm_b);
        m_.out_norm = norm(Role::out_norm_w, Role::out_norm_b);
        if (m_.traits->decoder) {
          const Pending& head = got[static_cast<int>(Role::lm_head)];
          // GGUF and llama2.c files tie by leaving the head out (as llama.cpp reads them); an HF
          // config says so itself, and a missing head it does not tie is an error.
          if (!head.has_w && m_.source == model::Source::hf && !m_.file.config.tied_embeddings) {
            core::throw_error(m_.file.path, ": tensor lm_head.weight (lm_head) is missing and ",
                              "config.json does not tie it to the embeddings ",
                              "(tie_word_embeddings is false)");
          }
          m_.lm_head = kernels::Linear(head.has_w ? head.w : m_.tok_embd, nullptr, dot_, kLayout);
          m_.config.tied_embeddings = !head.has_w;
        }
        // RoPE frequency divisors: Llama 3's rope_freqs for every position, Phi-3's short
        // factors within the original context and long ones past it (as llama.cpp picks by the
        // context size).
        auto divide = [&](std::vector<float> inv, const std::vector<float>& by) {
          for (size_t i = 0; i < inv.size() && i < by.size(); ++i) inv[i] /= by[i];
          return inv;
        };
        // The tensors of a GGUF file, else what an HF config states (ModelConfig::rope_freqs...).
        const ModelConfig& cfg = m_.config;
        auto divisors = [&](Role role, const std::vector<float>& from_config) {
          const auto& t = vecs[static_cast<int>(role)];
          return t.empty() ? from_config : t;
        };
        if (const auto f = divisors(Role::rope_freqs, cfg.rope_freqs); !f.empty()) {
          m_.rope_inv_freq = divide(m_.rope_inv_freq, f);
          if (!m_.rope_inv_freq_swa.empty()) m_.rope_inv_freq_swa = divide(m_.rope_inv_freq_swa, f);
        }
        if (const auto f = divisors(Role::rope_factors_long, cfg.rope_factors_long); !f.empty()) {
          m_.rope_inv_freq_long = divide(m_.rope_inv_freq, f);
        }
        if (const auto f = divisors(Role::rope_factors_short, cfg.rope_factors_short); !f.empty()) {
          m_.rope_inv_freq = divide(m_.rope_inv_freq, f);
        }
        m_.has_pooler = got[static_cast<int>(Role::pooler_w)].has_w;
        if (m_.has_pooler) m_.pooler = linear(Role::pooler_w, Role::pooler_b);
      } else {
        model::LayerWeights& L = m_.layers[static_cast<size_t>(layer)];
        L.attn_norm = norm(Role::attn_norm_w, Role::attn_norm_b);
        if (got[static_cast<int>(Role::wqkv)].has_w) {
          // Rows [0, q) are Q, then K, then V: three Linears over slices of the fused tensor.
          const kernels::WeightView& w = got[static_cast<int>(Role::wqkv)].w;
          const auto& b = vecs[static_cast<int>(Role::bqkv)];
          const int64_t row_bytes = kernels::weight_row_bytes(w.type, w.n_in);
          auto slice = [&](int64_t r0, int64_t rows) {
            kernels::WeightView part = w;
            part.n_out = rows;
            part.data = static_cast<const std::byte*>(w.data) + r0 * row_bytes;
            return kernels::Linear(part, b.empty() ? nullptr : b.data() + r0, dot_, kLayout);
          };
          const int64_t nq = m_.config.n_head * m_.config.head_dim;
          const int64_t nkv = m_.config.n_head_kv * m_.config.head_dim;
          L.wq = slice(0, nq);
          L.wk = slice(nq, nkv);
          L.wv = slice(nq + nkv, nkv);
        } else {
          L.wq = linear(Role::wq, Role::bq);
          L.wk = linear(Role::wk, Role::bk);
          L.wv = linear(Role::wv, Role::bv);
        }
        L.wo = linear(Role::wo, Role::bo);
        L.q_norm = norm(Role::attn_q_norm, Role::count);
        L.k_norm = norm(Role::attn_k_norm, Role::count);
        L.attn_out_norm = norm(Role::attn_out_norm_w, Role::attn_out_norm_b);
        L.attn_post_norm = norm(Role::attn_post_norm, Role::count);
        L.ffn_post_norm = norm(Role::ffn_post_norm, Role::count);
        const int64_t swa = m_.config.swa_pattern;
        L.sliding = m_.config.sliding_window > 0 &&
                    (m_.traits->window_all_layers || (swa > 0 && layer % swa < swa - 1));
        L.ffn_norm = norm(Role::ffn_norm_w, Role::ffn_norm_b);
        L.ffn_gate = linear_nb(Role::ffn_gate);
        L.ffn_up = linear(Role::ffn_up, Role::ffn_up_b);
        if (got[static_cast<int>(Role::ffn_gate_up)].has_w) {
          // Phi-3: rows [0, n_ff) are the gate, [n_ff, 2 n_ff) the up projection.
          const kernels::WeightView& w = got[static_cast<int>(Role::ffn_gate_up)].w;
          const int64_t row_bytes = kernels::weight_row_bytes(w.type, w.n_in);
          kernels::WeightView gate = w, up = w;
          gate.n_out = up.n_out = m_.config.n_ff;
          up.data = static_cast<const std::byte*>(w.data) + m_.config.n_ff * row_bytes;
          L.ffn_gate = kernels::Linear(gate, nullptr, dot_, kLayout);
          L.ffn_up = kernels::Linear(up, nullptr, dot_, kLayout);
        }
        L.ffn_down = linear(Role::ffn_down, Role::ffn_down_b);
        L.ffn_out_norm = norm(Role::ffn_out_norm_w, Role::ffn_out_norm_b);
        if (progress_) progress_(static_cast<double>(layer + 1) / static_cast<double>(n_layer));
      }
    }
  }

 private:
  Model::Impl& m_;
  const std::function<void(double)>& progress_;
  kernels::LinearDot dot_;
  // Every projection in the matrix-vector kernels' layout (f16/bf16; kernels/linear.h).
  static constexpr kernels::LinearLayout kLayout = kernels::LinearLayout::interleaved;
  std::unordered_set<const TensorInfo*> bound_;
};

// The tokenizer must cover exactly the model's vocabulary: ids past the embedding would fail in
// the middle of a run, and a tokenizer of another model gives meaningless ids without an error.
// HF checkpoints may pad the embedding beyond the tokenizer (config vocab_size rounded up), so
// there the tokenizer may be smaller; every special id must still be a row of the embedding.
void check_tokenizer_fits(const ModelFile& f, const ModelConfig& c, const TokenizerSpec& s,
                          const std::string& tokenizer_path) {
  const auto n_tokens = static_cast<int64_t>(s.tokens.size());
  const std::string what =
      tokenizer_path.empty() ? std::string("its tokenizer") : "the tokenizer " + tokenizer_path;
  const bool padded_ok = f.format == FileFormat::hf_folder || f.format == FileFormat::safetensors;
  if (n_tokens > c.n_vocab || (n_tokens < c.n_vocab && !padded_ok)) {
    core::throw_error(f.path, ": ", what, " has ", n_tokens, " tokens but the model's vocabulary ",
                      "has ", c.n_vocab, "; the tokenizer belongs to another model");
  }
  const std::pair<const char*, int32_t> specials[] = {
      {"bos", s.bos}, {"eos", s.eos}, {"unk", s.unk},  {"pad", s.pad},
      {"cls", s.cls}, {"sep", s.sep}, {"mask", s.mask}};
  for (const auto& [name, id] : specials) {
    if (id >= c.n_vocab) {
      core::throw_error(f.path, ": ", what, ": special token ", name, " is id ", id,
                        ", past the model's vocabulary of ", c.n_vocab);
    }
  }
}

}  // namespace

Model Model::load(const std::string& path, const LoadOptions& options) {
  return from_file(open_model(path), options);
}

Model Model::from_file(ModelFile file, const LoadOptions& options) {
  auto impl = std::make_shared<Impl>();
  impl->file = std::move(file);
  const ModelFile& f = impl->file;
  if (f.config.architecture.empty()) {
    core::throw_error(f.path, ": no architecture given (a bare .safetensors file has no ",
                      "config; open the model folder with its config.json)");
  }
  const auto arch = model::parse_architecture(f.config.architecture);
  if (!arch) {
    core::throw_error(f.path, ": architecture '", f.config.architecture,
                      "' is not supported (qkv runs gpt2, llama and bert)");
  }
  impl->arch = *arch;
  impl->traits = &model::arch_traits(*arch);
  const model::ArchTraits& traits = *impl->traits;
  impl->source = model::source_of(f);
  ModelConfig& c = impl->config;
  c = f.config;
  // The vocabulary size is the embedding's row count when the metadata leaves it out.
  if (c.n_vocab <= 0) {
    for (const auto& spec : model::arch_tensors(impl->arch)) {
      if (spec.role != model::Role::tok_embd) continue;
      std::string name = model::tensor_name(spec, impl->source, -1);
      const TensorInfo* t = model::find_tensor(f, impl->source, name);
      if (t && !t->shape.empty()) c.n_vocab = t->shape[0];
    }
  }
  if (impl->arch == Architecture::gpt2 && c.n_ff <= 0) c.n_ff = 4 * c.n_embd;
  check_config(f, c);
  check_float_keys(f);
  const bool rope = traits.gguf_rope != RopeStyle::none;
  if (rope) {
    impl->rope = impl->source == model::Source::hf ? RopeStyle::half : traits.gguf_rope;
    if (c.rope_theta == 0) c.rope_theta = 10000.0;  // not given
    // Linear scaling (rope.scaling.type "linear", llama.cpp's default type when a factor is
    // given) divides positions; Llama 3's scaling comes as the rope_freqs tensor of a GGUF file
    // or as an HF config's parameters, LongRoPE as Phi-3's factor tensors or lists. Other kinds
    // (YaRN, dynamic NTK) are refused.
    if (c.rope_type != "" && c.rope_type != "default" && c.rope_type != "none" &&
        c.rope_type != "llama2.c" && c.rope_type != "linear" && c.rope_type != "llama3" &&
        c.rope_type != "longrope") {
      core::throw_error(f.path, ": RoPE scaling '", c.rope_type,
                        "' is not supported (qkv applies plain RoPE, linear scaling, Llama 3's ",
                        "scaling and Phi-3's LongRoPE)");
    }
    const size_t n_freq = static_cast<size_t>(c.head_dim / 2);
    for (const auto& [name, v] :
         {std::pair{"rope_freqs", &c.rope_freqs}, std::pair{"long_factor", &c.rope_factors_long},
          std::pair{"short_factor", &c.rope_factors_short}}) {
      if (!v->empty() && v->size() != n_freq) {
        core::throw_error(f.path, ": RoPE scaling: ", name, " has ", v->size(),
                          " values, expected head_dim / 2 = ", n_freq);
      }
      for (float x : *v) {
        if (!(x > 0) || !std::isfinite(x)) {
          core::throw_error(f.path, ": RoPE scaling: ", name, " holds ", x,
                            ": expected finite numbers > 0");
        }
      }
    }
    if (c.rope_type == "none") c.rope_scale = 0;
    if (c.head_dim % 2 != 0)
      core::throw_error(f.path, ": RoPE needs an even head_dim, found ", c.head_dim);
    if (c.rope_scale < 0 || !std::isfinite(c.rope_scale) || c.rope_theta_swa < 0 ||
        !std::isfinite(c.rope_theta_swa) || c.rope_attn_factor < 0 ||
        !std::isfinite(c.rope_attn_factor)) {
      core::throw_error(f.path, ": RoPE hyper-parameters: rope.scaling.factor ", c.rope_scale,
                        ", rope.freq_base_swa ", c.rope_theta_swa, ", rope.scaling.attn_factor ",
                        c.rope_attn_factor, ": expected finite numbers >= 0 (0 = not given)");
    }
    auto inv_freq = [&](double theta, double scale) {
      std::vector<float> v(static_cast<size_t>(c.head_dim / 2));
      for (int64_t i = 0; i < c.head_dim / 2; ++i) {
        v[static_cast<size_t>(i)] = static_cast<float>(
            std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim)) /
            scale);
      }
      return v;
    };
    const double scale = c.rope_scale > 0 ? c.rope_scale : 1.0;
    impl->rope_inv_freq = inv_freq(c.rope_theta, scale);
    if (traits.swa_pattern > 0) {
      // Gemma 3's local layers: their own base (10000 unless stated) and no scaling; Gemma 2's
      // use the global ones unless the file states a base.
      const double base = c.rope_theta_swa > 0  ? c.rope_theta_swa
                          : traits.swa_own_rope ? 10000.0
                                                : c.rope_theta;
      impl->rope_inv_freq_swa = inv_freq(base, traits.swa_own_rope ? 1.0 : scale);
    }
    impl->rope_mscale = c.rope_attn_factor > 0 ? static_cast<float>(c.rope_attn_factor) : 1.0f;
  }
  if (!traits.decoder) c.causal = false;
  // 0 means "not given" (readers leave absent keys at 0); anything else is validated.
  if (c.norm_eps == 0) c.norm_eps = impl->arch == Architecture::bert ? 1e-12 : 1e-5;
  // Stated but not applied by this family.
  if (traits.swa_pattern == 0 && !traits.window_all_layers) c.sliding_window = 0;
  if (traits.swa_pattern > 0 && c.sliding_window == 0) c.sliding_window = traits.default_window;
  if (c.swa_pattern == 0 || traits.swa_pattern == 0) c.swa_pattern = traits.swa_pattern;
  if (c.swa_pattern == -1) {
    core::throw_error(f.path, ": ", f.config.architecture, ".attention.sliding_window_pattern: ",
                      "a per-layer array is not supported (expected one integer)");
  }
  if (c.swa_pattern < 0 || c.swa_pattern > 4096) {
    core::throw_error(f.path, ": hyper-parameter sliding_window_pattern: expected 0..4096, found ",
                      c.swa_pattern);
  }
  if (c.n_ctx_orig == 0) c.n_ctx_orig = c.n_ctx;
  // Gemma 2 27B scales queries by 1/sqrt(n_embd / n_head) (its query_pre_attn_scalar, 144),
  // not 1/sqrt(head_dim); GGUF does not state it and llama.cpp recognises the 46-layer model.
  // Gemma 3 27B (62 layers) likewise.
  if (((impl->arch == Architecture::gemma2 && c.n_layer == 46) ||
       (impl->arch == Architecture::gemma3 && c.n_layer == 62)) &&
      c.attn_scale == 0) {
    c.attn_scale = 1.0 / std::sqrt(static_cast<double>(c.n_embd / c.n_head));
  }
  check_float_config(f, c, rope);
  impl->int8_dot = options.dot == DotProducts::int8;
  {
    Binder binder(
        *impl, options.progress,
        options.dot == DotProducts::int8 ? kernels::LinearDot::int8 : kernels::LinearDot::exact);
    binder.bind_all();
    binder.check_all_bound();
  }
  std::optional<TokenizerSpec> spec;
  try {
    spec.emplace(tokenizer_spec_for(f, options.tokenizer_path));
  } catch (const Error&) {
    if (options.require_tokenizer || !options.tokenizer_path.empty()) throw;
  }
  if (spec) {
    check_tokenizer_fits(f, c, *spec, options.tokenizer_path);
    impl->tokenizer.emplace(std::move(*spec));
  }
  Model m;
  m.impl_ = std::move(impl);
  return m;
}

Architecture Model::architecture() const {
  return impl_->arch;
}
const ModelConfig& Model::config() const {
  return impl_->config;
}
const ModelFile& Model::file() const {
  return impl_->file;
}
RopeStyle Model::rope_style() const {
  return impl_->rope;
}
bool Model::is_decoder() const {
  return impl_->arch != Architecture::bert;
}
int64_t Model::n_params() const {
  return impl_->n_params;
}
bool Model::has_tokenizer() const {
  return impl_->tokenizer.has_value();
}

const Tokenizer& Model::tokenizer() const {
  if (!impl_->tokenizer) {
    // Re-run the search for its message: what to pass.
    (void)tokenizer_spec_for(impl_->file, "");
    core::throw_error(impl_->file.path, ": no tokenizer found; give a tokenizer file");
  }
  return *impl_->tokenizer;
}

// Gathered as llama.cpp gathers its end-of-generation set. A chat model's EOS is often not the
// token that ends its turns (Qwen2's <|endoftext|> and <|im_end|>, Llama 3's <|end_of_text|> and
// <|eot_id|>, Gemma's <eos> and <end_of_turn>); the turn's end is a control token, left out of the
// text, so no stop string can catch it either.
std::vector<int32_t> Model::end_of_generation_ids() const {
  std::vector<int32_t> ids;
  if (!has_tokenizer()) return ids;
  const Tokenizer& tok = tokenizer();
  auto add = [&](int64_t id) {
    if (id >= 0 && id < tok.n_vocab()) ids.push_back(static_cast<int32_t>(id));
  };
  add(tok.spec().eos);
  if (impl_->file.format == FileFormat::llama2c) add(tok.spec().bos);
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (const MetaValue* v = impl_->file.metadata.find(key)) add(v->as_int(key));
  }
  for (const char* name :
       {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<turn|>",
        "<|endoftext|>", "<|end_of_text|>", "<EOT>", "<｜end▁of▁sentence｜>"}) {
    add(tok.find(name));
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::string_view matmul_backend_name() {
  return kernels::linear_backend_name();
}

Model::MatrixTotals Model::matrix_totals() const {
  MatrixTotals t;
  auto add = [&](const kernels::Linear& l) {
    if (l.n_out() == 0) return;
    t.bytes += l.n_out() * kernels::weight_row_bytes(l.view().type, l.n_in());
    t.macs += l.n_out() * l.n_in();
  };
  for (const auto& L : impl_->layers) {
    for (const auto* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) add(*l);
  }
  if (is_decoder()) add(impl_->lm_head);
  return t;
}

std::string Model::describe() const {
  const ModelConfig& c = impl_->config;
  std::ostringstream s;
  s << architecture_name(impl_->arch) << ": " << c.n_layer << " layers, n_embd " << c.n_embd << ", "
    << c.n_head << " heads";
  if (c.n_head_kv != c.n_head) s << " (" << c.n_head_kv << " kv)";
  s << ", head_dim " << c.head_dim << ", n_ff " << c.n_ff << ", vocab " << c.n_vocab << ", ctx "
    << c.n_ctx << ", " << static_cast<double>(impl_->n_params) / 1e6 << "M params, "
    << kernels::weight_type_name(impl_->layers.empty() ? kernels::WeightType::f32
                                                       : impl_->layers[0].wo.view().type)
    << " weights, from " << file_format_name(impl_->file.format);
  // Which layers attend through a sliding window (local) and which see every key (global), as
  // the explain report shows it beside the maps.
  std::string local, global;
  for (size_t l = 0; l < impl_->layers.size(); ++l) {
    std::string& list = impl_->layers[l].sliding ? local : global;
    if (!list.empty()) list += ',';
    list += std::to_string(l);
  }
  if (!local.empty()) {
    s << "; local layers (window " << c.sliding_window << ") " << local << ", global layers "
      << (global.empty() ? "none" : global);
  }
  if (c.attn_softcap > 0) s << "; attention soft-cap " << c.attn_softcap;
  if (c.final_softcap > 0) s << "; logit soft-cap " << c.final_softcap;
  return s.str();
}

}  // namespace qkv
