// UTF-8 and the few Unicode properties the tokenizers need (categories, NFD, lowercase via ICU).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/utf8.h"

namespace qkv::tokenizers {

// Length of the UTF-8 sequence starting with byte `c` (1 for a stray continuation byte).
inline int utf8_len(unsigned char c) {
  static constexpr int lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lens[c >> 4];
}

using core::find_invalid_utf8;  // core/utf8.h
// Throws qkv::InvalidArgument naming the byte offset when `s` is not valid UTF-8.
void require_utf8(std::string_view s, std::string_view what);

// Decodes valid UTF-8 (call require_utf8 first).
std::vector<uint32_t> to_codepoints(std::string_view s);
using core::append_utf8;

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
// get U+0100.. in byte order. Byte-level BPE vocabularies and merges are written in these
// characters (Ġ = U+0120 for a space).
inline uint32_t gpt2_byte_to_codepoint(unsigned char b) {
  auto printable = [](int c) {
    return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174;
  };
  if (printable(b)) return b;
  uint32_t n = 0;  // how many non-printable bytes come before b
  for (int c = 0; c < b; ++c) n += printable(c) ? 0 : 1;
  return 256 + n;
}

// Rust char::is_whitespace (the White_Space property), as HF tokenizers use it.
bool is_whitespace(uint32_t cp);
// Unicode general category P* (Pc, Pd, Ps, Pe, Pi, Pf, Po).
bool is_punctuation(uint32_t cp);
// Cc, Cf, Cn, Co, Cs (HF BertNormalizer's "control" = char::is_other).
bool is_other(uint32_t cp);
// Mn (non-spacing marks; removed by accent stripping after NFD).
bool is_nonspacing_mark(uint32_t cp);
// The CJK ideograph blocks BERT splits into single characters.
bool is_cjk(uint32_t cp);

// Canonical decomposition of a whole sequence (ICU).
std::vector<uint32_t> nfd(const std::vector<uint32_t>& cps);
// Full lowercase mapping of one character, without context (Rust char::to_lowercase).
void append_lower(std::vector<uint32_t>& out, uint32_t cp);

}  // namespace qkv::tokenizers
