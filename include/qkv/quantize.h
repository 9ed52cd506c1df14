// Quantizing a GGUF's weights to a block format, as llama.cpp's llama-quantize --pure does
// without an importance matrix (ggml's reference quantizers: the tensor bytes are identical).
//
//   const qkv::ModelFile m = qkv::open_model("model-f16.gguf");
//   qkv::quantize_gguf(m, "Q8_0", "model-q8_0.gguf");
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/model_file.h"

namespace qkv {

// The block formats quantize_gguf writes, by their GGUF names: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
std::vector<std::string_view> quantize_type_names();

// What is wrong with `type` as quantize_gguf's type ("expected Q4_0, ..., found "Q4_K" (its
// quantizer is not written yet)"), or "" when it is one of quantize_type_names(). Front ends put
// the name of their own option before it.
std::string quantize_type_problem(std::string_view type);

struct QuantizeResult {
  uint64_t in_bytes = 0;   // tensor bytes read
  uint64_t out_bytes = 0;  // tensor bytes written
};

// Writes the GGUF `m` again to `out_path` with every 2-D tensor whose name ends in "weight" in
// the block format `type` (one of quantize_type_names()). Vectors (norms, biases) keep their
// type, and so does a matrix whose rows are not whole blocks of the format (`on_note` gets a line
// naming it). The metadata is copied, with general.file_type and general.quantization_version set
// as llama.cpp sets them. Throws InvalidArgument naming the problem when `type` is not one of
// quantize_type_names() or `m` is not a GGUF.
QuantizeResult quantize_gguf(const ModelFile& m, std::string_view type, const std::string& out_path,
                             const std::function<void(const std::string&)>& on_note = {});

}  // namespace qkv
