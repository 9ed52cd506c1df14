// Input gradients of a decoder: a forward pass that keeps its activations, and the backward pass
// that takes a score of the last row's logits back to the token embeddings and to every layer's
// attention probabilities. No weight gradients (training has its own, src/train/): each linear
// layer's backward is one product with its weight (kernels::Linear::backward_input, through
// dequantized panels for quantized weights), the attention's is qkv::attention_backward.
//
//   B sequences of n tokens each, all at positions 0..n-1 (a fresh context), run side by side:
//   rows of all of them go through each matrix product together, attention runs per sequence.
//   Integrated gradients runs its interpolation steps this way.
//
// Every architecture of the decoder forward (model/forward.cpp) is followed step for step: GPT-2
// (learned positions, LayerNorm, GELU), LLaMA, Qwen 2 (QKV bias), Qwen 3 (QK-norm), Gemma 2/3
// (scaled embeddings, soft-caps, post-norms, GeGLU, sliding layers), Phi-3 (fused QKV and
// gate-up, bound as row slices). Encoders (BERT) are refused.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "qkv/attention.h"
#include "qkv/model.h"

namespace qkv::model {

// The score whose gradient is taken, of the last row's logits z (after any final soft-cap):
//   contrast < 0:  log_softmax(z)[target]      (the target's log-probability)
//   contrast >= 0: z[target] - z[contrast]     (why the target rather than the contrast)
struct ScoreSpec {
  int32_t target = -1;
  int32_t contrast = -1;
};

struct GradientOptions {
  int n_threads = 0;  // 0: all hardware threads
  // The attention kernel, forward and backward; Backend::reference (double precision) for tests.
  Backend attention_backend = Backend::automatic;
  // Also the attention-probability gradients (GradientResult::head_sums and target_rows).
  bool attention = false;
  // The context size that picks Phi-3's long RoPE factors, as a KV cache of this many positions
  // would (model/forward.cpp); 0: the number of tokens.
  int64_t n_ctx = 0;
  // Tests: called with each layer's attention output [B * n, n_head * head_dim] (writable) and v
  // [B * n, n_head_kv * head_dim] right after the attention, before the output projection.
  // Adding eps · v_j to a row's head is moving that row's probability of key j by eps.
  std::function<void(int layer, float* out, const float* v)> after_attention;
};

// Where the time went (seconds), in wall time and in the process's CPU time.
struct GradientTimes {
  double forward = 0;   // the forward pass with its saved activations
  double backward = 0;  // everything after it
  double forward_cpu = 0, backward_cpu = 0;
};

struct GradientResult {
  std::vector<double> score;   // [B] the score of each sequence
  std::vector<float> d_embed;  // [B, n, n_embd] d score / d embeddings (the rows passed in)
  // With GradientOptions::attention, of the last sequence only (b = B - 1):
  //   head_sums   [n_layer, n_head]     sum over all rows i and keys j of P_ij · dscore/dP_ij,
  //                                     which is sum_i <dscore/dout_i, out_i> of the head
  //   target_rows [n_layer, n_head, n]  P_(n-1)j · dscore/dP_(n-1)j for the last row
  //   target_grad [n_layer, n_head, n]  dscore/dP_(n-1)j itself (zero past the causal mask)
  std::vector<double> head_sums;
  std::vector<float> target_rows, target_grad;
  GradientTimes times;
};

// Runs B = embeddings.size() / (n * n_embd) sequences of n = tokens.size() tokens, each from its
// own embedding rows ([B, n, n_embd]: token embedding rows as the embedding table holds them,
// before the learned positions are added and before Gemma's sqrt(n_embd) scale), and returns each
// sequence's score and its gradient with respect to those rows. `tokens` only sets n (and is
// checked against the vocabulary). Throws InvalidArgument for encoders, bad sizes, a target or
// contrast outside the vocabulary, or n past the model's context; qkv::Error for non-finite
// activations.
GradientResult embedding_gradients(const Model& model, std::span<const int32_t> tokens,
                                   std::span<const float> embeddings, const ScoreSpec& score,
                                   const GradientOptions& options = {});

// The token embedding rows of `tokens` ([n, n_embd], widened to fp32), as the forward reads them.
std::vector<float> token_embeddings(const Model& model, std::span<const int32_t> tokens);

// Scores only (the forward pass, no activations kept): [B] for embeddings [B, n, n_embd]. The
// finite-difference tests and integrated gradients' completeness use it.
std::vector<double> embedding_scores(const Model& model, std::span<const int32_t> tokens,
                                     std::span<const float> embeddings, const ScoreSpec& score,
                                     const GradientOptions& options = {});

// The logits of the last row of each sequence ([B, n_vocab]) from embeddings as above: the
// forward pass of this file, for the test that holds it to decoder_forward.
std::vector<float> embedding_logits(const Model& model, std::span<const int32_t> tokens,
                                    std::span<const float> embeddings,
                                    const GradientOptions& options = {});

}  // namespace qkv::model
