// Header-only (apps/qkv/CMakeLists.txt builds only main, command and cmd_*.cpp).
// Glue between the formats and tokenizers layers for the CLI: a model argument (GGUF, HF folder,
// safetensors, llama2.c .bin) and an optional tokenizer file -> ModelFile and Tokenizer.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "qkv/model.h"
#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

namespace qkv::app {

// The tokenizer of a model is found by qkv::tokenizer_spec_for, a file that is only a tokenizer
// is read by qkv::read_tokenizer_file (both qkv/model_file.h).

inline std::string_view model_kind_name(TokenizerSpec::Model m) {
  switch (m) {
    case TokenizerSpec::Model::byte_bpe:
      return "byte-level BPE (GPT-2)";
    case TokenizerSpec::Model::spm_bpe:
      return "SentencePiece BPE";
    case TokenizerSpec::Model::wordpiece:
      return "WordPiece";
    case TokenizerSpec::Model::utf8_bpe:
      return "UTF-8 BPE (Gemma 4)";
  }
  return "?";
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
