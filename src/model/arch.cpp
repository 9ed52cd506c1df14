#include "model/arch.h"

#include "core/error.h"

namespace qkv::model {

namespace {

using D = Dim;

// Labels for TensorSpec's flags, so that each table row reads left to right.
constexpr bool kPerLayer = true;  // TensorSpec::per_layer: one tensor per block, "{}" = layer
constexpr bool kGlobal = false;
constexpr bool kOptional = true;  // TensorSpec::optional
constexpr bool kRequired = false;
constexpr bool kConv1D = true;  // TensorSpec::hf_transposed: HF stores it [in, out]

// One row per tensor:
//   role, per layer?, optional?, shape [rows, cols], GGUF name, HF name, llama2.c name[, kConv1D]
// clang-format off

// GPT-2: learned positions, pre-LN, fused QKV with bias, tanh-GELU MLP, tied head.
// HF stores GPT-2's linear layers as Conv1D, [in, out].
constexpr TensorSpec kGpt2[] = {
    {Role::tok_embd,    kGlobal,   kRequired, {D::vocab, D::embd}, "token_embd.weight",         "transformer.wte.weight",              ""},
    {Role::pos_embd,    kGlobal,   kRequired, {D::ctx, D::embd},   "position_embd.weight",      "transformer.wpe.weight",              ""},
    {Role::attn_norm_w, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_norm.weight",   "transformer.h.{}.ln_1.weight",        ""},
    {Role::attn_norm_b, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_norm.bias",     "transformer.h.{}.ln_1.bias",          ""},
    {Role::wqkv,        kPerLayer, kRequired, {D::qkv, D::embd},   "blk.{}.attn_qkv.weight",    "transformer.h.{}.attn.c_attn.weight", "", kConv1D},
    {Role::bqkv,        kPerLayer, kRequired, {D::qkv, D::none},   "blk.{}.attn_qkv.bias",      "transformer.h.{}.attn.c_attn.bias",   ""},
    {Role::wo,          kPerLayer, kRequired, {D::embd, D::q},     "blk.{}.attn_output.weight", "transformer.h.{}.attn.c_proj.weight", "", kConv1D},
    {Role::bo,          kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_output.bias",   "transformer.h.{}.attn.c_proj.bias",   ""},
    {Role::ffn_norm_w,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_norm.weight",    "transformer.h.{}.ln_2.weight",        ""},
    {Role::ffn_norm_b,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_norm.bias",      "transformer.h.{}.ln_2.bias",          ""},
    {Role::ffn_up,      kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_up.weight",      "transformer.h.{}.mlp.c_fc.weight",    "", kConv1D},
    {Role::ffn_up_b,    kPerLayer, kRequired, {D::ff, D::none},    "blk.{}.ffn_up.bias",        "transformer.h.{}.mlp.c_fc.bias",      ""},
    {Role::ffn_down,    kPerLayer, kRequired, {D::embd, D::ff},    "blk.{}.ffn_down.weight",    "transformer.h.{}.mlp.c_proj.weight",  "", kConv1D},
    {Role::ffn_down_b,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_down.bias",      "transformer.h.{}.mlp.c_proj.bias",    ""},
    {Role::out_norm_w,  kGlobal,   kRequired, {D::embd, D::none},  "output_norm.weight",        "transformer.ln_f.weight",             ""},
    {Role::out_norm_b,  kGlobal,   kRequired, {D::embd, D::none},  "output_norm.bias",          "transformer.ln_f.bias",               ""},
    {Role::lm_head,     kGlobal,   kOptional, {D::vocab, D::embd}, "output.weight",             "lm_head.weight",                      ""},
};

// LLaMA family: RMSNorm, RoPE, SwiGLU, GQA; biases on q/k/v/o are optional (Qwen2-style files).
constexpr TensorSpec kLlama[] = {
    {Role::rope_freqs,  kGlobal,   kOptional, {D::rope_half, D::none}, "rope_freqs.weight",    "",                                                ""},
    {Role::tok_embd,    kGlobal,   kRequired, {D::vocab, D::embd}, "token_embd.weight",         "model.embed_tokens.weight",                       "tok_embeddings.weight"},
    {Role::attn_norm_w, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_norm.weight",   "model.layers.{}.input_layernorm.weight",          "layers.{}.attention_norm.weight"},
    {Role::wq,          kPerLayer, kRequired, {D::q, D::embd},     "blk.{}.attn_q.weight",      "model.layers.{}.self_attn.q_proj.weight",         "layers.{}.attention.wq.weight"},
    {Role::bq,          kPerLayer, kOptional, {D::q, D::none},     "blk.{}.attn_q.bias",        "model.layers.{}.self_attn.q_proj.bias",           ""},
    {Role::wk,          kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_k.weight",      "model.layers.{}.self_attn.k_proj.weight",         "layers.{}.attention.wk.weight"},
    {Role::bk,          kPerLayer, kOptional, {D::kv, D::none},    "blk.{}.attn_k.bias",        "model.layers.{}.self_attn.k_proj.bias",           ""},
    {Role::wv,          kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_v.weight",      "model.layers.{}.self_attn.v_proj.weight",         "layers.{}.attention.wv.weight"},
    {Role::bv,          kPerLayer, kOptional, {D::kv, D::none},    "blk.{}.attn_v.bias",        "model.layers.{}.self_attn.v_proj.bias",           ""},
    {Role::wo,          kPerLayer, kRequired, {D::embd, D::q},     "blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight",         "layers.{}.attention.wo.weight"},
    {Role::bo,          kPerLayer, kOptional, {D::embd, D::none},  "blk.{}.attn_output.bias",   "model.layers.{}.self_attn.o_proj.bias",           ""},
    {Role::ffn_norm_w,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_norm.weight",    "model.layers.{}.post_attention_layernorm.weight", "layers.{}.ffn_norm.weight"},
    {Role::ffn_gate,    kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_gate.weight",    "model.layers.{}.mlp.gate_proj.weight",            "layers.{}.feed_forward.w1.weight"},
    {Role::ffn_up,      kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_up.weight",      "model.layers.{}.mlp.up_proj.weight",              "layers.{}.feed_forward.w3.weight"},
    {Role::ffn_down,    kPerLayer, kRequired, {D::embd, D::ff},    "blk.{}.ffn_down.weight",    "model.layers.{}.mlp.down_proj.weight",            "layers.{}.feed_forward.w2.weight"},
    {Role::out_norm_w,  kGlobal,   kRequired, {D::embd, D::none},  "output_norm.weight",        "model.norm.weight",                               "norm.weight"},
    {Role::lm_head,     kGlobal,   kOptional, {D::vocab, D::embd}, "output.weight",             "lm_head.weight",                                  "output.weight"},
};

// Qwen 2 / 2.5: LLaMA with bias on Q, K and V; NeoX RoPE.
constexpr TensorSpec kQwen2[] = {
    {Role::tok_embd,    kGlobal,   kRequired, {D::vocab, D::embd}, "token_embd.weight",         "model.embed_tokens.weight",                       ""},
    {Role::attn_norm_w, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_norm.weight",   "model.layers.{}.input_layernorm.weight",          ""},
    {Role::wq,          kPerLayer, kRequired, {D::q, D::embd},     "blk.{}.attn_q.weight",      "model.layers.{}.self_attn.q_proj.weight",         ""},
    {Role::bq,          kPerLayer, kRequired, {D::q, D::none},     "blk.{}.attn_q.bias",        "model.layers.{}.self_attn.q_proj.bias",           ""},
    {Role::wk,          kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_k.weight",      "model.layers.{}.self_attn.k_proj.weight",         ""},
    {Role::bk,          kPerLayer, kRequired, {D::kv, D::none},    "blk.{}.attn_k.bias",        "model.layers.{}.self_attn.k_proj.bias",           ""},
    {Role::wv,          kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_v.weight",      "model.layers.{}.self_attn.v_proj.weight",         ""},
    {Role::bv,          kPerLayer, kRequired, {D::kv, D::none},    "blk.{}.attn_v.bias",        "model.layers.{}.self_attn.v_proj.bias",           ""},
    {Role::wo,          kPerLayer, kRequired, {D::embd, D::q},     "blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight",         ""},
    {Role::ffn_norm_w,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_norm.weight",    "model.layers.{}.post_attention_layernorm.weight", ""},
    {Role::ffn_gate,    kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_gate.weight",    "model.layers.{}.mlp.gate_proj.weight",            ""},
    {Role::ffn_up,      kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_up.weight",      "model.layers.{}.mlp.up_proj.weight",              ""},
    {Role::ffn_down,    kPerLayer, kRequired, {D::embd, D::ff},    "blk.{}.ffn_down.weight",    "model.layers.{}.mlp.down_proj.weight",            ""},
    {Role::out_norm_w,  kGlobal,   kRequired, {D::embd, D::none},  "output_norm.weight",        "model.norm.weight",                               ""},
    {Role::lm_head,     kGlobal,   kOptional, {D::vocab, D::embd}, "output.weight",             "lm_head.weight",                                  ""},
};

// Qwen 3: LLaMA without biases, with an RMSNorm on each query and key head before RoPE.
constexpr TensorSpec kQwen3[] = {
    {Role::tok_embd,    kGlobal,   kRequired, {D::vocab, D::embd}, "token_embd.weight",         "model.embed_tokens.weight",                       ""},
    {Role::attn_norm_w, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_norm.weight",   "model.layers.{}.input_layernorm.weight",          ""},
    {Role::wq,          kPerLayer, kRequired, {D::q, D::embd},     "blk.{}.attn_q.weight",      "model.layers.{}.self_attn.q_proj.weight",         ""},
    {Role::wk,          kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_k.weight",      "model.layers.{}.self_attn.k_proj.weight",         ""},
    {Role::wv,          kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_v.weight",      "model.layers.{}.self_attn.v_proj.weight",         ""},
    {Role::attn_q_norm, kPerLayer, kRequired, {D::head, D::none},  "blk.{}.attn_q_norm.weight", "model.layers.{}.self_attn.q_norm.weight",         ""},
    {Role::attn_k_norm, kPerLayer, kRequired, {D::head, D::none},  "blk.{}.attn_k_norm.weight", "model.layers.{}.self_attn.k_norm.weight",         ""},
    {Role::wo,          kPerLayer, kRequired, {D::embd, D::q},     "blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight",         ""},
    {Role::ffn_norm_w,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_norm.weight",    "model.layers.{}.post_attention_layernorm.weight", ""},
    {Role::ffn_gate,    kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_gate.weight",    "model.layers.{}.mlp.gate_proj.weight",            ""},
    {Role::ffn_up,      kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_up.weight",      "model.layers.{}.mlp.up_proj.weight",              ""},
    {Role::ffn_down,    kPerLayer, kRequired, {D::embd, D::ff},    "blk.{}.ffn_down.weight",    "model.layers.{}.mlp.down_proj.weight",            ""},
    {Role::out_norm_w,  kGlobal,   kRequired, {D::embd, D::none},  "output_norm.weight",        "model.norm.weight",                               ""},
    {Role::lm_head,     kGlobal,   kOptional, {D::vocab, D::embd}, "output.weight",             "lm_head.weight",                                  ""},
};

// Gemma 2: embeddings scaled by sqrt(n_embd), RMSNorm before and after attention and MLP,
// GELU-tanh gated MLP, soft-capped attention scores and logits, sliding window on even layers.
constexpr TensorSpec kGemma2[] = {
    {Role::tok_embd,       kGlobal,   kRequired, {D::vocab, D::embd}, "token_embd.weight",               "model.embed_tokens.weight",                          ""},
    {Role::attn_norm_w,    kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_norm.weight",         "model.layers.{}.input_layernorm.weight",             ""},
    {Role::wq,             kPerLayer, kRequired, {D::q, D::embd},     "blk.{}.attn_q.weight",            "model.layers.{}.self_attn.q_proj.weight",            ""},
    {Role::wk,             kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_k.weight",            "model.layers.{}.self_attn.k_proj.weight",            ""},
    {Role::wv,             kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_v.weight",            "model.layers.{}.self_attn.v_proj.weight",            ""},
    {Role::wo,             kPerLayer, kRequired, {D::embd, D::q},     "blk.{}.attn_output.weight",       "model.layers.{}.self_attn.o_proj.weight",            ""},
    {Role::attn_post_norm, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.post_attention_norm.weight", "model.layers.{}.post_attention_layernorm.weight",  ""},
    {Role::ffn_norm_w,     kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_norm.weight",          "model.layers.{}.pre_feedforward_layernorm.weight",   ""},
    {Role::ffn_gate,       kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_gate.weight",          "model.layers.{}.mlp.gate_proj.weight",               ""},
    {Role::ffn_up,         kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_up.weight",            "model.layers.{}.mlp.up_proj.weight",                 ""},
    {Role::ffn_down,       kPerLayer, kRequired, {D::embd, D::ff},    "blk.{}.ffn_down.weight",          "model.layers.{}.mlp.down_proj.weight",               ""},
    {Role::ffn_post_norm,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.post_ffw_norm.weight",     "model.layers.{}.post_feedforward_layernorm.weight",  ""},
    {Role::out_norm_w,     kGlobal,   kRequired, {D::embd, D::none},  "output_norm.weight",              "model.norm.weight",                                  ""},
    {Role::lm_head,        kGlobal,   kOptional, {D::vocab, D::embd}, "output.weight",                   "lm_head.weight",                                     ""},
};

// Gemma 3: Gemma 2's blocks with per-head QK-norm and no attention soft-cap; 5 sliding layers to
// 1 global one, the sliding ones with their own RoPE base.
constexpr TensorSpec kGemma3[] = {
    {Role::tok_embd,       kGlobal,   kRequired, {D::vocab, D::embd}, "token_embd.weight",                 "model.embed_tokens.weight",                          ""},
    {Role::attn_norm_w,    kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_norm.weight",           "model.layers.{}.input_layernorm.weight",             ""},
    {Role::wq,             kPerLayer, kRequired, {D::q, D::embd},     "blk.{}.attn_q.weight",              "model.layers.{}.self_attn.q_proj.weight",            ""},
    {Role::wk,             kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_k.weight",              "model.layers.{}.self_attn.k_proj.weight",            ""},
    {Role::wv,             kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_v.weight",              "model.layers.{}.self_attn.v_proj.weight",            ""},
    {Role::wo,             kPerLayer, kRequired, {D::embd, D::q},     "blk.{}.attn_output.weight",         "model.layers.{}.self_attn.o_proj.weight",            ""},
    {Role::attn_post_norm, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.post_attention_norm.weight", "model.layers.{}.post_attention_layernorm.weight",    ""},
    {Role::attn_k_norm,    kPerLayer, kRequired, {D::head, D::none},  "blk.{}.attn_k_norm.weight",         "model.layers.{}.self_attn.k_norm.weight",            ""},
    {Role::attn_q_norm,    kPerLayer, kRequired, {D::head, D::none},  "blk.{}.attn_q_norm.weight",         "model.layers.{}.self_attn.q_norm.weight",            ""},
    {Role::ffn_norm_w,     kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_norm.weight",            "model.layers.{}.pre_feedforward_layernorm.weight",   ""},
    {Role::ffn_gate,       kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_gate.weight",            "model.layers.{}.mlp.gate_proj.weight",               ""},
    {Role::ffn_up,         kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_up.weight",              "model.layers.{}.mlp.up_proj.weight",                 ""},
    {Role::ffn_down,       kPerLayer, kRequired, {D::embd, D::ff},    "blk.{}.ffn_down.weight",            "model.layers.{}.mlp.down_proj.weight",               ""},
    {Role::ffn_post_norm,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.post_ffw_norm.weight",       "model.layers.{}.post_feedforward_layernorm.weight",  ""},
    {Role::out_norm_w,     kGlobal,   kRequired, {D::embd, D::none},  "output_norm.weight",                "model.norm.weight",                                  ""},
    {Role::lm_head,        kGlobal,   kOptional, {D::vocab, D::embd}, "output.weight",                     "lm_head.weight",                                     ""},
};

// Phi-3: fused Q/K/V and fused gate/up matrices, NeoX RoPE, optional LongRoPE factor tables.
constexpr TensorSpec kPhi3[] = {
    {Role::tok_embd,           kGlobal,   kRequired, {D::vocab, D::embd},     "token_embd.weight",         "model.embed_tokens.weight",                       ""},
    {Role::rope_factors_long,  kGlobal,   kOptional, {D::rope_half, D::none}, "rope_factors_long.weight",  "",                                                ""},
    {Role::rope_factors_short, kGlobal,   kOptional, {D::rope_half, D::none}, "rope_factors_short.weight", "",                                                ""},
    {Role::attn_norm_w,        kPerLayer, kRequired, {D::embd, D::none},      "blk.{}.attn_norm.weight",   "model.layers.{}.input_layernorm.weight",          ""},
    {Role::wqkv,               kPerLayer, kRequired, {D::qkv, D::embd},       "blk.{}.attn_qkv.weight",    "model.layers.{}.self_attn.qkv_proj.weight",       ""},
    {Role::wo,                 kPerLayer, kRequired, {D::embd, D::q},         "blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight",         ""},
    {Role::ffn_norm_w,         kPerLayer, kRequired, {D::embd, D::none},      "blk.{}.ffn_norm.weight",    "model.layers.{}.post_attention_layernorm.weight", ""},
    {Role::ffn_down,           kPerLayer, kRequired, {D::embd, D::ff},        "blk.{}.ffn_down.weight",    "model.layers.{}.mlp.down_proj.weight",            ""},
    {Role::ffn_gate_up,        kPerLayer, kRequired, {D::ff2, D::embd},       "blk.{}.ffn_up.weight",      "model.layers.{}.mlp.gate_up_proj.weight",         ""},
    {Role::out_norm_w,         kGlobal,   kRequired, {D::embd, D::none},      "output_norm.weight",        "model.norm.weight",                               ""},
    {Role::lm_head,            kGlobal,   kOptional, {D::vocab, D::embd},     "output.weight",             "lm_head.weight",                                  ""},
};

// BERT: token-type embeddings, post-LN, erf-GELU, bidirectional, pooler.
constexpr TensorSpec kBert[] = {
    {Role::tok_embd,        kGlobal,   kRequired, {D::vocab, D::embd}, "token_embd.weight",               "embeddings.word_embeddings.weight",                  ""},
    {Role::pos_embd,        kGlobal,   kRequired, {D::ctx, D::embd},   "position_embd.weight",            "embeddings.position_embeddings.weight",              ""},
    {Role::type_embd,       kGlobal,   kOptional, {D::types, D::embd}, "token_types.weight",              "embeddings.token_type_embeddings.weight",            ""},
    {Role::embd_norm_w,     kGlobal,   kRequired, {D::embd, D::none},  "token_embd_norm.weight",          "embeddings.LayerNorm.weight",                        ""},
    {Role::embd_norm_b,     kGlobal,   kRequired, {D::embd, D::none},  "token_embd_norm.bias",            "embeddings.LayerNorm.bias",                          ""},
    {Role::wq,              kPerLayer, kRequired, {D::q, D::embd},     "blk.{}.attn_q.weight",            "encoder.layer.{}.attention.self.query.weight",       ""},
    {Role::bq,              kPerLayer, kRequired, {D::q, D::none},     "blk.{}.attn_q.bias",              "encoder.layer.{}.attention.self.query.bias",         ""},
    {Role::wk,              kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_k.weight",            "encoder.layer.{}.attention.self.key.weight",         ""},
    {Role::bk,              kPerLayer, kRequired, {D::kv, D::none},    "blk.{}.attn_k.bias",              "encoder.layer.{}.attention.self.key.bias",           ""},
    {Role::wv,              kPerLayer, kRequired, {D::kv, D::embd},    "blk.{}.attn_v.weight",            "encoder.layer.{}.attention.self.value.weight",       ""},
    {Role::bv,              kPerLayer, kRequired, {D::kv, D::none},    "blk.{}.attn_v.bias",              "encoder.layer.{}.attention.self.value.bias",         ""},
    {Role::wo,              kPerLayer, kRequired, {D::embd, D::q},     "blk.{}.attn_output.weight",       "encoder.layer.{}.attention.output.dense.weight",     ""},
    {Role::bo,              kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_output.bias",         "encoder.layer.{}.attention.output.dense.bias",       ""},
    {Role::attn_out_norm_w, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_output_norm.weight",  "encoder.layer.{}.attention.output.LayerNorm.weight", ""},
    {Role::attn_out_norm_b, kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.attn_output_norm.bias",    "encoder.layer.{}.attention.output.LayerNorm.bias",   ""},
    {Role::ffn_up,          kPerLayer, kRequired, {D::ff, D::embd},    "blk.{}.ffn_up.weight",            "encoder.layer.{}.intermediate.dense.weight",         ""},
    {Role::ffn_up_b,        kPerLayer, kRequired, {D::ff, D::none},    "blk.{}.ffn_up.bias",              "encoder.layer.{}.intermediate.dense.bias",           ""},
    {Role::ffn_down,        kPerLayer, kRequired, {D::embd, D::ff},    "blk.{}.ffn_down.weight",          "encoder.layer.{}.output.dense.weight",               ""},
    {Role::ffn_down_b,      kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.ffn_down.bias",            "encoder.layer.{}.output.dense.bias",                 ""},
    {Role::ffn_out_norm_w,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.layer_output_norm.weight", "encoder.layer.{}.output.LayerNorm.weight",           ""},
    {Role::ffn_out_norm_b,  kPerLayer, kRequired, {D::embd, D::none},  "blk.{}.layer_output_norm.bias",   "encoder.layer.{}.output.LayerNorm.bias",             ""},
    // Not written by llama.cpp's converter (it drops the pooler); qkv's own GGUF files keep it.
    {Role::pooler_w,        kGlobal,   kOptional, {D::embd, D::embd},  "pooler.dense.weight",             "pooler.dense.weight",                                ""},
    {Role::pooler_b,        kGlobal,   kOptional, {D::embd, D::none},  "pooler.dense.bias",               "pooler.dense.bias",                                  ""},
};

// clang-format on

constexpr std::string_view kRoleNames[] = {"tok_embd",
                                           "pos_embd",
                                           "type_embd",
                                           "embd_norm_w",
                                           "embd_norm_b",
                                           "attn_norm_w",
                                           "attn_norm_b",
                                           "wqkv",
                                           "bqkv",
                                           "wq",
                                           "bq",
                                           "wk",
                                           "bk",
                                           "wv",
                                           "bv",
                                           "wo",
                                           "bo",
                                           "attn_out_norm_w",
                                           "attn_out_norm_b",
                                           "attn_q_norm",
                                           "attn_k_norm",
                                           "attn_post_norm",
                                           "ffn_norm_w",
                                           "ffn_norm_b",
                                           "ffn_gate",
                                           "ffn_up",
                                           "ffn_up_b",
                                           "ffn_down",
                                           "ffn_down_b",
                                           "ffn_out_norm_w",
                                           "ffn_out_norm_b",
                                           "ffn_post_norm",
                                           "out_norm_w",
                                           "out_norm_b",
                                           "lm_head",
                                           "pooler_w",
                                           "pooler_b",
                                           "rope_freqs",
                                           "rope_factors_long",
                                           "rope_factors_short",
                                           "ffn_gate_up"};
static_assert(std::size(kRoleNames) == kRoleCount);

// Indexed by Architecture.
constexpr ArchTraits kTraits[] = {
    {.name = "gpt2", .norm = NormKind::layer, .ffn = FfnKind::gelu_tanh},
    {.name = "llama", .gguf_rope = RopeStyle::interleaved, .window_all_layers = true},
    {.name = "bert", .decoder = false, .norm = NormKind::layer, .ffn = FfnKind::gelu_erf},
    {.name = "qwen2", .gguf_rope = RopeStyle::half},
    {.name = "qwen3", .gguf_rope = RopeStyle::half},
    // llama.cpp's default window for Gemma 2 files that do not state one.
    {.name = "gemma2",
     .ffn = FfnKind::geglu_tanh,
     .gguf_rope = RopeStyle::half,
     .embd_scale = true,
     .hf_norm_plus_one = true,
     .swa_pattern = 2,
     .default_window = 4096},
    // Sliding layers only when the file states a window (as llama.cpp reads Gemma 3).
    {.name = "gemma3",
     .ffn = FfnKind::geglu_tanh,
     .gguf_rope = RopeStyle::half,
     .embd_scale = true,
     .hf_norm_plus_one = true,
     .swa_pattern = 6,
     .swa_own_rope = true},
    {.name = "phi3", .gguf_rope = RopeStyle::half},
};

}  // namespace

Source source_of(const ModelFile& file) {
  switch (file.format) {
    case FileFormat::gguf:
      return Source::gguf;
    case FileFormat::llama2c:
      return Source::llama2c;
    case FileFormat::safetensors:
    case FileFormat::hf_folder:
      return Source::hf;
  }
  return Source::hf;
}

std::span<const TensorSpec> arch_tensors(Architecture arch) {
  switch (arch) {
    case Architecture::gpt2:
      return kGpt2;
    case Architecture::llama:
      return kLlama;
    case Architecture::bert:
      return kBert;
    case Architecture::qwen2:
      return kQwen2;
    case Architecture::qwen3:
      return kQwen3;
    case Architecture::gemma2:
      return kGemma2;
    case Architecture::gemma3:
      return kGemma3;
    case Architecture::phi3:
      return kPhi3;
  }
  return {};
}

const ArchTraits& arch_traits(Architecture arch) {
  return kTraits[static_cast<size_t>(arch)];
}

std::string_view role_name(Role role) {
  return kRoleNames[static_cast<int>(role)];
}

std::string tensor_name(const TensorSpec& spec, Source source, int layer) {
  std::string_view pattern = source == Source::gguf ? spec.gguf
                             : source == Source::hf ? spec.hf
                                                    : spec.llama2c;
  std::string name(pattern);
  if (const size_t at = name.find("{}"); at != std::string::npos) {
    name.replace(at, 2, std::to_string(layer));
  }
  return name;
}

const TensorInfo* find_tensor(const ModelFile& file, Source source, const std::string& name) {
  if (const TensorInfo* t = file.find_tensor(name)) return t;
  if (source != Source::hf) return nullptr;
  for (std::string_view prefix : {"transformer.", "model.", "bert."}) {
    if (name.rfind(prefix, 0) == 0) {
      if (const TensorInfo* t = file.find_tensor(name.substr(prefix.size()))) return t;
    } else if (const TensorInfo* t = file.find_tensor(std::string(prefix) + name)) {
      return t;
    }
  }
  return nullptr;
}

int64_t dim_size(Dim d, const ModelConfig& c) {
  switch (d) {
    case Dim::none:
      return 1;
    case Dim::vocab:
      return c.n_vocab;
    case Dim::ctx:
      return c.n_ctx;
    case Dim::types:
      return -1;  // any number of token types
    case Dim::embd:
      return c.n_embd;
    case Dim::head:
      return c.head_dim;
    case Dim::rope_half:
      return c.head_dim / 2;
    case Dim::q:
      return c.n_head * c.head_dim;
    case Dim::kv:
      return c.n_head_kv * c.head_dim;
    case Dim::qkv:
      return (c.n_head + 2 * c.n_head_kv) * c.head_dim;
    case Dim::ff:
      return c.n_ff;
    case Dim::ff2:
      return 2 * c.n_ff;
  }
  return 0;
}

std::vector<GgufTensorPlan> gguf_tensor_plan(Architecture arch, const ModelConfig& c) {
  const std::span<const TensorSpec> specs = arch_tensors(arch);
  auto wanted = [&](const TensorSpec& s) {
    return !s.optional || (s.role == Role::lm_head && !c.tied_embeddings) ||
           (s.role == Role::rope_freqs && c.rope_type == "llama3");
  };
  auto plan = [&](const TensorSpec& s, int layer) {
    std::vector<int64_t> shape = {dim_size(s.shape[0], c)};
    if (s.shape[1] != Dim::none) shape.push_back(dim_size(s.shape[1], c));
    return GgufTensorPlan{&s, layer, tensor_name(s, Source::gguf, layer), std::move(shape)};
  };
  std::vector<GgufTensorPlan> out;
  size_t first_block = 0;
  while (first_block < specs.size() && !specs[first_block].per_layer) ++first_block;
  for (size_t i = 0; i < first_block; ++i) {
    if (wanted(specs[i])) out.push_back(plan(specs[i], -1));
  }
  for (int layer = 0; layer < c.n_layer; ++layer) {
    for (const TensorSpec& s : specs) {
      if (s.per_layer && wanted(s)) out.push_back(plan(s, layer));
    }
  }
  for (size_t i = first_block; i < specs.size(); ++i) {
    if (!specs[i].per_layer && wanted(specs[i])) out.push_back(plan(specs[i], -1));
  }
  return out;
}

void set_gguf_hparams(Architecture arch, const ModelConfig& c, Metadata& md) {
  using T = MetaValue::Type;
  const ArchTraits& traits = arch_traits(arch);
  const std::string a = std::string(traits.name) + ".";
  auto u32 = [&](const char* key, int64_t v) {
    md.set(a + key, MetaValue::make_uint(T::u32, static_cast<uint64_t>(v)));
  };
  auto f32 = [&](const char* key, double v) { md.set(a + key, MetaValue::make_float(T::f32, v)); };
  u32("context_length", c.n_ctx);
  u32("embedding_length", c.n_embd);
  u32("block_count", c.n_layer);
  u32("feed_forward_length", c.n_ff);
  u32("attention.head_count", c.n_head);
  if (traits.gguf_rope != RopeStyle::none) {
    u32("attention.head_count_kv", c.n_head_kv);
    f32("rope.freq_base", c.rope_theta > 0 ? c.rope_theta : 10000.0);
    u32("rope.dimension_count", c.head_dim);
    if (c.n_vocab > 0) u32("vocab_size", c.n_vocab);
  }
  f32(traits.norm == NormKind::rms ? "attention.layer_norm_rms_epsilon"
                                   : "attention.layer_norm_epsilon",
      c.norm_eps);
  if (c.head_dim * c.n_head != c.n_embd) {
    u32("attention.key_length", c.head_dim);
    u32("attention.value_length", c.head_dim);
  }
  if ((traits.swa_pattern > 0 || traits.window_all_layers) && c.sliding_window > 0) {
    u32("attention.sliding_window", c.sliding_window);
    if (c.swa_pattern > 0) u32("attention.sliding_window_pattern", c.swa_pattern);
    if (c.rope_theta_swa > 0) f32("rope.freq_base_swa", c.rope_theta_swa);
  }
  if (c.rope_scale > 0) {
    md.set(a + "rope.scaling.type", MetaValue::make_string("linear"));
    f32("rope.scaling.factor", c.rope_scale);
  }
  if (c.rope_attn_factor > 0) f32("rope.scaling.attn_factor", c.rope_attn_factor);
  if (c.n_ctx_orig > 0) u32("rope.scaling.original_context_length", c.n_ctx_orig);
  if (c.attn_softcap > 0) f32("attn_logit_softcapping", c.attn_softcap);
  if (c.final_softcap > 0) f32("final_logit_softcapping", c.final_softcap);
  if (!traits.decoder) md.set(a + "attention.causal", MetaValue::make_bool(false));
}

bool is_norm_weight(Role role) {
  switch (role) {
    case Role::embd_norm_w:
    case Role::attn_norm_w:
    case Role::attn_out_norm_w:
    case Role::attn_q_norm:
    case Role::attn_k_norm:
    case Role::attn_post_norm:
    case Role::ffn_norm_w:
    case Role::ffn_out_norm_w:
    case Role::ffn_post_norm:
    case Role::out_norm_w:
      return true;
    default:
      return false;
  }
}

std::optional<Architecture> parse_architecture(std::string_view name) {
  for (size_t i = 0; i < std::size(kTraits); ++i) {
    if (name == kTraits[i].name) return static_cast<Architecture>(i);
  }
  return std::nullopt;
}

}  // namespace qkv::model
