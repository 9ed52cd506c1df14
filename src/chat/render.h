// Rendering with explicit limits (the public ChatTemplate::render uses the defaults; the fuzzer
// and the tests use small ones).
#pragma once

#include <string>
#include <string_view>

#include "chat/interp.h"
#include "qkv/chat.h"

namespace qkv::chat {

// Parses, checks and renders `source`; throws ChatTemplateError / qkv::Error as qkv/chat.h says.
std::string render_with_limits(std::string_view source, const ChatTemplateInputs& inputs,
                               const Limits& limits);

}  // namespace qkv::chat
