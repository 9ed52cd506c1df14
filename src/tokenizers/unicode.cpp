#include "tokenizers/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "core/error.h"

namespace qkv::tokenizers {

void require_utf8(std::string_view s, std::string_view what) {
  const size_t bad = find_invalid_utf8(s);
  if (bad != std::string_view::npos) {
    const auto c = static_cast<unsigned char>(s[bad]);
    core::throw_invalid(what, ": expected UTF-8 text, found an invalid sequence at byte ", bad,
                        " (0x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15], ")");
  }
}

std::vector<uint32_t> to_codepoints(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = utf8_len(c);
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k < n && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    }
    out.push_back(cp);
    i += n;
  }
  return out;
}

bool is_whitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0d);
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE);
}

bool is_punctuation(uint32_t cp) {
  if (cp < 0x80) {  // the ASCII characters of categories P*
    static constexpr std::string_view ascii_p = "!\"#%&'()*,-./:;?@[\\]_{}";
    return cp != 0 && ascii_p.find(static_cast<char>(cp)) != std::string_view::npos;
  }
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_CONNECTOR_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
      return true;
    default:
      return false;
  }
}

bool is_other(uint32_t cp) {
  if (cp < 0x80) return cp < 0x20 || cp == 0x7f;  // ASCII: only Cc
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_UNASSIGNED:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE:
      return true;
    default:
      return false;
  }
}

bool is_nonspacing_mark(uint32_t cp) {
  if (cp < 0x300) return false;  // the first Mn is U+0300
  return u_charType(static_cast<UChar32>(cp)) == U_NON_SPACING_MARK;
}

bool is_cjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

std::vector<uint32_t> nfd(const std::vector<uint32_t>& cps) {
  bool ascii = true;
  for (uint32_t c : cps) ascii = ascii && c < 0xC0;  // below U+00C0 nothing decomposes
  if (ascii) return cps;
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFDInstance(&err);
  std::u16string src;
  for (uint32_t c : cps) {
    if (c < 0x10000) {
      src += static_cast<char16_t>(c);
    } else {
      src += static_cast<char16_t>(0xD800 + ((c - 0x10000) >> 10));
      src += static_cast<char16_t>(0xDC00 + ((c - 0x10000) & 0x3ff));
    }
  }
  std::u16string dst(src.size() * 4 + 16, u'\0');
  const int32_t n = unorm2_normalize(
      norm, reinterpret_cast<const UChar*>(src.data()), static_cast<int32_t>(src.size()),
      reinterpret_cast<UChar*>(dst.data()), static_cast<int32_t>(dst.size()), &err);
  if (U_FAILURE(err)) core::throw_error("NFD normalisation failed: ", u_errorName(err));
  std::vector<uint32_t> out;
  for (int32_t i = 0; i < n; ++i) {
    const char16_t u = dst[i];
    if (u >= 0xD800 && u < 0xDC00 && i + 1 < n) {
      out.push_back(0x10000 + ((u - 0xD800) << 10) + (dst[i + 1] - 0xDC00));
      ++i;
    } else {
      out.push_back(u);
    }
  }
  return out;
}

void append_lower(std::vector<uint32_t>& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  UChar src[2];
  int32_t len = 0;
  U16_APPEND_UNSAFE(src, len, static_cast<UChar32>(cp));
  UChar dst[8];
  UErrorCode err = U_ZERO_ERROR;
  const int32_t n = u_strToLower(dst, 8, src, len, "", &err);
  if (U_FAILURE(err)) {
    out.push_back(cp);
    return;
  }
  for (int32_t i = 0; i < n;) {
    UChar32 c;
    U16_NEXT(dst, i, n, c);
    out.push_back(static_cast<uint32_t>(c));
  }
}

}  // namespace qkv::tokenizers
