// qkv — transformer models: GPT-2, the LLaMA family (with Qwen 2/3, Gemma 2/3, Phi-3) and BERT,
// loaded from a GGUF file, a Hugging Face folder (config.json + safetensors) or a llama2.c
// checkpoint.
//
//   qkv::Model model = qkv::Model::load("stories260K.bin", {.tokenizer_path = "tok512.bin"});
//   qkv::Session session(model);                     // qkv/session.h
//   auto result = session.generate("Once upon a time", {.max_new_tokens = 64});
//
// A Model is immutable after loading and cheap to copy (shared); any number of Sessions may use
// one model at the same time. Weights stay in the memory-mapped file where their dtype allows.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

namespace qkv {

enum class Architecture : uint8_t { gpt2, llama, bert, qwen2, qwen3, gemma2, gemma3, phi3 };
std::string_view architecture_name(Architecture a);

// The matrix products' CPU backend on this machine: the GEMM library and the SIMD target of the
// matrix-vector kernels (e.g. "openblas + avx2").
std::string_view matmul_backend_name();

// How RoPE pairs the dimensions of a head: (2i, 2i+1) as in llama2.c and GGUF files made by the
// llama.cpp converter (which permutes Q and K to get there), or (i, i + d/2) ("rotate half") as
// in Hugging Face checkpoints. Chosen from the file's origin.
enum class RopeStyle : uint8_t { none, interleaved, half };

// Element type of a KV cache (SessionOptions::kv_type in qkv/session.h). q8_0: ggml's Q8_0
// blocks (32 values of a head in 34 bytes, 8.5 bits a value), each K/V row quantized when it is
// written; needs head_dim a multiple of 32.
enum class KvType : uint8_t { f32, f16, q8_0 };

// How products with quantized (block-format) weights treat the activations. exact: fp32
// activations, weights decoded to fp32 (results as exact arithmetic on the dequantized weights up
// to fp32 summation order). int8: each row of activations rounded to 8-bit blocks per product and
// multiplied in integers, as llama.cpp does: faster decode, with an error of about 1-2% of the
// logits' standard deviation (docs/PERFORMANCE.md, "Integer dot products"). Types without
// integer kernels (Q2_K, Q3_K; f32/f16/bf16) stay exact.
enum class DotProducts : uint8_t { exact, int8 };

struct LoadOptions {
  std::string tokenizer_path;  // a tokenizer file; empty: the one in or beside the model
  bool require_tokenizer = false;
  // Called with the fraction of the weights prepared, for progress lines on long loads.
  std::function<void(double)> progress;
  DotProducts dot = DotProducts::exact;
};

class Model {
 public:
  // Throws qkv::Error naming the file and the problem (unknown architecture, missing or
  // misshapen tensor, unsupported dtype).
  static Model load(const std::string& path, const LoadOptions& options = {});
  // From an already opened file (the caller's ModelFile is moved in).
  static Model from_file(ModelFile file, const LoadOptions& options = {});

  Architecture architecture() const;
  const ModelConfig& config() const;
  const ModelFile& file() const;
  RopeStyle rope_style() const;
  bool is_decoder() const;  // causal LM (GPT-2, LLaMA) vs encoder (BERT)
  int64_t n_params() const;

  bool has_tokenizer() const;
  const Tokenizer& tokenizer() const;  // throws qkv::Error when the model has none

  // The token ids that end a generated reply, sorted (empty without a tokenizer): EOS, the
  // file's end-of-turn and end-of-message ids (tokenizer.ggml.eot_token_id / eom_token_id), and
  // the end-of-turn tokens of the chat formats found in the vocabulary (<|im_end|>, <|eot_id|>,
  // <end_of_turn>, <|end|>, ...), as llama.cpp's end-of-generation set; BOS too for a llama2.c
  // model, whose stories end when BOS is sampled. Chat models end a turn with such a token,
  // which is often not their EOS.
  std::vector<int32_t> end_of_generation_ids() const;

  // One line: architecture, sizes, dtypes, source.
  std::string describe() const;

  // The weight matrices a decode step multiplies with (every layer's attention and MLP
  // projections, and the LM head of a decoder): their bytes in memory, each read once per token,
  // and the multiply-adds they cost per token. For benchmarks and memory planning.
  struct MatrixTotals {
    int64_t bytes = 0;
    int64_t macs = 0;
  };
  MatrixTotals matrix_totals() const;

  struct Impl;  // the loaded weights (src/model/model_impl.h)

 private:
  friend struct ModelAccess;  // the library's own layers reach Impl through it
  std::shared_ptr<const Impl> impl_;
};

}  // namespace qkv
