// Parser of the chat-template interpreter: Jinja's statement and expression grammar (operator
// precedence as jinja2/parser.py has it). Throws SyntaxError (chat/lexer.h) with the line and
// column of the offending token; constructs outside the supported subset are named.
#pragma once

#include <string_view>

#include "chat/ast.h"

namespace qkv::chat {

Body parse(std::string_view source);

}  // namespace qkv::chat
