// qkv — converting a loaded model to GGUF in llama.cpp's conventions (tensor names, metadata keys,
// Q/K rows permuted for interleaved RoPE, the tokenizer as tokenizer.ggml.* keys), so that the
// file runs in qkv and in llama.cpp alike.
#pragma once

#include <optional>
#include <string>
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

}  // namespace qkv
