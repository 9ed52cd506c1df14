// qkv inspect FILE_OR_DIR [--json] [-t TOKENIZER]
//   Describes a model file: format, architecture, hyper-parameters, tokenizer, metadata and the
//   tensor table (dtype, shape, bytes) with the file's bits per weight. Also describes
//   tokenizer-only files (tokenizer.json, vocab.txt, llama2.c tokenizer.bin) and HF config.json.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "command.h"
#include "model_source.h"
#include "qkv/file_io.h"

namespace qkv::app {
namespace cmd_inspect {  // one per subcommand: the qkv target is a unity build
namespace {

using nlohmann::ordered_json;

struct InspectOptions {
  std::string path;
  std::string tokenizer;
  bool json = false;
  int max_items = 8;
};

ordered_json meta_json(const MetaValue& v, size_t max_items) {
  using T = MetaValue::Type;
  switch (v.type()) {
    case T::string:
      return v.as_string();
    case T::boolean:
      return v.as_bool();
    case T::f32:
    case T::f64:
      return v.as_float();
    case T::u64:
      return v.raw_bits();
    case T::array: {
      const auto& items = v.as_array();
      if (items.size() > max_items) {
        return {{"type", "array"},
                {"element_type", std::string(meta_type_name(v.elem_type()))},
                {"count", items.size()}};
      }
      ordered_json a = ordered_json::array();
      for (const MetaValue& i : items) a.push_back(meta_json(i, max_items));
      return a;
    }
    default:
      return v.as_int();
  }
}

ordered_json config_json(const ModelConfig& c) {
  return {{"architecture", c.architecture},
          {"n_vocab", c.n_vocab},
          {"n_ctx", c.n_ctx},
          {"n_embd", c.n_embd},
          {"n_layer", c.n_layer},
          {"n_head", c.n_head},
          {"n_head_kv", c.n_head_kv},
          {"head_dim", c.head_dim},
          {"n_ff", c.n_ff},
          {"norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_type", c.rope_type},
          {"activation", c.activation},
          {"tied_embeddings", c.tied_embeddings},
          {"causal", c.causal}};
}

ordered_json tokenizer_json(const TokenizerSpec& s) {
  ordered_json j = {{"model", std::string(model_kind_name(s.model))},
                    {"n_tokens", s.tokens.size()},
                    {"n_merges", s.merges.size()}};
  for (auto [name, id] : {std::pair{"bos", s.bos},
                          {"eos", s.eos},
                          {"unk", s.unk},
                          {"pad", s.pad},
                          {"cls", s.cls},
                          {"sep", s.sep},
                          {"mask", s.mask}}) {
    if (id >= 0) j[name] = {{"id", id}, {"token", s.tokens[id]}};
  }
  j["add_bos"] = s.add_bos;
  if (s.model == TokenizerSpec::Model::wordpiece) j["add_cls_sep"] = s.add_cls_sep;
  return j;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void print_tokenizer(const TokenizerSpec& s) {
  std::printf("tokenizer: %s, %zu tokens", std::string(model_kind_name(s.model)).c_str(),
              s.tokens.size());
  if (!s.merges.empty()) std::printf(", %zu merges", s.merges.size());
  for (auto [name, id] : {std::pair{"bos", s.bos},
                          {"eos", s.eos},
                          {"unk", s.unk},
                          {"cls", s.cls},
                          {"sep", s.sep},
                          {"pad", s.pad}}) {
    if (id >= 0) std::printf(", %s=%d %s", name, id, escape_piece(s.tokens[id]).c_str());
  }
  std::printf("%s\n", s.add_bos ? ", adds BOS" : s.add_cls_sep ? ", adds [CLS] [SEP]" : "");
}

void inspect_model(const ModelFile& m, const InspectOptions& o) {
  std::optional<TokenizerSpec> tok;
  std::string tok_note;
  try {
    tok = tokenizer_spec_for(m, o.tokenizer);
  } catch (const Error& e) {
    tok_note = printable(e.what());
  }
  uint64_t total = 0;
  double n_weights = 0;  // elements of all tensors, for the file's bits per weight
  for (const TensorInfo& t : m.tensors) {
    total += t.n_bytes;
    n_weights += static_cast<double>(t.n_elements());
  }
  const double bpw = n_weights > 0 ? 8.0 * static_cast<double>(total) / n_weights : 0.0;
  if (o.json) {
    ordered_json j;
    j["path"] = m.path;
    j["format"] = std::string(file_format_name(m.format));
    if (m.format == FileFormat::gguf || m.format == FileFormat::llama2c) j["version"] = m.version;
    if (m.format == FileFormat::gguf) j["alignment"] = m.alignment;
    j["files"] = m.files;
    j["config"] = config_json(m.config);
    j["tokenizer"] = tok ? tokenizer_json(*tok) : ordered_json(nullptr);
    ordered_json md = ordered_json::object();
    for (const auto& [k, v] : m.metadata.entries()) md[k] = meta_json(v, o.max_items);
    j["metadata"] = md;
    j["tensor_bytes"] = total;
    j["bits_per_weight"] = bpw;
    j["tensors"] = ordered_json::array();
    for (const TensorInfo& t : m.tensors) {
      j["tensors"].push_back({{"name", t.name},
                              {"dtype", std::string(tensor_type_name(t.type))},
                              {"shape", t.shape},
                              {"bytes", t.n_bytes},
                              {"offset", t.offset},
                              {"file", m.files.at(t.file_index)}});
    }
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  const ModelConfig& c = m.config;
  std::printf("%s\n", m.path.c_str());
  std::printf("format: %s", std::string(file_format_name(m.format)).c_str());
  if (m.format == FileFormat::gguf)
    std::printf(" v%u, alignment %lu", m.version, (unsigned long)m.alignment);
  if (m.format == FileFormat::llama2c) std::printf(" v%u", m.version);
  if (m.files.size() > 1) std::printf(", %zu shards", m.files.size());
  std::printf("\n");
  if (!c.architecture.empty()) {
    std::printf("architecture: %s\n", c.architecture.c_str());
    std::printf(
        "  n_vocab %ld, n_ctx %ld, n_embd %ld, n_layer %ld, n_head %ld, n_head_kv %ld, head_dim "
        "%ld, n_ff %ld\n",
        (long)c.n_vocab, (long)c.n_ctx, (long)c.n_embd, (long)c.n_layer, (long)c.n_head,
        (long)c.n_head_kv, (long)c.head_dim, (long)c.n_ff);
    std::printf("  norm_eps %g", c.norm_eps);
    if (c.rope_type == "none" || c.rope_theta == 0)
      std::printf(", no RoPE");
    else
      std::printf(", RoPE theta %g%s%s", c.rope_theta, c.rope_type.empty() ? "" : " ",
                  c.rope_type.c_str());
    // Whether the output head is tied is known only from the tensors.
    if (!m.tensors.empty()) std::printf(", %s embeddings", c.tied_embeddings ? "tied" : "untied");
    std::printf(", %s", c.causal ? "causal" : "bidirectional");
    if (!c.activation.empty()) std::printf(", %s", c.activation.c_str());
    std::printf("\n");
  }
  if (tok)
    print_tokenizer(*tok);
  else
    std::printf("tokenizer: none (%s)\n", tok_note.c_str());
  std::printf("metadata: %zu keys\n", m.metadata.size());
  for (const auto& [k, v] : m.metadata.entries()) {
    std::printf("  %-44s %s\n", k.c_str(), v.to_string(o.max_items).c_str());
  }
  std::printf("tensors: %zu, %.3f MB, %.2f bits per weight\n", m.tensors.size(),
              static_cast<double>(total) / 1e6, bpw);
  size_t w = 8;
  for (const TensorInfo& t : m.tensors) w = std::max(w, t.name.size());
  for (const TensorInfo& t : m.tensors) {
    std::printf("  %-*s %-6s %-20s %12lu\n", static_cast<int>(w), t.name.c_str(),
                std::string(tensor_type_name(t.type)).c_str(), shape_str(t.shape).c_str(),
                (unsigned long)t.n_bytes);
  }
}

void inspect_tokenizer(const std::string& path, const TokenizerSpec& s, bool json) {
  if (json) {
    ordered_json j = {{"path", path}, {"format", "tokenizer"}, {"tokenizer", tokenizer_json(s)}};
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  std::printf("%s\nformat: tokenizer\n", path.c_str());
  print_tokenizer(s);
}

void inspect_config(const std::string& path, bool json) {
  const ModelConfig c = read_hf_config(path);
  if (json) {
    std::cout << ordered_json({{"path", path}, {"format", "hf-config"}, {"config", config_json(c)}})
                     .dump(2)
              << "\n";
    return;
  }
  std::printf("%s\nformat: HF config.json\n", path.c_str());
  std::printf("architecture: %s\n", c.architecture.c_str());
  std::printf(
      "  n_vocab %ld, n_ctx %ld, n_embd %ld, n_layer %ld, n_head %ld, n_head_kv %ld, "
      "head_dim %ld, n_ff %ld\n",
      (long)c.n_vocab, (long)c.n_ctx, (long)c.n_embd, (long)c.n_layer, (long)c.n_head,
      (long)c.n_head_kv, (long)c.head_dim, (long)c.n_ff);
  std::printf("  norm_eps %g, rope %s theta %g, %s embeddings, %s\n", c.norm_eps,
              c.rope_type.c_str(), c.rope_theta, c.tied_embeddings ? "tied" : "untied",
              c.causal ? "causal" : "bidirectional");
}

// The GPT-2 vocabulary in its two file forms: vocab.json + merges.txt (HF) or
// encoder.json + vocab.bpe (OpenAI), given either file of the pair.
std::optional<std::pair<std::string, std::string>> gpt2_pair(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const std::string name = p.filename().string();
  const fs::path dir = p.parent_path();
  const std::pair<const char*, const char*> pairs[] = {{"vocab.json", "merges.txt"},
                                                       {"encoder.json", "vocab.bpe"}};
  for (auto [vocab, merges] : pairs) {
    if ((name == vocab || name == merges) && fs::exists(dir / vocab) && fs::exists(dir / merges)) {
      return std::pair{(dir / vocab).string(), (dir / merges).string()};
    }
  }
  return std::nullopt;
}

void run(const InspectOptions& o) {
  namespace fs = std::filesystem;
  const std::string ext = fs::path(o.path).extension().string();
  if (auto pair = gpt2_pair(o.path)) {
    inspect_tokenizer(o.path, read_gpt2_vocab(pair->first, pair->second), o.json);
    return;
  }
  if (fs::path(o.path).filename() == "vocab.txt") {
    inspect_tokenizer(o.path, read_tokenizer_file(o.path), o.json);
    return;
  }
  if (ext == ".json" && !fs::is_directory(o.path)) {
    // What kind of JSON: a sharded-checkpoint index, a tokenizer.json or a config.json.
    const std::string text = read_input_file(o.path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(o.path + ": invalid JSON: " + json_error_reason(e));
    }
    if (j.is_object() && j.contains("weight_map")) {
      inspect_model(open_model(o.path), o);
    } else if (j.is_object() && j.contains("model") && j["model"].is_object()) {
      inspect_tokenizer(o.path, read_tokenizer_json(o.path), o.json);
    } else if (j.is_object() && j.contains("model_type")) {
      inspect_config(o.path, o.json);
    } else {
      std::string keys;
      if (j.is_object()) {
        for (const auto& [k, v] : j.items()) keys += (keys.empty() ? "" : ", ") + k;
      }
      throw Error(o.path + ": expected a model index (weight_map), a tokenizer.json (model) or " +
                  "a config.json (model_type), found a JSON " + j.type_name() +
                  (keys.empty() ? "" : " with keys " + keys.substr(0, 80)));
    }
    return;
  }
  try {
    inspect_model(open_model(o.path), o);
  } catch (const Error& model_error) {
    // A llama2.c tokenizer.bin has no magic: try it before giving the model error.
    if (ext == ".bin") {
      try {
        inspect_tokenizer(o.path, read_llama2c_tokenizer(o.path), o.json);
        return;
      } catch (const Error&) {
      }
    }
    throw;
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  app.add_option("path", o->path, "GGUF, safetensors (or index .json), llama2.c .bin, HF folder")
      ->required();
  add_tokenizer_option(app, o->tokenizer);
  add_json_flag(app, o->json);
  app.add_option("--max-items", o->max_items, "arrays longer than this are summarised")
      ->default_val(8);
  app.callback([o] { run(*o); });
}

Registrar reg("inspect", "Describe a model file: hyper-parameters, tokenizer, tensors", setup);

}  // namespace
}  // namespace cmd_inspect
}  // namespace qkv::app
