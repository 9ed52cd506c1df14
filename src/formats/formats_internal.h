// JSON helpers shared by the safetensors, config.json and tokenizer.json readers (not public).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "qkv/model_file.h"

namespace qkv::formats {

// Parses JSON, turning parse errors into qkv::Error naming the file.
nlohmann::json parse_json_text(std::string_view text, const std::string& file);
nlohmann::json read_json_file(const std::string& path);

// An HF config.json's text -> ModelConfig (read_hf_config without the file; the fuzzer's entry).
ModelConfig parse_hf_config(std::string_view text, const std::string& name);

// nlohmann's message without its "[json.exception.type_error.302] " prefix.
std::string json_reason(std::string_view what);

// Runs f(), turning any nlohmann::json exception (a value of an unexpected JSON type deep in a
// file) into qkv::Error naming the file. The readers check the fields they use; this is the net.
template <typename F>
auto with_json_errors(const std::string& file, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const nlohmann::json::exception& e) {
    core::throw_error(file, ": a value of an unexpected JSON type (", json_reason(e.what()), ")");
  }
}

void parse_safetensors_into(ModelFile& m, const std::string& path,
                            std::shared_ptr<const MappedFile> map, int file_index);

}  // namespace qkv::formats
