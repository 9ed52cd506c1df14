// Lexer of the chat-template interpreter: Jinja's delimiters and whitespace rules as Hugging Face
// configures them (trim_blocks: the first newline after a block or comment tag is dropped;
// lstrip_blocks: spaces and tabs from the start of a line to a block or comment tag are dropped;
// "-" strips all whitespace on its side, "+" turns lstrip/trim off), newlines normalised to "\n"
// and one trailing newline of the source dropped (keep_trailing_newline=False).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qkv::chat {

enum class Tok {
  Data,        // template text
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,  // text: the decoded value
  Int,
  Float,
  Op,  // + - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { }
  End,
};

struct Token {
  Tok type;
  std::string text;
  int line = 0;
  int column = 0;
  int64_t int_value = 0;
  // The literal 9223372036854775808 (2^63): int_value holds -2^63, which only `-` before it
  // may use (Python's -9223372036854775808 is the smallest int64).
  bool int_is_2_63 = false;
  double float_value = 0;
};

// A syntax error with its position (the parser's errors use the same type).
struct SyntaxError {
  std::string message;
  int line = 0;
  int column = 0;
};

std::vector<Token> lex(std::string_view source);

}  // namespace qkv::chat
