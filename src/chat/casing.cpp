// Python's str case operations (lower, upper, title, capitalize, swapcase, islower, isupper) over
// all of Unicode, as CPython does them: full case mappings (ß.upper() = "SS", ǆ.title() = "ǅ",
// İ.lower() = "i̇"), with capital sigma lowered to final ς at the end of a word. ICU supplies the
// per-character mappings and properties; the word logic is Python's, not ICU's (ICU's title
// casing finds words with a break iterator, Python's starts one after every uncased character).
#include <unicode/ucasemap.h>
#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>

#include <memory>
#include <vector>

#include "chat/builtins.h"

namespace qkv::chat {
namespace {

// A string's characters; bytes that are not valid UTF-8 (which a template cannot make, but a
// caller could pass) are kept as -1 - byte and copied through unchanged.
std::vector<int32_t> decode_chars(std::string_view s) {
  std::vector<int32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto n = static_cast<int32_t>(s.size());
  for (int32_t i = 0; i < n;) {
    const int32_t start = i;
    UChar32 c = 0;
    U8_NEXT(p, i, n, c);
    if (c < 0) {
      for (int32_t k = start; k < i; ++k) out.push_back(-1 - static_cast<int32_t>(p[k]));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void append_char(std::string& out, int32_t c) {
  if (c < 0) {
    out += static_cast<char>(-1 - c);
    return;
  }
  char buf[4];
  int32_t len = 0;
  U8_APPEND_UNSAFE(buf, len, c);
  out.append(buf, static_cast<size_t>(len));
}

void append_utf16(std::string& out, const UChar* s, int32_t n) {
  for (int32_t i = 0; i < n;) {
    UChar32 c = 0;
    U16_NEXT(s, i, n, c);
    append_char(out, c);
  }
}

enum class Mapping { Lower, Upper, Title };

// The full mapping of one character with no context (root locale: no Turkish or Lithuanian
// rules, which Python does not apply either).
void append_mapped(std::string& out, int32_t c, Mapping m) {
  if (c < 0x80) {  // ASCII (and undecodable bytes): the common case, without ICU
    if (c >= 0 && m == Mapping::Lower && c >= 'A' && c <= 'Z') c += 32;
    if (c >= 0 && m != Mapping::Lower && c >= 'a' && c <= 'z') c -= 32;
    append_char(out, c);
    return;
  }
  UChar src[2];
  int32_t len = 0;
  U16_APPEND_UNSAFE(src, len, c);
  UChar dst[16];  // full mappings are at most 3 characters
  UErrorCode err = U_ZERO_ERROR;
  int32_t n = 0;
  if (m == Mapping::Lower) {
    n = u_strToLower(dst, 16, src, len, "", &err);
  } else if (m == Mapping::Upper) {
    n = u_strToUpper(dst, 16, src, len, "", &err);
  } else {
    // The whole (one-character) string is one word: no break iterator, no adjustment to the
    // next cased letter, only the character's own titlecase mapping.
    thread_local std::unique_ptr<UCaseMap, decltype(&ucasemap_close)> map(
        [] {
          UErrorCode e = U_ZERO_ERROR;
          return ucasemap_open("", U_TITLECASE_WHOLE_STRING | U_TITLECASE_NO_BREAK_ADJUSTMENT, &e);
        }(),
        &ucasemap_close);
    if (map) n = ucasemap_toTitle(map.get(), dst, 16, src, len, &err);
  }
  if (U_FAILURE(err) || n <= 0) {
    append_char(out, c);
    return;
  }
  append_utf16(out, dst, n);
}

bool is_cased(int32_t c) {
  return c >= 0 && u_hasBinaryProperty(c, UCHAR_CASED);
}
bool is_case_ignorable(int32_t c) {
  return c >= 0 && u_hasBinaryProperty(c, UCHAR_CASE_IGNORABLE);
}
// Python's str.isupper() / islower() per character: the Uppercase / Lowercase properties, and
// titlecase letters (Lt) count against both.
bool is_upper(int32_t c) {
  return c >= 0 && u_hasBinaryProperty(c, UCHAR_UPPERCASE);
}
bool is_lower(int32_t c) {
  return c >= 0 && u_hasBinaryProperty(c, UCHAR_LOWERCASE);
}
bool is_title(int32_t c) {
  return c >= 0 && u_charType(c) == U_TITLECASE_LETTER;
}

constexpr int32_t kCapitalSigma = 0x3A3;

// Lowercase of cps[i] in its string: capital sigma becomes final sigma (U+03C2) when a cased
// character precedes it and none follows it (skipping case-ignorable ones both ways), the
// Final_Sigma condition of Unicode's SpecialCasing that Python applies.
void append_lower_at(std::string& out, const std::vector<int32_t>& cps, size_t i) {
  if (cps[i] != kCapitalSigma) {
    append_mapped(out, cps[i], Mapping::Lower);
    return;
  }
  size_t j = i;
  while (j > 0 && is_case_ignorable(cps[j - 1])) --j;
  bool final = j > 0 && is_cased(cps[j - 1]);
  if (final) {
    size_t k = i + 1;
    while (k < cps.size() && is_case_ignorable(cps[k])) ++k;
    final = k == cps.size() || !is_cased(cps[k]);
  }
  append_char(out, final ? 0x3C2 : 0x3C3);
}

}  // namespace

std::string py_lower(std::string_view s) {
  const std::vector<int32_t> cps = decode_chars(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < cps.size(); ++i) append_lower_at(out, cps, i);
  return out;
}

std::string py_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (int32_t c : decode_chars(s)) append_mapped(out, c, Mapping::Upper);
  return out;
}

// str.title(): a character after a cased one is lowered, any other is titlecased ("1a" -> "1A",
// "they're" -> "They'Re").
std::string py_title(std::string_view s) {
  const std::vector<int32_t> cps = decode_chars(s);
  std::string out;
  out.reserve(s.size());
  bool prev_cased = false;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (prev_cased) {
      append_lower_at(out, cps, i);
    } else {
      append_mapped(out, cps[i], Mapping::Title);
    }
    prev_cased = is_cased(cps[i]);
  }
  return out;
}

// str.capitalize() (Python 3.8 and later): the first character titlecased, the rest lowered.
std::string py_capitalize(std::string_view s) {
  const std::vector<int32_t> cps = decode_chars(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      append_mapped(out, cps[i], Mapping::Title);
    } else {
      append_lower_at(out, cps, i);
    }
  }
  return out;
}

std::string py_swapcase(std::string_view s) {
  const std::vector<int32_t> cps = decode_chars(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    if (is_upper(cps[i])) {
      append_lower_at(out, cps, i);
    } else if (is_lower(cps[i])) {
      append_mapped(out, cps[i], Mapping::Upper);
    } else {
      append_char(out, cps[i]);
    }
  }
  return out;
}

// str.isalnum(): a letter (L*) or a character with a numeric value (Nd, and digits and numbers
// such as ½ or ² that Python's isnumeric() accepts).
bool py_is_word_char(uint32_t cp) {
  if (cp == '_') return true;
  const auto c = static_cast<UChar32>(cp);
  return (U_GET_GC_MASK(c) & U_GC_L_MASK) != 0 ||
         u_getIntPropertyValue(c, UCHAR_NUMERIC_TYPE) != U_NT_NONE;
}

bool py_isprintable(uint32_t cp) {
  if (cp == ' ') return true;
  const auto mask = U_GET_GC_MASK(static_cast<UChar32>(cp));
  return (mask & (U_GC_C_MASK | U_GC_Z_MASK)) == 0;
}

bool py_isalpha(uint32_t cp) {
  return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_L_MASK) != 0;
}

bool py_isdigit(uint32_t cp) {
  const int type = u_getIntPropertyValue(static_cast<UChar32>(cp), UCHAR_NUMERIC_TYPE);
  return type == U_NT_DECIMAL || type == U_NT_DIGIT;
}

bool py_isnumeric(uint32_t cp) {
  return u_getIntPropertyValue(static_cast<UChar32>(cp), UCHAR_NUMERIC_TYPE) != U_NT_NONE;
}

bool py_is_decimal(uint32_t cp) {
  return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_ND_MASK) != 0;
}

bool py_islower(std::string_view s) {
  bool cased = false;
  for (int32_t c : decode_chars(s)) {
    if (is_upper(c) || is_title(c)) return false;
    cased = cased || is_lower(c);
  }
  return cased;
}

bool py_isupper(std::string_view s) {
  bool cased = false;
  for (int32_t c : decode_chars(s)) {
    if (is_lower(c) || is_title(c)) return false;
    cased = cased || is_upper(c);
  }
  return cased;
}

}  // namespace qkv::chat
