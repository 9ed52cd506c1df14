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

// The header's seven fields, in file order.
constexpr const char* kHeaderNames[] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                        "n_kv_heads", "vocab_size", "seq_len"};

struct Header {
  uint32_t version = 0;        // 0: legacy (no magic), 1: "ak42" v1
  uint64_t bytes = 28;         // header size; the tensors follow it
  bool shared = true;          // classifier tied to the token embeddings
  std::array<int32_t, 7> h{};  // kHeaderNames, checked to be in 1..2^24
  int64_t dim = 0, hidden = 0, n_layer = 0, n_head = 0, n_kv = 0, vocab = 0, seq = 0;
  int64_t hs = 0;  // head size, dim / n_head
};

// Reads and checks the header (either version).
Header read_header(formats::ByteReader& r, const std::string& path, size_t file_size) {
  Header hd;
  std::array<int32_t, 7>& h = hd.h;
  if (file_size >= 4 && r.read<uint32_t>("magic") == kMagicV1) {
    hd.version = static_cast<uint32_t>(r.read<int32_t>("version"));
    if (hd.version != 1) {
      core::throw_error(path, ": version: expected 1 (fp32), found ", hd.version,
                        hd.version == 2 ? " (llama2.c int8 export: not supported)" : "");
    }
    for (int32_t& v : h) v = r.read<int32_t>("header");
    hd.shared = r.read<uint8_t>("shared_classifier") != 0;
    hd.bytes = 256;
  } else {
    r.seek(0);
    for (int32_t& v : h) v = r.read<int32_t>("header");
    hd.shared = h[5] > 0;
    // INT32_MIN has no positive counterpart: leave it negative for the range check below.
    if (h[5] < 0 && h[5] != INT32_MIN) h[5] = -h[5];
  }
  for (int i = 0; i < 7; ++i) {
    if (h[i] <= 0 || h[i] > (1 << 24)) {
      core::throw_error(path, ": header ", kHeaderNames[i], ": expected 1..", 1 << 24, ", found ",
                        h[i], " (not a llama2.c checkpoint?)");
    }
  }
  hd.dim = h[0], hd.hidden = h[1], hd.n_layer = h[2], hd.n_head = h[3], hd.n_kv = h[4];
  hd.vocab = h[5], hd.seq = h[6];
  if (hd.dim % hd.n_head != 0 || hd.n_head % hd.n_kv != 0) {
    core::throw_error(path, ": header: expected dim (", hd.dim, ") divisible by n_heads (",
                      hd.n_head, ") and n_heads by n_kv_heads (", hd.n_kv, ")");
  }
  hd.hs = hd.dim / hd.n_head;
  return hd;
}

// The file size the header implies must be the file's, checked before listing any tensor (so a
// corrupt header cannot make us allocate without bound). Each factor is <= 2^24: 128-bit sums
// cannot overflow.
void check_file_size(const Header& hd, const std::string& path, size_t file_size) {
  using i128 = __int128;
  const int64_t dim = hd.dim, hidden = hd.hidden, n_head = hd.n_head, n_kv = hd.n_kv, hs = hd.hs;
  const i128 layer_floats = i128(dim) * 2 + i128(dim) * n_head * hs * 2 +
                            i128(dim) * n_kv * hs * 2 + i128(hidden) * dim * 3;
  const i128 n_floats = i128(hd.vocab) * dim * (hd.shared ? 1 : 2) +
                        i128(hd.n_layer) * layer_floats + dim +
                        (hd.version == 0 ? i128(hd.seq) * (hs / 2) * 2 : 0);
  const i128 expected = i128(hd.bytes) + n_floats * 4;
  if (expected != i128(file_size)) {
    const std::string want = expected > i128(INT64_MAX)
                                 ? std::string("more than 2^63")
                                 : std::to_string(static_cast<int64_t>(expected));
    core::throw_error(path, ": file size: expected ", want, " bytes for dim=", dim,
                      " hidden_dim=", hidden, " n_layers=", hd.n_layer, " n_heads=", n_head,
                      " n_kv_heads=", n_kv, " vocab_size=", hd.vocab, " seq_len=", hd.seq,
                      hd.shared ? " (shared classifier)" : " (separate classifier)", ", found ",
                      file_size);
  }
}

// The tensors in file order, with the Meta LLaMA names.
std::vector<Layout> tensor_layout(const Header& hd) {
  const int64_t dim = hd.dim, hidden = hd.hidden, n_head = hd.n_head, n_kv = hd.n_kv, hs = hd.hs;
  const int64_t vocab = hd.vocab;
  std::vector<Layout> lay;
  auto per_layer = [&](const std::string& what, std::vector<int64_t> shape) {
    for (int64_t l = 0; l < hd.n_layer; ++l) {
      lay.push_back({"layers." + std::to_string(l) + "." + what, shape});
    }
  };
  if (hd.version == 0) {
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
    lay.push_back({"freq_cis_real", {hd.seq, hs / 2}});
    lay.push_back({"freq_cis_imag", {hd.seq, hs / 2}});
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
  if (!hd.shared) lay.push_back({"output.weight", {vocab, dim}});
  return lay;
}

// The model's configuration (run.c's constants where the header has none) and the header as
// metadata.
void set_config(const Header& hd, ModelFile& m) {
  ModelConfig& c = m.config;
  c.architecture = "llama";
  c.n_vocab = hd.vocab;
  c.n_ctx = hd.seq;
  c.n_embd = hd.dim;
  c.n_layer = hd.n_layer;
  c.n_head = hd.n_head;
  c.n_head_kv = hd.n_kv;
  c.head_dim = hd.hs;
  c.n_ff = hd.hidden;
  c.norm_eps = 1e-5;  // run.c's rmsnorm constant
  c.rope_theta = 10000.0;
  c.rope_type = "llama2.c";
  c.activation = "silu";
  c.tied_embeddings = hd.shared;
  for (int i = 0; i < 7; ++i) {
    m.metadata.set(std::string("llama2c.") + kHeaderNames[i],
                   MetaValue::make_int(MetaValue::Type::i32, hd.h[i]));
  }
  m.metadata.set("llama2c.shared_classifier", MetaValue::make_bool(hd.shared));
}

}  // namespace

namespace formats {

ModelFile parse_llama2c(const std::string& path, std::shared_ptr<const MappedFile> map) {
  formats::ByteReader r(path, map->data(), map->size());
  ModelFile m;
  m.path = path;
  m.format = FileFormat::llama2c;
  m.files = {path};
  const Header hd = read_header(r, path, map->size());
  m.version = hd.version;
  check_file_size(hd, path, map->size());
  uint64_t offset = hd.bytes;
  for (Layout& l : tensor_layout(hd)) {
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
  m.storage.push_back(std::move(map));
  set_config(hd, m);
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
