#include "chat/lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/utf8.h"

namespace qkv::chat {
namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Python's str.rstrip() for the text before a "{%-" tag (ASCII whitespace; the rarer Unicode
// spaces are left alone).
std::string_view rstrip_ws(std::string_view s) {
  size_t e = s.size();
  while (e > 0 && (is_ws(s[e - 1]) || (s[e - 1] >= 0x1c && s[e - 1] <= 0x1f))) --e;
  return s.substr(0, e);
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Newlines normalised to "\n"; one trailing newline dropped (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    const size_t n = src_.size();
    while (pos < n) {
      size_t idx = pos;
      while (true) {
        idx = src_.find('{', idx);
        if (idx == std::string::npos || idx + 1 >= n) {
          idx = std::string::npos;
          break;
        }
        const char k = src_[idx + 1];
        if (k == '{' || k == '%' || k == '#') break;
        ++idx;
      }
      if (idx == std::string::npos) {
        push(Tok::Data, src_.substr(pos), pos);
        break;
      }
      std::string_view text = std::string_view(src_).substr(pos, idx - pos);
      const char kind = src_[idx + 1];
      const char sign =
          idx + 2 < n && (src_[idx + 2] == '-' || src_[idx + 2] == '+') ? src_[idx + 2] : '\0';
      if (sign == '-') {
        text = rstrip_ws(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: only whitespace between the line start and a block/comment tag.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool blank = true;
          for (size_t i = l_pos; i < text.size(); ++i) blank = blank && is_ws(text[i]);
          if (blank) text = text.substr(0, l_pos);
        }
      }
      if (!text.empty()) push(Tok::Data, std::string(text), pos);
      size_t p = idx + 2 + (sign ? 1 : 0);
      if (kind == '%') {
        if (const size_t after = raw_block(p, idx); after != 0) {
          line_starting = src_[after - 1] == '\n';
          pos = after;
          continue;
        }
      }
      if (kind == '#') {
        p = comment_end(p, idx);
      } else {
        push(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, kind == '{' ? "{{" : "{%", idx);
        p = tag(p, kind == '{');
      }
      line_starting = p > 0 && src_[p - 1] == '\n';
      pos = p;
    }
    push(Tok::End, "", n);
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(const std::string& msg, size_t pos) const {
    const auto [line, col] = where(pos);
    throw SyntaxError{msg, line, col};
  }

  std::pair<int, int> where(size_t pos) const {
    size_t lo = 0;
    size_t hi = line_starts_.size();
    while (hi - lo > 1) {
      const size_t mid = (lo + hi) / 2;
      if (line_starts_[mid] <= pos) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    return {static_cast<int>(lo + 1), static_cast<int>(pos - line_starts_[lo] + 1)};
  }

  void push(Tok t, std::string text, size_t pos) {
    const auto [line, col] = where(pos);
    tokens_.push_back(Token{t, std::move(text), line, col, 0, 0});
  }

  bool at(size_t p, const char* s) const { return src_.compare(p, std::strlen(s), s) == 0; }

  size_t skip_ws(size_t p) const {
    while (p < src_.size() && is_ws(src_[p])) ++p;
    return p;
  }

  // {% raw %}...{% endraw %} at p (after "{%" and its sign): the text between goes out as it is,
  // as Jinja's lexer passes it (the newline after "raw %}" is kept; "-%}" strips the whitespace
  // after it; the text before "{% endraw" is stripped by "-" or lstrip_blocks; the newline after
  // "endraw %}" is dropped). Returns the position after the end tag, or 0 when this is no raw tag.
  size_t raw_block(size_t p, size_t start) {
    size_t q = skip_ws(p);
    if (!at(q, "raw")) return 0;
    q = skip_ws(q + 3);
    size_t body = 0;
    if (at(q, "-%}")) {
      body = skip_ws(q + 3);
    } else if (at(q, "%}")) {
      body = q + 2;
    } else {
      return 0;
    }
    for (size_t j = src_.find("{%", body); j != std::string::npos; j = src_.find("{%", j + 1)) {
      size_t k = j + 2;
      const char sign = k < src_.size() && (src_[k] == '-' || src_[k] == '+') ? src_[k] : '\0';
      if (sign) ++k;
      k = skip_ws(k);
      if (!at(k, "endraw")) continue;
      k = skip_ws(k + 6);
      size_t after = 0;
      if (at(k, "+%}")) {
        after = k + 3;
      } else if (at(k, "-%}")) {
        after = skip_ws(k + 3);
      } else if (at(k, "%}")) {
        after = k + 2 + (k + 2 < src_.size() && src_[k + 2] == '\n');
      } else {
        continue;
      }
      std::string_view text = std::string_view(src_).substr(body, j - body);
      if (sign == '-') {
        text = rstrip_ws(text);
      } else if (sign != '+') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        const bool line_starting = body > 0 && src_[body - 1] == '\n';
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool blank = true;
          for (size_t i = l_pos; i < text.size(); ++i) blank = blank && is_ws(text[i]);
          if (blank) text = text.substr(0, l_pos);
        }
      }
      if (!text.empty()) push(Tok::Data, std::string(text), body);
      return after;
    }
    error("Missing end of raw directive", start);
  }

  // Past the end of a comment: "+#}", "-#}" and the whitespace after it, or "#}" and one newline.
  size_t comment_end(size_t p, size_t start) const {
    for (; p < src_.size(); ++p) {
      if (at(p, "+#}")) return p + 3;
      if (at(p, "-#}")) return skip_ws(p + 3);
      if (at(p, "#}")) return p + 2 + (p + 2 < src_.size() && src_[p + 2] == '\n');
    }
    error("missing end of comment tag (#})", start);
  }

  // Lexes the inside of {{ ... }} or {% ... %}; returns the position after the end tag.
  size_t tag(size_t p, bool variable) {
    std::vector<char> balance;
    while (true) {
      p = skip_ws(p);
      if (p >= src_.size()) {
        error(variable ? "missing end of print tag (}})" : "missing end of block tag (%})",
              tokens_.back().line > 0 ? p - 1 : p);
      }
      if (balance.empty()) {
        if (variable) {
          if (at(p, "-}}")) {
            push(Tok::VarEnd, "}}", p);
            return skip_ws(p + 3);
          }
          if (at(p, "}}")) {
            push(Tok::VarEnd, "}}", p);
            return p + 2;
          }
        } else {
          if (at(p, "+%}")) {
            push(Tok::BlockEnd, "%}", p);
            return p + 3;
          }
          if (at(p, "-%}")) {
            push(Tok::BlockEnd, "%}", p);
            return skip_ws(p + 3);
          }
          if (at(p, "%}")) {
            push(Tok::BlockEnd, "%}", p);
            return p + 2 + (p + 2 < src_.size() && src_[p + 2] == '\n');
          }
        }
      }
      const char c = src_[p];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        p = number(p);
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) {
          ++e;
        }
        push(Tok::Name, src_.substr(p, e - p), p);
        p = e;
      } else if (c == '\'' || c == '"') {
        p = string(p);
      } else {
        static const char* const two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two) {
          if (at(p, t)) op = t;
        }
        if (op.empty() && std::strchr("+-/*%~[](){}<>=.:|,;", c) && c != '\0')
          op = std::string(1, c);
        if (op.empty()) error(std::string("unexpected character '") + c + "'", p);
        if (op == "(" || op == "[" || op == "{") {
          balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (balance.empty()) error("unexpected '" + op + "'", p);
          if (balance.back() != op[0]) {
            error("unexpected '" + op + "', expected '" + std::string(1, balance.back()) + "'", p);
          }
          balance.pop_back();
        }
        push(Tok::Op, op, p);
        p += op.size();
      }
    }
  }

  size_t digits(size_t p) const {
    // \d+(_\d+)*
    while (true) {
      while (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) ++p;
      if (p + 1 < src_.size() && src_[p] == '_' &&
          std::isdigit(static_cast<unsigned char>(src_[p + 1]))) {
        ++p;
        continue;
      }
      return p;
    }
  }

  size_t number(size_t p) {
    const size_t start = p;
    size_t e = digits(p);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      e = digits(e + 1);
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        e = digits(q);
        is_float = true;
      }
    }
    // Jinja's integer literals also take the prefixes 0x, 0o and 0b (either case), with single
    // underscores between digits.
    int base = 10;
    const auto base_digit = [](char d, int b) {
      const int v = std::isdigit(static_cast<unsigned char>(d)) ? d - '0'
                    : std::isxdigit(static_cast<unsigned char>(d))
                        ? std::tolower(static_cast<unsigned char>(d)) - 'a' + 10
                        : 99;
      return v < b;
    };
    if (!is_float && e == start + 1 && src_[start] == '0' && e + 1 < src_.size() &&
        std::strchr("xXoObB", src_[e])) {
      const int b = src_[e] == 'x' || src_[e] == 'X'   ? 16
                    : src_[e] == 'o' || src_[e] == 'O' ? 8
                                                       : 2;
      size_t q = e + 1;
      if (q < src_.size() && src_[q] == '_') ++q;
      if (q < src_.size() && base_digit(src_[q], b)) {  // else "0" is the literal ("0or 1")
        base = b;
        while (q < src_.size() &&
               (base_digit(src_[q], b) ||
                (src_[q] == '_' && q + 1 < src_.size() && base_digit(src_[q + 1], b)))) {
          ++q;
        }
        e = q;
      }
    }
    std::string text;
    for (size_t i = start; i < e; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    push(is_float ? Tok::Float : Tok::Int, text, start);
    if (is_float) {
      tokens_.back().float_value = std::strtod(text.c_str(), nullptr);
    } else {
      errno = 0;
      const char* digits_begin = text.c_str() + (base == 10 ? 0 : 2);
      const unsigned long long v = std::strtoull(digits_begin, nullptr, base);
      constexpr unsigned long long kTwo63 = 1ull << 63;
      if (errno == ERANGE || v > kTwo63) {
        error("integer literal " + text + " is out of range (beyond 64 bits)", start);
      }
      tokens_.back().int_value = v == kTwo63 ? INT64_MIN : static_cast<int64_t>(v);
      tokens_.back().int_is_2_63 = v == kTwo63;
    }
    return e;
  }

  // A quoted literal decoded as Python's unicode-escape codec does.
  size_t string(size_t p) {
    const char q = src_[p];
    const size_t start = p;
    std::string out;
    ++p;
    while (true) {
      if (p >= src_.size()) error("unterminated string literal", start);
      const char c = src_[p];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) error("unterminated string literal", start);
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t len = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (size_t i = 0; i < len; ++i) {
            if (p + i >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[p + i]))) {
              error(std::string("truncated \\") + e + " escape in string literal", p - 2);
            }
            const char h = src_[p + i];
            cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                     ? h - '0'
                                                     : std::tolower(static_cast<unsigned char>(h)) -
                                                           'a' + 10);
          }
          if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) {
            error("escape in string literal is not a valid code point", p - 2);
          }
          core::append_utf8(out, cp);
          p += len;
          break;
        }
        case 'N':
          error("\\N{...} escapes are not supported", p - 2);
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i) {
              cp = cp * 8 + static_cast<uint32_t>(src_[p++] - '0');
            }
            core::append_utf8(out, cp);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    push(Tok::String, std::move(out), start);
    return p + 1;
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(std::string_view source) {
  return Lexer(source).run();
}

}  // namespace qkv::chat
