// qkv make-model --arch gpt2|llama|qwen2|qwen3|gemma2|gemma3|phi3 [--preset NAME|tiny] [--n-embd N
//                --n-layer L --n-head H --n-head-kv HKV --head-dim D --n-ff F --n-vocab V --n-ctx C]
//                [--dtype f32|f16|bf16|q8_0] [--seed S] [--std SIGMA] [--vocab VOCAB.gguf] -o OUT
//   Writes a GGUF model of a real shape with seeded random weights, named and laid out as
//   llama.cpp's convert_hf_to_gguf.py writes each family's checkpoints (the tensor list and keys
//   of model/arch.cpp), so that llama.cpp and qkv both load it: benchmarks and cross-checks
//   without downloading weights.
//
// Weights: matrices and biases N(0, std^2); norm weights 1 + N(0, std^2) (random rather than 1,
// so a test comparing two engines notices a swapped or missing norm). Each value is a pure
// function of (seed, tensor index, element index), so a file is the same for a given seed
// whatever the machine's thread count. 2-D tensors are stored in --dtype; 1-D tensors (norms,
// biases) stay f32, as llama.cpp does. The tokenizer is copied from --vocab (its tokenizer.ggml.*
// keys; n_vocab follows it) or synthesised: 256 byte tokens plus generated pieces, a valid
// byte-level BPE (gpt2, qwen, gemma) or SentencePiece (llama) vocabulary of exactly n_vocab
// tokens.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numbers>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "command.h"
#include "qkv/convert.h"
#include "qkv/dtype.h"
#include "qkv/model.h"
#include "qkv/model_file.h"

namespace qkv::app {
namespace cmd_make_model {  // one per subcommand: the qkv target is a unity build
namespace {

using T = MetaValue::Type;

struct MakeModelOptions {
  std::string arch;
  std::string preset;
  TensorType dtype = TensorType::f32;
  std::string vocab;
  std::string output;
  std::string name;
  uint64_t seed = 1;
  double std = 0.02;
  // 0: take the preset's value.
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_vocab = 0,
          n_ctx = 0;
};

// A model to write: the architecture and its hyper-parameters as the loader will read them.
struct Shape {
  Architecture arch = Architecture::gpt2;
  ModelConfig c;
  std::string arch_name() const { return std::string(architecture_name(arch)); }
};

// Real shapes of the families (from each model's config.json), and tiny ones for tests (every
// dimension a multiple of 32 where q8_0 must apply). head_dim 0: n_embd / n_head.
struct Preset {
  std::string_view name;
  Architecture arch;
  int64_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
  double rope_theta, norm_eps;
  bool tied;
  int64_t sliding_window = 0;
  double attn_softcap = 0, final_softcap = 0;
  int64_t swa_pattern = 0;
  double rope_theta_swa = 0, rope_scale = 0;
  bool llama3_rope = false;  // writes rope_freqs (Llama 3.x's RoPE scaling)
};
using A = Architecture;
constexpr Preset kPresets[] = {
    {"gpt2-124m", A::gpt2, 768, 12, 12, 12, 0, 3072, 50257, 1024, 0, 1e-5, true},
    // TinyLlama-1.1B's shape (22 layers, GQA 32/4, SwiGLU 5632, SentencePiece 32000).
    {"llama-1b", A::llama, 2048, 22, 32, 4, 0, 5632, 32000, 2048, 1e4, 1e-5, false},
    // Llama 3.2 1B: tied embeddings, RoPE base 500000 scaled by the rope_freqs tensor.
    {"llama-3.2-1b", A::llama, 2048, 16, 32, 8, 0, 8192, 128256, 131072, 5e5,
     1e-5,           true,     0,    0,  0,  0, 0, 0,    true},
    {"llama-3.2-tiny",
     A::llama,
     64,
     2,
     4,
     2,
     0,
     160,
     384,
     128,
     5e5,
     1e-5,
     true,
     0,
     0,
     0,
     0,
     0,
     0,
     true},
    {"qwen2.5-0.5b", A::qwen2, 896, 24, 14, 2, 0, 4864, 151936, 32768, 1e6, 1e-6, true},
    {"qwen3-0.6b", A::qwen3, 1024, 28, 16, 8, 128, 3072, 151936, 40960, 1e6, 1e-6, true},
    {"gemma-2-2b", A::gemma2, 2304, 26, 8, 4, 256, 9216, 256000, 8192, 1e4, 1e-6, true, 4096, 50,
     30},
    // Gemma 3 1B: 5 local layers (window 512, RoPE base 10000) to 1 global (base 1e6).
    {"gemma-3-1b", A::gemma3, 1152, 26, 4, 1, 256, 6912, 262144, 32768, 1e6, 1e-6, true, 512, 0, 0,
     6, 1e4},
    // Phi-3-mini-4k: fused QKV and gate/up, SentencePiece 32064.
    {"phi-3-mini", A::phi3, 3072, 32, 32, 32, 0, 8192, 32064, 4096, 1e4, 1e-5, false},
    {"tiny", A::gpt2, 64, 2, 4, 4, 0, 256, 320, 128, 0, 1e-5, true},
    {"tiny", A::llama, 64, 2, 4, 2, 0, 160, 384, 128, 1e4, 1e-5, false},
    {"tiny", A::qwen2, 64, 2, 4, 2, 0, 160, 384, 128, 1e6, 1e-6, true},
    // head_dim 32 != n_embd / n_head: the file states attention.key_length, as Qwen3's do.
    {"tiny", A::qwen3, 64, 2, 4, 2, 32, 160, 384, 128, 1e6, 1e-6, false},
    // A window of 8 so that short test prompts already slide on layer 0.
    {"tiny", A::gemma2, 64, 2, 4, 2, 0, 160, 384, 128, 1e4, 1e-6, true, 8, 50, 30},
    // 6 layers so that layer 5 is global; global RoPE base 1e6 scaled linearly by 8 (Gemma 3
    // 4B and up), local base 10000.
    {"tiny", A::gemma3, 64, 6, 4, 2, 32, 160, 384, 128, 1e6, 1e-6, true, 8, 0, 0, 6, 1e4, 8},
    {"tiny", A::phi3, 64, 2, 4, 2, 0, 160, 384, 128, 1e4, 1e-5, false},
};

std::string preset_names() {
  std::string out;
  for (const Preset& p : kPresets) {
    if (p.name != "tiny") out += std::string(p.name) + ", ";
  }
  return out + "tiny";
}

std::string arch_names() {
  std::string out;
  for (int a = 0; a <= static_cast<int>(A::phi3); ++a) {
    if (static_cast<A>(a) == A::bert) continue;  // an encoder: make-model writes decoders
    out += (out.empty() ? "" : ", ") + std::string(architecture_name(static_cast<A>(a)));
  }
  return out;
}

Shape resolve_shape(const MakeModelOptions& o) {
  std::optional<Architecture> arch;
  if (!o.arch.empty()) {
    arch = architecture_named(o.arch);
    if (!arch || *arch == A::bert) {
      throw Error("--arch: expected one of " + arch_names() + ", found \"" + o.arch + "\"");
    }
  }
  const std::string name = o.preset.empty() ? "tiny" : o.preset;
  const Preset* preset = nullptr;
  for (const Preset& p : kPresets) {
    if (p.name != name) continue;
    if (name == "tiny" && p.arch != arch.value_or(A::gpt2)) continue;
    preset = &p;
    break;
  }
  if (preset == nullptr) {
    throw Error("--preset: expected " + preset_names() + ", found \"" + name + "\"");
  }
  if (arch && *arch != preset->arch) {
    throw Error("--preset " + name + " is a " + std::string(architecture_name(preset->arch)) +
                " shape, but --arch is " + o.arch);
  }
  Shape s;
  s.arch = preset->arch;
  ModelConfig& c = s.c;
  c.architecture = s.arch_name();
  c.n_embd = preset->n_embd;
  c.n_layer = preset->n_layer;
  c.n_head = preset->n_head;
  c.n_head_kv = preset->n_head_kv;
  c.head_dim = preset->head_dim;
  c.n_ff = preset->n_ff;
  c.n_vocab = preset->n_vocab;
  c.n_ctx = preset->n_ctx;
  c.rope_theta = preset->rope_theta;
  c.norm_eps = preset->norm_eps;
  c.tied_embeddings = preset->tied;
  c.sliding_window = preset->sliding_window;
  c.attn_softcap = preset->attn_softcap;
  c.final_softcap = preset->final_softcap;
  c.swa_pattern = preset->swa_pattern;
  c.rope_theta_swa = preset->rope_theta_swa;
  c.rope_scale = preset->rope_scale;
  if (preset->llama3_rope) c.rope_type = "llama3";
  auto take = [](int64_t given, int64_t& field) {
    if (given != 0) field = given;
  };
  take(o.n_embd, c.n_embd);
  take(o.n_layer, c.n_layer);
  take(o.n_head, c.n_head);
  take(o.n_head_kv, c.n_head_kv);
  take(o.head_dim, c.head_dim);
  take(o.n_ff, c.n_ff);
  take(o.n_vocab, c.n_vocab);
  take(o.n_ctx, c.n_ctx);
  if (s.arch == A::gpt2 && o.n_head != 0 && o.n_head_kv == 0) c.n_head_kv = c.n_head;
  for (auto [opt, v] : {std::pair{"--n-embd", c.n_embd},
                        {"--n-layer", c.n_layer},
                        {"--n-head", c.n_head},
                        {"--n-head-kv", c.n_head_kv},
                        {"--n-ff", c.n_ff},
                        {"--n-vocab", c.n_vocab},
                        {"--n-ctx", c.n_ctx}}) {
    if (v <= 0 || v > (int64_t{1} << 24)) {
      throw Error(std::string(opt) + ": expected 1.." + std::to_string(1 << 24) + ", found " +
                  std::to_string(v));
    }
  }
  if (c.head_dim == 0) {
    if (c.n_embd % c.n_head != 0) {
      throw Error("--n-embd " + std::to_string(c.n_embd) + " must be a multiple of --n-head " +
                  std::to_string(c.n_head) + " (or give --head-dim)");
    }
    c.head_dim = c.n_embd / c.n_head;
  }
  if (c.head_dim <= 0 || c.head_dim > 4096 || c.head_dim % 2 != 0) {
    throw Error("--head-dim: expected an even number in 2..4096 (for RoPE), found " +
                std::to_string(c.head_dim) + " (n_embd / n_head unless given)");
  }
  if (c.n_head % c.n_head_kv != 0) {
    throw Error("--n-head " + std::to_string(c.n_head) + " must be a multiple of --n-head-kv " +
                std::to_string(c.n_head_kv));
  }
  if (s.arch == A::gpt2 && c.n_head_kv != c.n_head) {
    throw Error("--n-head-kv: GPT-2 has no grouped-query attention; expected " +
                std::to_string(c.n_head) + " (= --n-head), found " + std::to_string(c.n_head_kv));
  }
  if (s.arch == A::gpt2 && c.head_dim * c.n_head != c.n_embd) {
    throw Error("--head-dim: GPT-2's heads split n_embd; expected " +
                std::to_string(c.n_embd / c.n_head) + ", found " + std::to_string(c.head_dim));
  }
  return s;
}

// ---- Tensors -----------------------------------------------------------------------------

enum class Init : uint8_t { normal, norm_weight, llama3_rope_freqs };

struct Planned {
  GgufTensorDecl decl;
  Init init;
};

// The architecture's tensor list (model/arch.cpp, the one the loader binds), in llama.cpp's
// names and order; matrices in `matrix`, 1-D tensors f32.
std::vector<Planned> plan_tensors(const Shape& s, TensorType matrix) {
  std::vector<Planned> p;
  for (GgufTensorEntry& t : gguf_tensor_list(s.arch, s.c)) {
    const TensorType type = t.shape.size() == 2 ? matrix : TensorType::f32;
    const Init init = t.rope_freqs    ? Init::llama3_rope_freqs
                      : t.norm_weight ? Init::norm_weight
                                      : Init::normal;
    p.push_back({{std::move(t.name), type, std::move(t.shape)}, init});
  }
  return p;
}

// Counter-based generator: splitmix64's finaliser over (key + counter). Any element can be
// computed on its own, so the values do not depend on how the work is split.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Standard normals for elements [first, first + n) of the stream `key` (Box-Muller: elements
// 2k and 2k+1 come from the uniforms of counters 2k and 2k+1).
void normals(uint64_t key, uint64_t first, size_t n, float* out) {
  for (size_t i = 0; i < n;) {
    const uint64_t e = first + i;
    const uint64_t pair = e & ~uint64_t{1};
    // u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1).
    const double u1 = (double(mix64(key + pair) >> 11) + 1.0) * 0x1p-53;
    const double u2 = double(mix64(key + pair + 1) >> 11) * 0x1p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 2.0 * std::numbers::pi * u2;
    if ((e & 1) == 0) out[i++] = static_cast<float>(r * std::cos(a));
    if (i < n) out[i++] = static_cast<float>(r * std::sin(a));
  }
}

// Llama 3.2's RoPE scaling as its config states it (factor 32, low_freq_factor 1,
// high_freq_factor 4, original context 8192), as the rope_freqs tensor. n = head_dim / 2.
void llama3_rope_freqs(double theta, int64_t n, float* out) {
  const std::vector<float> f = qkv::llama3_rope_freqs(
      {.factor = 32, .low_freq_factor = 1, .high_freq_factor = 4, .original_context = 8192}, theta,
      2 * n);
  std::copy(f.begin(), f.end(), out);
}

// Produces tensor `p` (index `index` in the file) into `out`, in chunks of kChunk values.
void fill_tensor(const Planned& p, size_t index, uint64_t seed, double std, double rope_theta,
                 std::span<std::byte> out) {
  constexpr size_t kChunk = size_t{1} << 16;  // a multiple of the q8_0 block (32)
  const uint64_t key = mix64(mix64(seed) ^ (uint64_t(index) << 32));
  int64_t n = 1;
  for (int64_t x : p.decl.shape) n *= x;
  std::vector<float> buf(kChunk);
  size_t pos = 0;  // bytes written
  for (int64_t first = 0; first < n; first += int64_t(kChunk)) {
    const size_t m = static_cast<size_t>(std::min<int64_t>(int64_t(kChunk), n - first));
    normals(key, uint64_t(first), m, buf.data());
    const float offset = p.init == Init::norm_weight ? 1.0f : 0.0f;
    for (size_t i = 0; i < m; ++i) buf[i] = offset + static_cast<float>(std) * buf[i];
    if (p.init == Init::llama3_rope_freqs) llama3_rope_freqs(rope_theta, n, buf.data());
    std::byte* dst = out.data() + pos;
    switch (p.decl.type) {
      case TensorType::f32:
        std::memcpy(dst, buf.data(), m * 4);
        pos += m * 4;
        break;
      case TensorType::f16:
      case TensorType::bf16:
        for (size_t i = 0; i < m; ++i) {
          const uint16_t h =
              p.decl.type == TensorType::f16 ? f32_to_f16(buf[i]) : f32_to_bf16(buf[i]);
          std::memcpy(dst + 2 * i, &h, 2);
        }
        pos += m * 2;
        break;
      case TensorType::q8_0:
        quantize_q8_0(buf.data(), int64_t(m), dst);
        pos += m / 32 * size_t(tensor_type_block_bytes(TensorType::q8_0));
        break;
      default:
        throw Error("make-model: tensor " + p.decl.name + ": cannot write type " +
                    std::string(tensor_type_name(p.decl.type)));
    }
  }
  if (pos != out.size()) {
    throw Error("make-model: tensor " + p.decl.name + ": produced " + std::to_string(pos) +
                " bytes, expected " + std::to_string(out.size()));
  }
}

// ---- Tokenizer ---------------------------------------------------------------------------

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  } else {
    s += char(0xe0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3f));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

MetaValue string_array(const std::vector<std::string>& v) {
  std::vector<MetaValue> items;
  items.reserve(v.size());
  for (const std::string& s : v) items.push_back(MetaValue::make_string(s));
  return MetaValue::make_array(T::string, std::move(items));
}

MetaValue int_array(const std::vector<int32_t>& v) {
  std::vector<MetaValue> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(MetaValue::make_int(T::i32, x));
  return MetaValue::make_array(T::i32, std::move(items));
}

// Adds pieces left + c (c from `alphabet`) breadth first, left running over the alphabet and
// then over the pieces made so far, until `tokens` holds `n` entries. `on_piece(left, right)`
// sees each new piece's two halves (the BPE merge that makes it).
template <typename OnPiece>
void grow_pieces(std::vector<std::string>& tokens, size_t n,
                 const std::vector<std::string>& alphabet, OnPiece on_piece) {
  std::set<std::string> seen(tokens.begin(), tokens.end());
  std::vector<std::string> lefts = alphabet;
  for (size_t li = 0; tokens.size() < n; ++li) {
    const std::string left = lefts[li];  // a copy: `lefts` grows below
    for (const std::string& right : alphabet) {
      if (tokens.size() >= n) break;
      std::string piece = left + right;
      if (!seen.insert(piece).second) continue;
      on_piece(left, right);
      tokens.push_back(piece);
      lefts.push_back(std::move(piece));
    }
  }
}

// GPT-2 byte-level BPE: the 256 byte symbols in GPT-2's order (printable bytes first, the rest
// mapped to U+0100...), merged pieces, and <|endoftext|> last as BOS and EOS, as in GPT-2.
void synth_gpt2_vocab(int64_t n_vocab, Metadata& md) {
  if (n_vocab < 257 + 63) {
    throw Error("--n-vocab: a synthesised GPT-2 vocabulary needs at least 320 tokens, found " +
                std::to_string(n_vocab) + " (or pass --vocab FILE.gguf)");
  }
  std::vector<std::string> tokens;
  std::vector<uint32_t> byte_cp(256, 0);
  std::vector<bool> printable(256, false);
  for (uint32_t b = 0; b < 256; ++b) {
    printable[b] = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
  }
  for (uint32_t b = 0; b < 256; ++b) {
    if (printable[b]) tokens.push_back(utf8(b));
  }
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    if (!printable[b]) tokens.push_back(utf8(next++));
  }
  // Pieces over a space marker (Ġ, byte 0x20), letters and digits.
  std::vector<std::string> alphabet = {utf8(0x120)};
  for (char c = 'a'; c <= 'z'; ++c) alphabet.emplace_back(1, c);
  for (char c = 'A'; c <= 'Z'; ++c) alphabet.emplace_back(1, c);
  for (char c = '0'; c <= '9'; ++c) alphabet.emplace_back(1, c);
  std::vector<std::string> merges;
  grow_pieces(tokens, size_t(n_vocab - 1), alphabet,
              [&](const std::string& l, const std::string& r) { merges.push_back(l + " " + r); });
  tokens.push_back("<|endoftext|>");
  std::vector<int32_t> types(tokens.size(), 1);  // normal
  types.back() = 3;                              // control
  const auto eot = static_cast<uint64_t>(tokens.size() - 1);
  md.set("tokenizer.ggml.model", MetaValue::make_string("gpt2"));
  md.set("tokenizer.ggml.pre", MetaValue::make_string("gpt-2"));
  md.set("tokenizer.ggml.tokens", string_array(tokens));
  md.set("tokenizer.ggml.token_type", int_array(types));
  md.set("tokenizer.ggml.merges", string_array(merges));
  md.set("tokenizer.ggml.bos_token_id", MetaValue::make_uint(T::u32, eot));
  md.set("tokenizer.ggml.eos_token_id", MetaValue::make_uint(T::u32, eot));
}

// SentencePiece (LLaMA): <unk> <s> </s>, the byte-fallback tokens <0x00>..<0xFF>, then pieces
// over ▁ (U+2581), letters and digits with decreasing scores (longer pieces later, lower).
void synth_spm_vocab(int64_t n_vocab, Metadata& md) {
  if (n_vocab < 259 + 63) {
    throw Error(
        "--n-vocab: a synthesised SentencePiece vocabulary needs at least 322 tokens, "
        "found " +
        std::to_string(n_vocab) + " (or pass --vocab FILE.gguf)");
  }
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    tokens.emplace_back(hex);
    types.push_back(6);  // byte
  }
  std::vector<std::string> alphabet = {utf8(0x2581)};
  for (char c = 'a'; c <= 'z'; ++c) alphabet.emplace_back(1, c);
  for (char c = 'A'; c <= 'Z'; ++c) alphabet.emplace_back(1, c);
  for (char c = '0'; c <= '9'; ++c) alphabet.emplace_back(1, c);
  tokens.insert(tokens.end(), alphabet.begin(), alphabet.end());
  grow_pieces(tokens, size_t(n_vocab), alphabet, [](const std::string&, const std::string&) {});
  types.resize(tokens.size(), 1);
  std::vector<MetaValue> scores;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const double s = i < 259 ? 0.0 : -double(i - 259);
    scores.push_back(MetaValue::make_float(T::f32, s));
  }
  md.set("tokenizer.ggml.model", MetaValue::make_string("llama"));
  md.set("tokenizer.ggml.tokens", string_array(tokens));
  md.set("tokenizer.ggml.scores", MetaValue::make_array(T::f32, std::move(scores)));
  md.set("tokenizer.ggml.token_type", int_array(types));
  md.set("tokenizer.ggml.bos_token_id", MetaValue::make_uint(T::u32, 1));
  md.set("tokenizer.ggml.eos_token_id", MetaValue::make_uint(T::u32, 2));
  md.set("tokenizer.ggml.unknown_token_id", MetaValue::make_uint(T::u32, 0));
  md.set("tokenizer.ggml.add_bos_token", MetaValue::make_bool(true));
  md.set("tokenizer.ggml.add_eos_token", MetaValue::make_bool(false));
}

// The tokenizer.ggml.* keys of a vocab GGUF (llama.cpp's models/ggml-vocab-*.gguf), in order.
int64_t copy_vocab(const std::string& path, Metadata& md) {
  const ModelFile v = read_gguf(path);
  for (const auto& [k, val] : v.metadata.entries()) {
    if (k.rfind("tokenizer.ggml.", 0) == 0) md.set(k, val);
  }
  const MetaValue* tokens = md.find("tokenizer.ggml.tokens");
  if (tokens == nullptr || md.find("tokenizer.ggml.model") == nullptr) {
    throw Error(path + ": --vocab: expected tokenizer.ggml.model and tokenizer.ggml.tokens, " +
                "found no tokenizer (is it a vocab GGUF?)");
  }
  return static_cast<int64_t>(tokens->as_array(path + ": tokenizer.ggml.tokens").size());
}

// ---- The command -------------------------------------------------------------------------

// llama.cpp's LLAMA_FTYPE values (general.file_type).
uint32_t file_type_id(TensorType t) {
  switch (t) {
    case TensorType::f16:
      return 1;
    case TensorType::q8_0:
      return 7;
    case TensorType::bf16:
      return 32;
    default:
      return 0;  // all f32
  }
}

void run(const MakeModelOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const TensorType wtype = o.dtype;
  Metadata tok;
  MakeModelOptions opt = o;
  if (!o.vocab.empty()) {
    const int64_t n = copy_vocab(o.vocab, tok);
    if (o.n_vocab != 0 && o.n_vocab != n) {
      throw Error("--n-vocab " + std::to_string(o.n_vocab) + " disagrees with --vocab " + o.vocab +
                  " (" + std::to_string(n) + " tokens); leave --n-vocab out");
    }
    opt.n_vocab = n;
  }
  const Shape s = resolve_shape(opt);
  if (o.vocab.empty()) {
    // LLaMA files carry SentencePiece; the others a byte-level BPE (Qwen's is one; Gemma's
    // SentencePiece is not synthesised: a random model runs the same on either).
    if (s.arch == Architecture::llama || s.arch == Architecture::phi3) {
      synth_spm_vocab(s.c.n_vocab, tok);
    } else {
      synth_gpt2_vocab(s.c.n_vocab, tok);
    }
  }
  if (!(o.std > 0 && o.std < 10)) {
    throw Error("--std: expected a value in (0, 10), found " + std::to_string(o.std));
  }
  const std::vector<Planned> plan = plan_tensors(s, wtype);
  if (wtype == TensorType::q8_0) {
    for (const Planned& p : plan) {
      if (p.decl.shape.size() == 2 && p.decl.shape[1] % 32 != 0) {
        throw Error("--dtype q8_0: tensor " + p.decl.name + " has rows of " +
                    std::to_string(p.decl.shape[1]) +
                    " values, not a multiple of 32 (the q8_0 block); change --n-embd / --n-ff");
      }
    }
  }

  Metadata md;
  auto u32 = [](int64_t v) { return MetaValue::make_uint(T::u32, uint64_t(v)); };
  md.set("general.architecture", MetaValue::make_string(s.arch_name()));
  md.set(
      "general.name",
      MetaValue::make_string(
          !o.name.empty() ? o.name
                          : "qkv random " + (o.preset.empty() ? std::string("tiny") : o.preset)));
  set_gguf_arch_keys(s.arch, s.c, md);
  md.set("general.file_type", u32(file_type_id(wtype)));
  md.set("general.quantization_version", u32(2));
  for (const auto& [k, v] : tok.entries()) md.set(k, v);

  std::vector<GgufTensorDecl> decls;
  uint64_t n_params = 0;
  for (const Planned& p : plan) {
    decls.push_back(p.decl);
    int64_t n = 1;
    for (int64_t x : p.decl.shape) n *= x;
    n_params += uint64_t(n);
  }
  write_gguf_streaming(o.output, md, decls, [&](size_t i, std::span<std::byte> out) {
    fill_tensor(plan[i], i, o.seed, o.std, s.c.rope_theta, out);
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const ModelConfig& c = s.c;
  std::printf(
      "%s: %s, %lld layers, n_embd %lld, heads %lld/%lld (head_dim %lld), n_ff %lld, n_vocab %lld, "
      "n_ctx %lld, %.1fM parameters, %s weights, seed %llu, %.1f s\n",
      o.output.c_str(), s.arch_name().c_str(), (long long)c.n_layer, (long long)c.n_embd,
      (long long)c.n_head, (long long)c.n_head_kv, (long long)c.head_dim, (long long)c.n_ff,
      (long long)c.n_vocab, (long long)c.n_ctx, double(n_params) / 1e6,
      std::string(tensor_type_name(wtype)).c_str(), (unsigned long long)o.seed, secs);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<MakeModelOptions>();
  app.add_option(
      "--arch", o->arch,
      "gpt2 (default), llama, qwen2, qwen3, gemma2, gemma3 or phi3 (implied by a named preset)");
  app.add_option("--preset", o->preset,
                 "gpt2-124m, llama-1b (TinyLlama-1.1B shape), llama-3.2-1b, llama-3.2-tiny, "
                 "qwen2.5-0.5b, qwen3-0.6b, gemma-2-2b, gemma-3-1b, phi-3-mini, or tiny (default; "
                 "in --arch's architecture)");
  app.add_option("--n-embd", o->n_embd, "Override: embedding width");
  app.add_option("--n-layer", o->n_layer, "Override: blocks");
  app.add_option("--n-head", o->n_head, "Override: query heads");
  app.add_option("--n-head-kv", o->n_head_kv, "Override: key/value heads (llama)");
  app.add_option("--head-dim", o->head_dim, "Override: head width (default n_embd / n_head)");
  app.add_option("--n-ff", o->n_ff, "Override: feed-forward width");
  app.add_option("--n-vocab", o->n_vocab, "Override: vocabulary size");
  app.add_option("--n-ctx", o->n_ctx, "Override: trained context length");
  add_enum_option(app, "--dtype", o->dtype, "2-D weights",
                  EnumNames<TensorType>{{"f32", TensorType::f32},
                                        {"f16", TensorType::f16},
                                        {"bf16", TensorType::bf16},
                                        {"q8_0", TensorType::q8_0}});
  app.add_option("--seed", o->seed, "Random seed")->check(seed_check())->capture_default_str();
  app.add_option("--std", o->std, "Standard deviation of the weights")->capture_default_str();
  app.add_option("--vocab", o->vocab, "Copy the tokenizer from this vocab GGUF");
  app.add_option("--name", o->name, "general.name");
  app.add_option("-o,--output", o->output, "Output .gguf")->required();
  app.callback([o] { run(*o); });
}

Registrar reg("make-model", "Write a GGUF model of a real shape with seeded random weights", setup);

}  // namespace
}  // namespace cmd_make_model
}  // namespace qkv::app
