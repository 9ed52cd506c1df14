// Architectures as data: each lists its tensors once (role, shape, names in each file family).
// The loader, its validation and the GGUF converter all walk these lists.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/model.h"
#include "qkv/model_file.h"

namespace qkv::model {

enum class Role : uint8_t {
  tok_embd,     // [n_vocab, n_embd]
  pos_embd,     // [n_ctx, n_embd] learned positions (GPT-2, BERT)
  type_embd,    // [n_types, n_embd] (BERT)
  embd_norm_w,  // [n_embd] LayerNorm after the embeddings (BERT)
  embd_norm_b,
  attn_norm_w,  // [n_embd] pre-attention norm (GPT-2, LLaMA)
  attn_norm_b,
  wqkv,  // [n_q + 2 n_kv, n_embd] fused (GPT-2)
  bqkv,
  wq,  // [n_head * head_dim, n_embd]
  bq,
  wk,  // [n_head_kv * head_dim, n_embd]
  bk,
  wv,
  bv,
  wo,  // [n_embd, n_head * head_dim]
  bo,
  attn_out_norm_w,  // [n_embd] post-attention LayerNorm (BERT)
  attn_out_norm_b,
  attn_q_norm,     // [head_dim] RMSNorm of each query head before RoPE (Qwen3, Gemma 3)
  attn_k_norm,     // [head_dim] RMSNorm of each key head before RoPE
  attn_post_norm,  // [n_embd] RMSNorm of the attention output before the residual add (Gemma 2)
  ffn_norm_w,      // [n_embd] pre-MLP norm (GPT-2, LLaMA)
  ffn_norm_b,
  ffn_gate,  // [n_ff, n_embd] (LLaMA)
  ffn_up,    // [n_ff, n_embd]
  ffn_up_b,
  ffn_down,  // [n_embd, n_ff]
  ffn_down_b,
  ffn_out_norm_w,  // [n_embd] post-MLP LayerNorm (BERT)
  ffn_out_norm_b,
  ffn_post_norm,  // [n_embd] RMSNorm of the MLP output before the residual add (Gemma 2)
  out_norm_w,     // [n_embd] final norm (GPT-2, LLaMA)
  out_norm_b,
  lm_head,   // [n_vocab, n_embd]; absent when tied to tok_embd
  pooler_w,  // [n_embd, n_embd] (BERT)
  pooler_b,
  rope_freqs,          // [head_dim / 2] RoPE frequency divisors (Llama 3's scaling)
  rope_factors_long,   // [head_dim / 2] Phi-3 LongRoPE divisors past the original context
  rope_factors_short,  // [head_dim / 2] and within it
  ffn_gate_up,         // [2 n_ff, n_embd] fused gate (first half) and up (Phi-3)
  count
};
inline constexpr int kRoleCount = static_cast<int>(Role::count);

// Dimension symbols for shapes.
enum class Dim : uint8_t { none, vocab, ctx, types, embd, head, rope_half, q, kv, qkv, ff, ff2 };

// Where a tensor name comes from: GGUF (llama.cpp's converter names), Hugging Face
// safetensors, llama2.c checkpoints.
enum class Source : uint8_t { gguf, hf, llama2c };
Source source_of(const ModelFile& file);

struct TensorSpec {
  Role role;
  bool per_layer;
  bool optional;             // may be absent (tied head, biases some files leave out, pooler)
  std::array<Dim, 2> shape;  // row-major [rows, cols]; cols none = 1-D
  // Names with "{}" standing for the layer index; empty: the family does not have it.
  std::string_view gguf, hf, llama2c;
  bool hf_transposed = false;  // stored [in, out] by HF (GPT-2's Conv1D)
};

std::span<const TensorSpec> arch_tensors(Architecture arch);

enum class NormKind : uint8_t { layer, rms };
// The MLP: GPT-2/BERT up -> GELU -> down; gated: act(gate) * up -> down.
enum class FfnKind : uint8_t { gelu_tanh, gelu_erf, swiglu, geglu_tanh };

// What an architecture does beyond its tensor list, as data the forward pass reads.
struct ArchTraits {
  std::string_view name;  // GGUF general.architecture
  bool decoder = true;
  NormKind norm = NormKind::rms;
  FfnKind ffn = FfnKind::swiglu;
  // RoPE pairing in GGUF files: llama.cpp's converter permutes LLaMA's Q/K rows to interleaved
  // pairs, and leaves the other families in the "rotate half" (NeoX) order of their HF weights.
  RopeStyle gguf_rope = RopeStyle::none;
  bool embd_scale = false;  // embeddings times sqrt(n_embd) (Gemma)
  // RMSNorm weights stored as w - 1 in HF checkpoints (Gemma computes x * (1 + w)); GGUF files
  // store 1 + w, which is what the loader binds.
  bool hf_norm_plus_one = false;
  // Sliding-window layers: layer l slides when l % swa_pattern < swa_pattern - 1 (llama.cpp's
  // rule; Gemma 2: 2, every even layer). 0: no sliding layers.
  int swa_pattern = 0;
  int64_t default_window = 0;  // when the file states none
  // A window the file states applies to every layer (Mistral, as its Hugging Face config says;
  // llama.cpp ignores the key for llama-architecture files).
  bool window_all_layers = false;
  // Sliding layers use their own RoPE: base rope.freq_base_swa (default 10000) and no scaling
  // (Gemma 3); otherwise the global base (unless the file states one) and scaling.
  bool swa_own_rope = false;
};
const ArchTraits& arch_traits(Architecture arch);
std::string_view role_name(Role role);
// The name of `spec` in `source` for `layer` (-1 for global tensors); empty when absent.
std::string tensor_name(const TensorSpec& spec, Source source, int layer);
// The tensor called `name` in `file`. HF checkpoints saved from a head model carry a prefix
// ("bert.", "transformer.", "model.") that a base model's files do not; for Source::hf both
// spellings are accepted. Null when absent.
const TensorInfo* find_tensor(const ModelFile& file, Source source, const std::string& name);
// Size of a dimension symbol for a config (types = 2 for BERT's token types).
int64_t dim_size(Dim d, const ModelConfig& c);

// One tensor of a GGUF file as qkv writes it (make-model, convert, train).
struct GgufTensorPlan {
  const TensorSpec* spec;
  int layer;                   // -1: global
  std::string name;            // llama.cpp's name
  std::vector<int64_t> shape;  // row-major [rows, cols] or [n]
};
// The tensors of an `arch` model of config `c` in llama.cpp's file order: the globals before the
// blocks, every block's tensors in table order, the globals after. Required tensors only, plus
// the LM head unless c.tied_embeddings.
std::vector<GgufTensorPlan> gguf_tensor_plan(Architecture arch, const ModelConfig& c);
// Writes the `{arch}.*` hyper-parameter keys of `c` as llama.cpp's converter names and types
// them (general.* and tokenizer.* are the caller's). The one writer of these keys.
void set_gguf_hparams(Architecture arch, const ModelConfig& c, Metadata& md);
// Whether `role` is a norm weight (a 1-D scale; random models initialise it around 1).
bool is_norm_weight(Role role);

// "gpt2", "llama", "bert" and their relatives (HF model_type / GGUF general.architecture).
std::optional<Architecture> parse_architecture(std::string_view name);

}  // namespace qkv::model
