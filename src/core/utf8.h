// UTF-8 validation and encoding shared by the file readers and the tokenizers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qkv::core {

// Byte offset of the first invalid UTF-8 sequence in s (overlong forms, surrogates and code
// points above U+10FFFF are invalid), or std::string_view::npos when s is valid.
size_t find_invalid_utf8(std::string_view s);

inline bool valid_utf8(std::string_view s) {
  return find_invalid_utf8(s) == std::string_view::npos;
}

// One step of decoding s (non-empty) from its first byte, by Unicode's "maximal subpart" rule
// (the U+FFFD substitution of Python's errors="replace" and of WHATWG): `length` bytes form a
// well-formed character (`valid`), or the longest prefix of one that the bytes allow, replaced
// by one U+FFFD (at least one byte). `truncated`: that prefix runs to the end of s, so more
// bytes could still complete it (a stream waits; a whole text replaces it).
struct Utf8Step {
  size_t length = 1;
  bool valid = false;
  bool truncated = false;
};
Utf8Step utf8_step(std::string_view s);

// Appends the UTF-8 encoding of code point cp (at most U+10FFFF) to out.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace qkv::core
