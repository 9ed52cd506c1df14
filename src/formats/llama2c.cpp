// llama2.c checkpoints (karpathy/llama2.c, all fp32):
//   v0 ("legacy"): 7 x int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
//       seq_len}; vocab_size < 0 means an untied classifier (wcls) at the end.
//   v1: u32 magic 0x616b3432 ("ak42"), i32 version 1, the same 7 int32, u8 shared_classifier,
//       zero padding to 256 bytes.
// Tensors get the Meta LLaMA names (tok_embeddings.weight, layers.N.attention.wq.weight, ...),
// shapes in PyTorch's [out, in] order.
#include <array>
#include <climits>

#include "formats/formats_internal.h"
#include "formats/mapped_file.h"

namespace qkv {
namespace {

constexpr uint32_t kMagicV1 = 0x616b3432;

struct Layout {
  std::string name;
  std::vector<int64_t> shape;
};

}  // namespace

namespace formats {

ModelFile parse_llama2c(const std::string& path, std::shared_ptr<const MappedFile> map) {
  formats::ByteReader r(path, map->data(), map->size());
  ModelFile m;
  m.path = path;
  m.format = FileFormat::llama2c;
  m.files = {path};
  uint64_t header_bytes = 28;
  bool shared = true;
  std::array<int32_t, 7> h{};
  if (map->size() >= 4 && r.read<uint32_t>("magic") == kMagicV1) {
    m.version = static_cast<uint32_t>(r.read<int32_t>("version"));
    if (m.version != 1) {
      core::throw_error(path, ": version: expected 1 (fp32), found ", m.version,
                        m.version == 2 ? " (llama2.c int8 export: not supported)" : "");
    }
    for (int32_t& v : h) v = r.read<int32_t>("header");
    shared = r.read<uint8_t>("shared_classifier") != 0;
    header_bytes = 256;
  } else {
    r.seek(0);
    for (int32_t& v : h) v = r.read<int32_t>("header");
    shared = h[5] > 0;
    // INT32_MIN has no positive counterpart: leave it negative for the range check below.
    if (h[5] < 0 && h[5] != INT32_MIN) h[5] = -h[5];
  }
  static constexpr const char* names[] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                          "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    if (h[i] <= 0 || h[i] > (1 << 24)) {
      core::throw_error(path, ": header ", names[i], ": expected 1..", 1 << 24, ", found ", h[i],
                        " (not a llama2.c checkpoint?)");
    }
  }
  const int64_t dim = h[0], hidden = h[1], n_layer = h[2], n_head = h[3], n_kv = h[4], vocab = h[5],
                seq = h[6];
  if (dim % n_head != 0 || n_head % n_kv != 0) {
    core::throw_error(path, ": header: expected dim (", dim, ") divisible by n_heads (", n_head,
                      ") and n_heads by n_kv_heads (", n_kv, ")");
  }
  const int64_t hs = dim / n_head;
  // The file size the header implies, computed before listing any tensor (so a corrupt header
  // cannot make us allocate without bound). Each factor is <= 2^24: 128-bit sums cannot overflow.
  using i128 = __int128;
  const i128 layer_floats = i128(dim) * 2 + i128(dim) * n_head * hs * 2 +
                            i128(dim) * n_kv * hs * 2 + i128(hidden) * dim * 3;
  const i128 n_floats = i128(vocab) * dim * (shared ? 1 : 2) + i128(n_layer) * layer_floats + dim +
                        (m.version == 0 ? i128(seq) * (hs / 2) * 2 : 0);
  const i128 expected = i128(header_bytes) + n_floats * 4;
  if (expected != i128(map->size())) {
    const std::string want = expected > i128(INT64_MAX)
                                 ? std::string("more than 2^63")
                                 : std::to_string(static_cast<int64_t>(expected));
    core::throw_error(path, ": file size: expected ", want, " bytes for dim=", dim,
                      " hidden_dim=", hidden, " n_layers=", n_layer, " n_heads=", n_head,
                      " n_kv_heads=", n_kv, " vocab_size=", vocab, " seq_len=", seq,
                      shared ? " (shared classifier)" : " (separate classifier)", ", found ",
                      map->size());
  }
  std::vector<Layout> lay;
  auto per_layer = [&](const std::string& what, std::vector<int64_t> shape) {
    for (int64_t l = 0; l < n_layer; ++l) {
      lay.push_back({"layers." + std::to_string(l) + "." + what, shape});
    }
  };
  if (m.version == 0) {
    lay.push_back({"tok_embeddings.weight", {vocab, dim}});
    per_layer("attention_norm.weight", {dim});
    per_layer("attention.wq.weight", {n_head * hs, dim});
    per_layer("attention.wk.weight", {n_kv * hs, dim});
    per_layer("attention.wv.weight", {n_kv * hs, dim});
    per_layer("attention.wo.weight", {dim, n_head * hs});
    per_layer("ffn_norm.weight", {dim});
    per_layer("feed_forward.w1.weight", {hidden, dim});
    per_layer("feed_forward.w2.weight", {dim, hidden});
    per_layer("feed_forward.w3.weight", {hidden, dim});
    lay.push_back({"norm.weight", {dim}});
    lay.push_back({"freq_cis_real", {seq, hs / 2}});
    lay.push_back({"freq_cis_imag", {seq, hs / 2}});
  } else {
    per_layer("attention_norm.weight", {dim});
    per_layer("ffn_norm.weight", {dim});
    lay.push_back({"norm.weight", {dim}});
    lay.push_back({"tok_embeddings.weight", {vocab, dim}});
    per_layer("attention.wq.weight", {n_head * hs, dim});
    per_layer("attention.wk.weight", {n_kv * hs, dim});
    per_layer("attention.wv.weight", {n_kv * hs, dim});
    per_layer("attention.wo.weight", {dim, n_head * hs});
    per_layer("feed_forward.w1.weight", {hidden, dim});
    per_layer("feed_forward.w2.weight", {dim, hidden});
    per_layer("feed_forward.w3.weight", {hidden, dim});
  }
  if (!shared) lay.push_back({"output.weight", {vocab, dim}});
  uint64_t offset = header_bytes;
  for (Layout& l : lay) {
    TensorInfo t;
    t.name = std::move(l.name);
    t.type = TensorType::f32;
    t.shape = std::move(l.shape);
    t.n_bytes = formats::tensor_bytes(path, t.name, t.type, t.shape);
    t.offset = offset;
    offset += t.n_bytes;
    m.tensors.push_back(std::move(t));
  }
  if (offset != map->size()) {  // the layout and the size formula above must agree
    core::throw_error(path, ": internal error: tensor layout ends at ", offset, ", file size ",
                      map->size());
  }
  for (TensorInfo& t : m.tensors) t.data = map->data() + t.offset;
  m.maps.push_back(std::move(map));

  ModelConfig& c = m.config;
  c.architecture = "llama";
  c.n_vocab = vocab;
  c.n_ctx = seq;
  c.n_embd = dim;
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_head_kv = n_kv;
  c.head_dim = hs;
  c.n_ff = hidden;
  c.norm_eps = 1e-5;  // run.c's rmsnorm constant
  c.rope_theta = 10000.0;
  c.rope_type = "llama2.c";
  c.activation = "silu";
  c.tied_embeddings = shared;
  for (int i = 0; i < 7; ++i) {
    m.metadata.set(std::string("llama2c.") + names[i],
                   MetaValue::make_int(MetaValue::Type::i32, h[i]));
  }
  m.metadata.set("llama2c.shared_classifier", MetaValue::make_bool(shared));
  return m;
}

}  // namespace formats

ModelFile read_llama2c(const std::string& path) {
  return formats::parse_llama2c(path, std::make_shared<const MappedFile>(path));
}

ModelFile read_llama2c_bytes(std::span<const std::byte> bytes, const std::string& name) {
  return formats::parse_llama2c(name, std::make_shared<const MappedFile>(name, bytes));
}

}  // namespace qkv
