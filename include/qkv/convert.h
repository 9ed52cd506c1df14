// qkv — converting a loaded model to GGUF in llama.cpp's conventions (tensor names, metadata keys,
// Q/K rows permuted for interleaved RoPE, the tokenizer as tokenizer.ggml.* keys), so that the
// file runs in qkv and in llama.cpp alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/model.h"

namespace qkv {

struct ConvertOptions {
  // Storage type of the 2-D weight matrices; none: keep each tensor's own type. Norm weights
  // and biases are always written as f32 (as llama.cpp does).
  std::optional<TensorType> dtype;
  std::string name;  // general.name; empty: the source file's name
};

// Writes `model` to `path` (streaming, one tensor in memory at a time). Returns notes on tensors
// written in another type than asked (q8_0 needs rows of whole 32-value blocks; others stay
// f16, as in llama.cpp's quantizer).
std::vector<std::string> convert_to_gguf(const Model& model, const std::string& path,
                                         const ConvertOptions& options);

// ---- For writers of new GGUF files (qkv make-model): the lists the loader binds ----------------

// "gpt2", "llama", "bert" and their relatives (HF model_type / GGUF general.architecture).
std::optional<Architecture> architecture_named(std::string_view name);

// One tensor of an architecture's GGUF file.
struct GgufTensorEntry {
  std::string name;            // llama.cpp's name ("blk.0.attn_q.weight")
  std::vector<int64_t> shape;  // row-major [rows, cols] or [n]
  bool norm_weight = false;    // a norm's 1-D scale (random models initialise it around 1)
  bool rope_freqs = false;     // Llama 3's RoPE frequency factors (random models use Llama 3's)
};
// The tensors of an `arch` model of config `c` in llama.cpp's file order (the globals before the
// blocks), from the architecture's one tensor list.
std::vector<GgufTensorEntry> gguf_tensor_list(Architecture arch, const ModelConfig& c);

// Writes the `{arch}.*` hyper-parameter keys of `c` as llama.cpp's converter names and types them
// (general.* and tokenizer.* are the caller's).
void set_gguf_arch_keys(Architecture arch, const ModelConfig& c, Metadata& md);

}  // namespace qkv
