// Hugging Face config.json -> ModelConfig, and HF model folders (config.json + safetensors).
#include <cmath>
#include <filesystem>
#include <numbers>
#include <optional>

#include "formats/formats_internal.h"
#include "formats/mapped_file.h"

namespace qkv {
namespace {

using nlohmann::json;

// Reads config[key] when present and not null; checks its JSON type.
struct ConfigReader {
  const json& j;
  const std::string& file;

  const json* get(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const char* key, int64_t fallback = 0) const {
    const json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_number_integer()) {
      core::throw_error(file, ": ", key, ": expected an integer, found ", v->dump());
    }
    const int64_t x = v->get<int64_t>();
    if (x < 0) core::throw_error(file, ": ", key, ": expected >= 0, found ", x);
    return x;
  }
  double number(const char* key, double fallback = 0) const {
    const json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_number())
      core::throw_error(file, ": ", key, ": expected a number, found ", v->dump());
    return v->get<double>();
  }
  std::string string(const char* key, std::string fallback = "") const {
    const json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_string())
      core::throw_error(file, ": ", key, ": expected a string, found ", v->dump());
    return v->get<std::string>();
  }
  // A list of numbers (empty when absent).
  std::vector<float> numbers(const char* key) const {
    const json* v = get(key);
    std::vector<float> out;
    if (v == nullptr) return out;
    if (!v->is_array()) {
      core::throw_error(file, ": ", key, ": expected a list of numbers, found ", v->dump());
    }
    for (const json& x : *v) {
      if (!x.is_number()) {
        core::throw_error(file, ": ", key, ": expected a list of numbers, found ", x.dump());
      }
      out.push_back(static_cast<float>(x.get<double>()));
    }
    return out;
  }
  bool boolean(const char* key, bool fallback) const {
    const json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean())
      core::throw_error(file, ": ", key, ": expected true/false, found ", v->dump());
    return v->get<bool>();
  }
};

}  // namespace

namespace {

ModelConfig hf_config_from_json(const json& j, const std::string& path) {
  if (!j.is_object()) core::throw_error(path, ": expected a JSON object, found ", j.type_name());
  ConfigReader r{j, path};
  ModelConfig c;
  std::optional<Llama3RopeScaling> llama3;  // rope_type "llama3": divisors once head_dim is known
  c.architecture = r.string("model_type");
  if (c.architecture.empty()) {
    core::throw_error(path, ": model_type: expected a string such as \"llama\", found none");
  }
  // Mistral is a llama-architecture model whose attention may slide over the last
  // sliding_window keys (Mistral 7B v0.1: 4096; null in later versions: global).
  const bool mistral = c.architecture == "mistral";
  if (mistral) c.architecture = "llama";
  c.n_vocab = r.integer("vocab_size");
  if (c.architecture == "gpt2") {
    c.n_embd = r.integer("n_embd");
    c.n_layer = r.integer("n_layer");
    c.n_head = r.integer("n_head");
    c.n_head_kv = c.n_head;
    c.n_ctx = r.integer("n_positions", r.integer("n_ctx"));
    c.n_ff = r.integer("n_inner", 4 * c.n_embd);  // null means 4 * n_embd
    c.norm_eps = r.number("layer_norm_epsilon", 1e-5);
    c.activation = r.string("activation_function", "gelu_new");
    c.tied_embeddings = r.boolean("tie_word_embeddings", true);
    c.rope_type = "none";
  } else {
    c.n_embd = r.integer("hidden_size");
    c.n_layer = r.integer("num_hidden_layers");
    c.n_head = r.integer("num_attention_heads");
    c.n_head_kv = r.integer("num_key_value_heads", c.n_head);
    c.n_ctx = r.integer("max_position_embeddings");
    c.n_ff = r.integer("intermediate_size");
    c.activation = r.string("hidden_act");
    if (c.architecture == "bert") {
      c.norm_eps = r.number("layer_norm_eps", 1e-12);
      c.causal = false;
      c.tied_embeddings = r.boolean("tie_word_embeddings", true);
      c.rope_type = "none";
    } else {
      c.norm_eps = r.number("rms_norm_eps", r.number("layer_norm_eps"));
      c.tied_embeddings = r.boolean("tie_word_embeddings", false);
      // transformers >= 5 writes "rope_parameters": {"rope_theta", "rope_type", ...};
      // older configs have a top-level "rope_theta" (and maybe "rope_scaling").
      c.rope_theta = r.number("rope_theta", 10000.0);
      c.rope_type = "default";
      const json* rs = r.get("rope_parameters");
      const char* rs_key = "rope_parameters";
      if (rs == nullptr) rs = r.get("rope_scaling"), rs_key = "rope_scaling";
      if (rs != nullptr) {
        if (!rs->is_object()) {
          core::throw_error(path, ": ", rs_key, ": expected an object, found ", rs->dump());
        }
        ConfigReader rr{*rs, path};
        c.rope_theta = rr.number("rope_theta", c.rope_theta);
        c.rope_type = rr.string("rope_type", rr.string("type", c.rope_type));
        // Gemma 3's global layers: positions divided by the factor.
        if (c.rope_type == "linear") c.rope_scale = rr.number("factor");
        if (c.rope_type == "llama3") {
          llama3 = Llama3RopeScaling{};
          llama3->factor = rr.number("factor", llama3->factor);
          llama3->low_freq_factor = rr.number("low_freq_factor", llama3->low_freq_factor);
          llama3->high_freq_factor = rr.number("high_freq_factor", llama3->high_freq_factor);
          llama3->original_context =
              rr.integer("original_max_position_embeddings", llama3->original_context);
        }
        if (c.rope_type == "longrope" || c.rope_type == "su") {
          // Phi-3: the factor lists, the original context (top level in Phi-3's configs) and
          // the attention scale, by default sqrt(1 + ln(s) / ln(original)) for s = context /
          // original > 1, as transformers and llama.cpp's converter compute it.
          c.rope_type = "longrope";
          c.rope_factors_long = rr.numbers("long_factor");
          c.rope_factors_short = rr.numbers("short_factor");
          c.n_ctx_orig = rr.integer("original_max_position_embeddings",
                                    r.integer("original_max_position_embeddings"));
          if (c.rope_factors_long.empty() || c.rope_factors_short.empty() || c.n_ctx_orig == 0) {
            core::throw_error(path, ": ", rs_key, ": LongRoPE needs long_factor, short_factor and ",
                              "original_max_position_embeddings");
          }
          const double scale = double(c.n_ctx) / double(c.n_ctx_orig);
          c.rope_attn_factor = rr.number(
              "attention_factor",
              scale > 1 ? std::sqrt(1 + std::log(scale) / std::log(double(c.n_ctx_orig))) : 1.0);
        }
      }
      if (mistral) c.sliding_window = r.integer("sliding_window");
      if (c.architecture == "gemma3_text") c.architecture = "gemma3";
      if (c.architecture == "gemma2" || c.architecture == "gemma3") {
        // Soft-caps, the window of the sliding layers (keys seen, the query's own included, as
        // GGUF states it), the query scale 1/sqrt(query_pre_attn_scalar), Gemma 3's local RoPE
        // base and layer pattern; null or absent: off / the family's default.
        c.activation = r.string("hidden_activation", c.activation);
        c.attn_softcap = r.number("attn_logit_softcapping");
        c.final_softcap = r.number("final_logit_softcapping");
        c.sliding_window = r.integer("sliding_window");
        if (const double s = r.number("query_pre_attn_scalar"); s > 0)
          c.attn_scale = 1 / std::sqrt(s);
        c.rope_theta_swa = r.number("rope_local_base_freq");
        c.swa_pattern = r.integer("sliding_window_pattern");
      }
    }
  }
  if (c.n_head > 0) {
    c.head_dim = r.integer("head_dim", c.n_embd / c.n_head);
    if (c.n_head_kv == 0 || c.n_head % c.n_head_kv != 0) {
      core::throw_error(path, ": num_key_value_heads: expected a divisor of ", c.n_head, ", found ",
                        c.n_head_kv);
    }
  }
  if (llama3) {
    try {
      c.rope_freqs = llama3_rope_freqs(*llama3, c.rope_theta, c.head_dim);
    } catch (const InvalidArgument& e) {
      core::throw_error(path, ": rope_scaling: ", e.what());
    }
  }
  return c;
}

}  // namespace

std::vector<float> llama3_rope_freqs(const Llama3RopeScaling& s, double theta, int64_t head_dim) {
  auto positive = [](const char* what, double x) {
    if (!(x > 0) || !std::isfinite(x)) {
      core::throw_invalid("llama3 RoPE scaling: ", what, ": expected a finite number > 0, found ",
                          x);
    }
  };
  positive("factor", s.factor);
  positive("low_freq_factor", s.low_freq_factor);
  positive("high_freq_factor", s.high_freq_factor);
  positive("original_max_position_embeddings", double(s.original_context));
  positive("rope_theta", theta);
  positive("head_dim", double(head_dim));
  if (s.high_freq_factor <= s.low_freq_factor) {
    core::throw_invalid("llama3 RoPE scaling: high_freq_factor (", s.high_freq_factor,
                        ") must be greater than low_freq_factor (", s.low_freq_factor, ")");
  }
  const double orig = double(s.original_context);
  const double low_wavelen = orig / s.low_freq_factor, high_wavelen = orig / s.high_freq_factor;
  std::vector<float> out(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < out.size(); ++i) {
    const double freq = 1.0 / std::pow(theta, double(2 * i) / double(head_dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    double f = 1;  // short wavelengths: kept
    if (wavelen > low_wavelen) {
      f = s.factor;  // long ones: divided by the factor
    } else if (wavelen >= high_wavelen) {
      const double smooth =
          (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = 1 / ((1 - smooth) / s.factor + smooth);
    }
    out[i] = static_cast<float>(f);
  }
  return out;
}

ModelConfig read_hf_config(const std::string& path) {
  return formats::with_json_errors(
      path, [&] { return hf_config_from_json(formats::read_json_file(path), path); });
}

ModelConfig formats::parse_hf_config(std::string_view text, const std::string& name) {
  return formats::with_json_errors(
      name, [&] { return hf_config_from_json(formats::parse_json_text(text, name), name); });
}

ModelFile read_hf_folder(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  const fs::path config = d / "config.json";
  if (!fs::exists(config)) {
    core::throw_error(dir, ": expected an HF model folder with config.json, found none");
  }
  ModelFile m;
  if (fs::exists(d / "model.safetensors.index.json")) {
    m = read_safetensors((d / "model.safetensors.index.json").string());
  } else if (fs::exists(d / "model.safetensors")) {
    m = read_safetensors((d / "model.safetensors").string());
  } else {
    core::throw_error(dir, ": weights: expected model.safetensors or ",
                      "model.safetensors.index.json, found neither");
  }
  m.path = dir;
  m.format = FileFormat::hf_folder;
  m.config = read_hf_config(config.string());
  // Tied unless an untied head is actually stored.
  if (m.find_tensor("lm_head.weight") != nullptr) m.config.tied_embeddings = false;
  const json j = formats::read_json_file(config.string());
  if (!j.is_object()) core::throw_error(config.string(), ": expected a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (v.is_string()) {
      m.metadata.set("config." + k, MetaValue::make_string(v.get<std::string>()));
    } else if (v.is_boolean()) {
      m.metadata.set("config." + k, MetaValue::make_bool(v.get<bool>()));
    } else if (v.is_number_integer()) {
      m.metadata.set("config." + k, MetaValue::make_int(MetaValue::Type::i64, v.get<int64_t>()));
    } else if (v.is_number()) {
      m.metadata.set("config." + k, MetaValue::make_float(MetaValue::Type::f64, v.get<double>()));
    } else if (!v.is_null()) {
      m.metadata.set("config." + k, MetaValue::make_string(v.dump()));
    }
  }
  return m;
}

}  // namespace qkv
