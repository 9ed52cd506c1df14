// JSON helpers shared by the safetensors, config.json and tokenizer.json readers (not public).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "qkv/model_file.h"

namespace qkv::formats {

// Parses JSON, turning parse errors into qkv::Error naming the file.
nlohmann::json parse_json_text(std::string_view text, const std::string& file);
nlohmann::json read_json_file(const std::string& path);

void parse_safetensors_into(ModelFile& m, const std::string& path,
                            std::shared_ptr<const MappedFile> map, int file_index);

}  // namespace qkv::formats
