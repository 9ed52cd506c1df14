// Hugging Face config.json -> ModelConfig, and HF model folders (config.json + safetensors).
#include <cmath>
#include <filesystem>

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
  c.architecture = r.string("model_type");
  if (c.architecture.empty()) {
    core::throw_error(path, ": model_type: expected a string such as \"llama\", found none");
  }
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
      if (const json* rp = r.get("rope_parameters")) {
        if (!rp->is_object()) {
          core::throw_error(path, ": rope_parameters: expected an object, found ", rp->dump());
        }
        ConfigReader rr{*rp, path};
        c.rope_theta = rr.number("rope_theta", c.rope_theta);
        c.rope_type = rr.string("rope_type", c.rope_type);
      } else if (const json* rs = r.get("rope_scaling"); rs && rs->is_object()) {
        ConfigReader rr{*rs, path};
        c.rope_type = rr.string("rope_type", rr.string("type", c.rope_type));
        // Gemma 3's global layers: positions divided by the factor.
        if (c.rope_type == "linear") c.rope_scale = rr.number("factor");
      }
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
  return c;
}

}  // namespace

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
