// Internals of qkv::Tokenizer shared by the model files (byte_bpe.cpp, spm.cpp, wordpiece.cpp).
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "qkv/tokenizer.h"
#include "tokenizers/pre_tokenizer.h"

namespace qkv::tokenizers {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using IdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

}  // namespace qkv::tokenizers

namespace qkv {

struct Tokenizer::Impl {
  TokenizerSpec spec;
  tokenizers::IdMap ids;
  // Control, unknown and user-defined tokens, longest first, for splitting them out of the text.
  std::vector<int32_t> specials;
  std::vector<uint8_t> strip;  // per id: kStripLeft | kStripRight (empty when no token strips)
  static constexpr uint8_t kStripLeft = 1, kStripRight = 2;

  // byte_bpe and utf8_bpe
  tokenizers::IdMap merge_rank;               // "left right" -> rank
  std::array<std::string, 256> byte_unicode;  // byte -> GPT-2 printable character (UTF-8)
  std::unordered_map<uint32_t, uint8_t> unicode_byte;
  const tokenizers::PreTokenizerInfo* pre = nullptr;
  std::unique_ptr<tokenizers::RegexSplitter> splitter;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> word_cache;

  // spm_bpe and utf8_bpe: id of <0xAB> for each byte (-1 when absent)
  std::array<int32_t, 256> byte_ids{};
  bool spm_chunks = false;  // the vocabulary allows encoding word by word (see init_spm)

  int32_t id_of(std::string_view s) const {
    auto it = ids.find(s);
    return it == ids.end() ? -1 : it->second;
  }
  TokenKind kind(int32_t id) const {
    return spec.kinds.empty() ? TokenKind::normal : spec.kinds[id];
  }

  void init_bpe();  // byte_bpe and utf8_bpe
  void init_spm();
  // Encodes one fragment of plain text (no special tokens in it).
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, bool prefix_space, std::vector<int32_t>& out) const;
  void spm_merge(std::string_view escaped, std::vector<int32_t>& out) const;
  void encode_wordpiece(std::string_view text, std::vector<int32_t>& out) const;
  // Merges one pre-tokenized piece, written in the vocabulary's alphabet (GPT-2 characters or
  // UTF-8 with U+2581 for spaces), and appends its tokens.
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void init_byte_ids();
};

}  // namespace qkv
