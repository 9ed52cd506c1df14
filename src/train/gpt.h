// A GPT-2 model for training on the CPU: fp32 parameters in one buffer (in llama.cpp's GGUF
// tensor names and shapes, so a checkpoint is a plain GPT-2 GGUF), a forward pass that keeps the
// activations the backward pass needs, and the backward pass itself.
//
// Dimension letters: B batch, T sequence (≤ n_ctx), C n_embd, F n_ff = 4C, V n_vocab,
// H n_head, D head_dim = C / H, L n_layer.
//
// Per layer (pre-LN, as GPT-2):
//   h   = x + proj(attention(split_qkv(qkv(ln1(x)))))      causal, scale 1/sqrt(D)
//   out = h + down(gelu_tanh(up(ln2(h))))
// then logits = ln_f(x_L) · wteᵀ (tied head) and the mean cross-entropy over targets ≥ 0.
#pragma once

#include "qkv/model_file.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qkv::learn {

struct GptConfig {
  int64_t n_vocab = 0;
  int64_t n_ctx = 0;
  int64_t n_embd = 0;
  int64_t n_head = 0;
  int64_t n_layer = 0;

  int64_t n_ff() const { return 4 * n_embd; }
  int64_t head_dim() const { return n_head > 0 ? n_embd / n_head : 0; }
  // As the loader sees the saved model (architecture gpt2, tied head): for the GGUF writers.
  ModelConfig model_config() const;
};

// Throws InvalidArgument naming the field when a size is out of range or C % H != 0.
void validate(const GptConfig& c);

// Layer-norm epsilon of GPT-2 (also written to checkpoints).
inline constexpr float kLayerNormEps = 1e-5f;

// One tensor inside Gpt's parameter buffer.
struct ParamTensor {
  std::string name;            // llama.cpp's GGUF name, e.g. "blk.0.attn_qkv.weight"
  std::vector<int64_t> shape;  // row-major, e.g. {3C, C}
  int64_t offset = 0;          // in floats, into params() / grads()
  int64_t size = 0;            // elements
  bool decay = false;          // AdamW weight decay applies (matrices and embeddings)
};

class Gpt {
 public:
  explicit Gpt(const GptConfig& config);

  const GptConfig& config() const { return config_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor& tensor(const std::string& name) const;  // throws naming the tensor
  int64_t n_params() const { return static_cast<int64_t>(params_.size()); }
  std::vector<float>& params() { return params_; }
  const std::vector<float>& params() const { return params_; }
  std::vector<float>& grads() { return grads_; }

  // GPT-2's initialisation, deterministic in `seed`: weights N(0, 0.02²), the two residual
  // projections N(0, (0.02 / sqrt(2L))²), biases 0, layer-norm weights 1.
  void init_weights(uint64_t seed);

  // tokens, targets: [B, T] row-major; a target < 0 is ignored (not counted in the mean).
  // Returns the mean cross-entropy (nats). Keeps what backward() needs; T ≤ n_ctx.
  // With targets = null only the logits are computed (logits(), [B, T, V]); returns 0.
  double forward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T,
                 int n_threads);
  // Adds d(mean loss)/d(parameter) of the last forward() to grads().
  void backward(int n_threads);
  void zero_grad();
  const float* logits() const;

  struct Activations;

 private:
  GptConfig config_;
  std::vector<ParamTensor> tensors_;
  std::vector<float> params_;
  std::vector<float> grads_;
  std::vector<int32_t> tokens_;  // of the last forward(), for the embedding gradient
  int64_t B_ = 0, T_ = 0;
  bool logits_are_gradient_ = false;  // the last forward() had targets
  struct ActivationsDeleter {
    void operator()(Activations* a) const;
  };
  std::unique_ptr<Activations, ActivationsDeleter> acts_;
};

}  // namespace qkv::learn
