// Architectures as data: each lists its tensors once (role, shape, names in each file family).
// The loader, its validation and the GGUF converter all walk these lists.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

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
  ffn_norm_w,  // [n_embd] pre-MLP norm (GPT-2, LLaMA)
  ffn_norm_b,
  ffn_gate,  // [n_ff, n_embd] (LLaMA)
  ffn_up,    // [n_ff, n_embd]
  ffn_up_b,
  ffn_down,  // [n_embd, n_ff]
  ffn_down_b,
  ffn_out_norm_w,  // [n_embd] post-MLP LayerNorm (BERT)
  ffn_out_norm_b,
  out_norm_w,  // [n_embd] final norm (GPT-2, LLaMA)
  out_norm_b,
  lm_head,   // [n_vocab, n_embd]; absent when tied to tok_embd
  pooler_w,  // [n_embd, n_embd] (BERT)
  pooler_b,
  count
};
inline constexpr int kRoleCount = static_cast<int>(Role::count);

// Dimension symbols for shapes.
enum class Dim : uint8_t { none, vocab, ctx, types, embd, q, kv, qkv, ff };

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
std::string_view role_name(Role role);
// The name of `spec` in `source` for `layer` (-1 for global tensors); empty when absent.
std::string tensor_name(const TensorSpec& spec, Source source, int layer);
// The tensor called `name` in `file`. HF checkpoints saved from a head model carry a prefix
// ("bert.", "transformer.", "model.") that a base model's files do not; for Source::hf both
// spellings are accepted. Null when absent.
const TensorInfo* find_tensor(const ModelFile& file, Source source, const std::string& name);
// Size of a dimension symbol for a config (types = 2 for BERT's token types).
int64_t dim_size(Dim d, const ModelConfig& c);

// "gpt2", "llama", "bert" and their relatives (HF model_type / GGUF general.architecture).
std::optional<Architecture> parse_architecture(std::string_view name);

}  // namespace qkv::model
