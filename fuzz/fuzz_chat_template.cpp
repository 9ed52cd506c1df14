// libFuzzer target: the chat-template interpreter (lexer, parser, evaluator) on arbitrary
// template text, rendered for a small conversation with tight limits, so that a template that
// loops or grows without end fails fast instead of timing out.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "chat/render.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qkv::ChatTemplateInputs in;
  in.messages_json = R"([{"role": "system", "content": "S"}, {"role": "user", "content": " Hi é "},
                         {"role": "assistant", "content": "<think>r</think>A", "tool_calls": [
                           {"function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]}])";
  in.variables_json = R"({"tools": [{"type": "function", "function": {"name": "f"}}]})";
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.add_generation_prompt = true;
  in.now = 0;
  qkv::chat::Limits limits;
  limits.max_steps = 20000;
  limits.max_string = 1 << 20;
  limits.max_call_depth = 50;
  try {
    (void)qkv::chat::render_with_limits(std::string_view(reinterpret_cast<const char*>(data), size),
                                        in, limits);
  } catch (const qkv::Error&) {
  }
  return 0;
}
