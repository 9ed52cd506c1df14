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

// Appends the UTF-8 encoding of code point cp (at most U+10FFFF) to out.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace qkv::core
