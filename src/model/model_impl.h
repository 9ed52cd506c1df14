// The loaded form of a model: weights bound to their roles, ready for the forward passes.
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "kernels/linear.h"
#include "model/arch.h"
#include "qkv/model.h"

namespace qkv::model {

// LayerNorm (w and b) or RMSNorm (w only), fp32.
struct Norm {
  std::vector<float> w, b;  // [n_embd]
  bool empty() const { return w.empty(); }
};

struct LayerWeights {
  Norm attn_norm;  // pre-attention (GPT-2, LLaMA)
  // GPT-2's fused QKV matrix is bound as three row slices of the one tensor.
  kernels::Linear wq, wk, wv, wo;
  Norm q_norm, k_norm;  // [head_dim] per-head RMSNorm of q and k (Qwen 3)
  Norm attn_out_norm;   // post-attention (BERT)
  Norm attn_post_norm;  // attention output before the residual add (Gemma 2)
  Norm ffn_norm;        // pre-MLP (GPT-2, LLaMA)
  kernels::Linear ffn_gate, ffn_up, ffn_down;
  Norm ffn_out_norm;     // post-MLP (BERT)
  Norm ffn_post_norm;    // MLP output before the residual add (Gemma 2)
  bool sliding = false;  // attends to the last config.sliding_window keys only
};

}  // namespace qkv::model

namespace qkv {

// The library's access to a Model's weights (Model keeps them private from users).
struct ModelAccess {
  static const Model::Impl& impl(const Model& m) { return *m.impl_; }
};

struct Model::Impl {
  ModelFile file;
  Architecture arch = Architecture::llama;
  const model::ArchTraits* traits = nullptr;  // model::arch_traits(arch)
  ModelConfig config;
  RopeStyle rope = RopeStyle::none;
  model::Source source = model::Source::gguf;
  std::optional<Tokenizer> tokenizer;

  kernels::WeightView tok_embd;   // [n_vocab, n_embd]
  kernels::WeightView pos_embd;   // [n_ctx, n_embd] (GPT-2, BERT)
  kernels::WeightView type_embd;  // [n_types, n_embd] (BERT)
  model::Norm embd_norm;          // BERT
  std::vector<model::LayerWeights> layers;
  model::Norm out_norm;     // decoders
  kernels::Linear lm_head;  // decoders; the token embedding when tied
  kernels::Linear pooler;   // BERT, when present
  bool has_pooler = false;
  std::vector<float> rope_inv_freq;       // [head_dim / 2]: theta^(-2i / head_dim) / divisors
  std::vector<float> rope_inv_freq_swa;   // sliding layers' (Gemma 2/3); empty: rope_inv_freq
  std::vector<float> rope_inv_freq_long;  // past config.n_ctx_orig (Phi-3 LongRoPE); or empty
  float rope_mscale = 1.0f;               // q and k scaled after RoPE (LongRoPE attn_factor)
  int64_t n_params = 0;
  int64_t matrix_bytes = 0;  // bytes of all weight matrices (what a decode step reads)
  // LoadOptions::dot == int8: llama.cpp's arithmetic, which also scores a q8_0 KV cache in
  // integers (AttentionOptions::int8_scores) during decode.
  bool int8_dot = false;
  // Weights that could not stay in the mapped file (transposed HF Conv1D matrices).
  std::vector<std::vector<std::byte>> owned;
};

}  // namespace qkv
