// Header-only (apps/qkv/CMakeLists.txt builds only main, command and cmd_*.cpp).
// Glue between the formats and tokenizers layers for the CLI: a model argument (GGUF, HF folder,
// safetensors, llama2.c .bin) and an optional tokenizer file -> ModelFile and Tokenizer.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

namespace qkv::app {

// find_tokenizer_spec: the tokenizer for a model: `tokenizer_path` when given, else the one
// inside or beside it (GGUF metadata, the HF folder's tokenizer.json, a llama2.c tok*.bin in the
// same folder); throws qkv::Error saying what to pass when none is found.
// tokenizer_spec_from_file: a file that is only a tokenizer (tokenizer.json, vocab.txt,
// llama2.c tokenizer.bin, vocab-only GGUF).

inline std::string_view model_kind_name(TokenizerSpec::Model m) {
  switch (m) {
    case TokenizerSpec::Model::byte_bpe:
      return "byte-level BPE (GPT-2)";
    case TokenizerSpec::Model::spm_bpe:
      return "SentencePiece BPE";
    case TokenizerSpec::Model::wordpiece:
      return "WordPiece";
  }
  return "?";
}

inline std::optional<std::string> sibling_llama2c_tokenizer(const std::string& model_path) {
  std::vector<std::string> found;
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(model_path).parent_path().empty()
                                        ? std::filesystem::path(".")
                                        : std::filesystem::path(model_path).parent_path();
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.path() == std::filesystem::path(model_path)) continue;
    if (e.path().extension() == ".bin" && (name.rfind("tok", 0) == 0)) {
      found.push_back(e.path().string());
    }
  }
  if (found.size() == 1) return found[0];
  return std::nullopt;
}

inline TokenizerSpec tokenizer_spec_from_file(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".gguf") return tokenizer_spec_from_gguf(read_gguf(path));
  if (ext == ".json") return read_tokenizer_json(path);
  if (ext == ".txt") return read_wordpiece_vocab(path);
  return read_llama2c_tokenizer(path);
}

inline TokenizerSpec find_tokenizer_spec(const ModelFile& model,
                                         const std::string& tokenizer_path) {
  if (!tokenizer_path.empty()) {
    return tokenizer_spec_for(model, tokenizer_path);
  }
  if (model.format == FileFormat::llama2c) {
    if (auto tok = sibling_llama2c_tokenizer(model.path)) {
      return read_llama2c_tokenizer(*tok, model.config.n_vocab);
    }
  }
  return tokenizer_spec_for(model);
}

// Control characters shown escaped (\n, \t, \xHH), so a token prints on one line.
inline std::string escape_piece(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += "0123456789abcdef"[c >> 4];
      out += "0123456789abcdef"[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace qkv::app
