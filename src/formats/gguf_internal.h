// Helpers shared by the readers in src/formats (not public).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "formats/mapped_file.h"
#include "qkv/model_file.h"

namespace qkv::formats {

std::optional<TensorType> tensor_type_from_ggml(uint32_t id);
uint32_t ggml_type_id(TensorType t);
std::string_view ggml_type_name(uint32_t id);

ModelFile parse_gguf(const std::string& path, std::shared_ptr<const MappedFile> map);
ModelConfig config_from_gguf(const ModelFile& m);

// Bytes shown safely in an error message: printable ASCII kept, others as \xHH; cut at 40.
std::string printable(std::string_view s);
bool valid_utf8(std::string_view s);

}  // namespace qkv::formats
