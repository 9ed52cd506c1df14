// Quantizing a GGUF's weights to block formats, as llama.cpp's llama-quantize does without an
// importance matrix: its presets (Q4_K_M, ...) with its per-tensor mixing rules, or --pure (every
// weight matrix in one type). The legacy types (Q4_0 ... Q8_0) use ggml's reference quantizers
// (the tensor bytes are identical to llama-quantize's); the K and IQ4 types use our own
// least-squares quantizers (per-tensor RMSE held against llama-quantize's, docs/QUANTIZATION.md).
//
//   const qkv::ModelFile m = qkv::open_model("model-f16.gguf");
//   qkv::quantize_gguf(m, "Q4_K_M", "model-q4_k_m.gguf");
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/model_file.h"

namespace qkv {

// The presets quantize_gguf takes, as llama-quantize spells them: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS. Q3_K, Q4_K and Q5_K are accepted as the
// aliases of the _M presets they are in llama-quantize (with `pure`, every matrix in that type).
std::vector<std::string_view> quantize_type_names();

// What is wrong with `type` as quantize_gguf's type ("expected Q4_0, ..., found "Q3_K_S""), or
// "" when it is one of quantize_type_names() or an alias. Front ends put the name of their own
// option before it.
std::string quantize_type_problem(std::string_view type);

struct QuantizeOptions {
  // Every weight matrix in the preset's base type (Q4_K_M -> Q4_K), as llama-quantize --pure;
  // rows that are not whole blocks still fall back (Q4_K -> Q5_0, ..., then F16).
  bool pure = false;
  int n_threads = 0;  // 0: all hardware threads
  // Quantize tensors that are already quantized (dequantized, then quantized again), as
  // llama-quantize --allow-requantize. Without it such a tensor is an error (InvalidArgument
  // naming it and its type): its new values would carry both roundings, and the F32, F16 or BF16
  // original gives a better file. A tensor whose type stays the same is copied either way.
  bool allow_requantize = false;
  // Gets a line for each tensor whose type falls back because its rows are not whole blocks.
  std::function<void(const std::string&)> on_note;
};

struct QuantizedTensor {
  std::string name;
  TensorType type;
};

struct QuantizeResult {
  uint64_t in_bytes = 0;                 // tensor bytes read
  uint64_t out_bytes = 0;                // tensor bytes written
  std::vector<QuantizedTensor> tensors;  // every tensor's type in the output, in file order
};

// The type llama-quantize gives each tensor of `m` under preset `type` (the mixing rules: output
// and tied token embeddings in Q6_K, attn_v / ffn_down promoted by layer, fallbacks where a row
// is not whole blocks; docs/QUANTIZATION.md), in file order. Throws as quantize_gguf.
std::vector<QuantizedTensor> quantize_plan(const ModelFile& m, std::string_view type, bool pure);

// Writes the GGUF `m` again to `out_path` with its weight matrices quantized per
// quantize_plan(). Vectors (norms, biases) and the matrices llama-quantize leaves alone keep their
// type. The metadata is copied, with general.file_type and general.quantization_version set as
// llama.cpp sets them. Throws InvalidArgument naming the problem, before anything is written,
// when `type` is not one of quantize_type_names(), `m` is not a GGUF, or a quantized tensor
// would be quantized again without `allow_requantize`.
QuantizeResult quantize_gguf(const ModelFile& m, std::string_view type, const std::string& out_path,
                             const QuantizeOptions& options = {});

}  // namespace qkv
