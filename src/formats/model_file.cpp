// open_model: picks the reader from the magic bytes; GGUF hyper-parameters; small helpers.
#include <filesystem>

#include "core/utf8.h"
#include "formats/formats_internal.h"
#include "formats/gguf_internal.h"
#include "formats/mapped_file.h"

namespace qkv::formats {

std::string printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 40; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += core::concat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    }
  }
  if (s.size() > 40) out += "...";
  return out;
}

bool valid_utf8(std::string_view s) {
  return core::valid_utf8(s);
}

ModelConfig config_from_gguf(const ModelFile& m) {
  ModelConfig c;
  const Metadata& md = m.metadata;
  const MetaValue* arch = md.find("general.architecture");
  if (arch == nullptr || arch->type() != MetaValue::Type::string) return c;
  c.architecture = arch->as_string();
  const std::string a = c.architecture + ".";
  // Per-layer arrays (some models vary heads by layer) report their first entry.
  auto integer = [&](const std::string& key) -> int64_t {
    const MetaValue* v = md.find(key);
    if (v == nullptr) return 0;
    if (v->type() == MetaValue::Type::array) {
      const auto& items = v->as_array();
      return items.empty() ? 0 : items[0].as_int(m.path + ": " + key);
    }
    return v->as_int(m.path + ": " + key);
  };
  auto number = [&](const std::string& key) -> double {
    const MetaValue* v = md.find(key);
    return v ? v->as_float(m.path + ": " + key) : 0.0;
  };
  c.n_ctx = integer(a + "context_length");
  c.n_embd = integer(a + "embedding_length");
  c.n_layer = integer(a + "block_count");
  c.n_ff = integer(a + "feed_forward_length");
  c.n_head = integer(a + "attention.head_count");
  c.n_head_kv = integer(a + "attention.head_count_kv");
  if (c.n_head_kv == 0) c.n_head_kv = c.n_head;
  c.head_dim = integer(a + "attention.key_length");
  if (c.head_dim == 0 && c.n_head > 0) c.head_dim = c.n_embd / c.n_head;
  c.norm_eps = number(a + "attention.layer_norm_rms_epsilon");
  if (c.norm_eps == 0) c.norm_eps = number(a + "attention.layer_norm_epsilon");
  c.rope_theta = number(a + "rope.freq_base");
  if (c.rope_theta == 0 && md.contains(a + "rope.dimension_count")) c.rope_theta = 10000.0;
  c.n_vocab = integer(a + "vocab_size");
  if (c.n_vocab == 0) {
    if (const MetaValue* t = md.find("tokenizer.ggml.tokens")) {
      if (t->type() == MetaValue::Type::array)
        c.n_vocab = static_cast<int64_t>(t->as_array().size());
    }
  }
  c.sliding_window = integer(a + "attention.sliding_window");
  if (const MetaValue* v = md.find(a + "attention.sliding_window_pattern")) {
    // A per-layer array (Gemma 4's) is marked -1: refused by the loader of a family that reads it.
    c.swa_pattern = v->type() == MetaValue::Type::array
                        ? -1
                        : v->as_int(m.path + ": " + a + "attention.sliding_window_pattern");
  }
  c.rope_theta_swa = number(a + "rope.freq_base_swa");
  c.rope_scale = number(a + "rope.scaling.factor");
  if (c.rope_scale == 0) c.rope_scale = number(a + "rope.scale_linear");
  c.rope_attn_factor = number(a + "rope.scaling.attn_factor");
  c.n_ctx_orig = integer(a + "rope.scaling.original_context_length");
  if (const MetaValue* v = md.find(a + "rope.scaling.type")) {
    c.rope_type = v->as_string(m.path + ": " + a + "rope.scaling.type");
  }
  c.attn_softcap = number(a + "attn_logit_softcapping");
  c.final_softcap = number(a + "final_logit_softcapping");
  if (const MetaValue* v = md.find(a + "attention.causal")) c.causal = v->as_bool(a + "causal");
  if (c.architecture == "bert") c.causal = md.contains(a + "attention.causal") ? c.causal : false;
  c.tied_embeddings = !m.tensors.empty() && m.find_tensor("output.weight") == nullptr;
  return c;
}

}  // namespace qkv::formats

namespace qkv {

ModelFile open_model(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return read_hf_folder(path);
  if (!fs::exists(path, ec)) core::throw_error(path, ": no such file or folder");
  if (path.size() >= 5 && path.substr(path.size() - 5) == ".json") return read_safetensors(path);
  auto map = std::make_shared<const MappedFile>(path);
  const std::byte* p = map->data();
  const uint64_t n = map->size();
  if (n >= 4 && std::memcmp(p, "GGUF", 4) == 0) return formats::parse_gguf(path, std::move(map));
  if (n >= 9 && static_cast<char>(p[8]) == '{') {
    ModelFile m;
    m.path = path;
    m.format = FileFormat::safetensors;
    formats::parse_safetensors_into(m, path, std::move(map), 0);
    return m;
  }
  if (n >= 28) return read_llama2c(path);
  core::throw_error(
      path, ": format: expected GGUF, safetensors or a llama2.c checkpoint, found ", n,
      " bytes starting \"",
      formats::printable(std::string_view(reinterpret_cast<const char*>(p),
                                          static_cast<size_t>(std::min<uint64_t>(n, 8)))),
      "\"");
}

}  // namespace qkv
