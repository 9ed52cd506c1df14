// qkv — chat templates: Jinja templates as models ship them (tokenizer.chat_template in a GGUF,
// chat_template in an HF tokenizer_config.json), rendered the way Hugging Face transformers'
// apply_chat_template renders them.
//
// The interpreter is qkv's own (src/chat): the subset of Jinja that chat templates use, in the
// environment transformers sets up (trim_blocks, lstrip_blocks, the loopcontrols extension, a
// sandbox without attribute writes, tojson as json.dumps with ensure_ascii=False,
// raise_exception and strftime_now). A construct outside that subset is refused when the
// template is parsed or reached, naming the construct and its line.
//
//   qkv::ChatTemplate t(source);
//   qkv::ChatTemplateInputs in;
//   in.messages = {{"system", "Be brief."}, {"user", "Hi"}};
//   in.add_generation_prompt = true;
//   std::string prompt = t.render(in);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/error.h"

namespace qkv {

struct ChatMessage {
  std::string role;
  std::string content;
};

struct ChatTemplateInputs {
  // The conversation as a JSON array of message objects ({"role", "content", ...}, as in the
  // OpenAI API; tool_calls and other fields are passed through). When empty, `messages` is used.
  std::string messages_json;
  std::vector<ChatMessage> messages;
  std::string bos_token;
  std::string eos_token;
  bool add_generation_prompt = false;
  // More template variables as a JSON object ({"enable_thinking": false, "tools": [...]}); they
  // override the variables above. `tools` and `documents` are none unless given here, as in
  // transformers.
  std::string variables_json;
  // The local date and time strftime_now() formats, as seconds since 1970-01-01 00:00 of that
  // local time; unset: the machine's clock, in local time (as Python's datetime.now()).
  std::optional<int64_t> now;
};

// A template that does not parse, uses an unsupported construct, or fails while rendering
// (including the template's own raise_exception("...")).
class ChatTemplateError : public Error {
 public:
  ChatTemplateError(const std::string& message, int line, int column, bool raised);
  // The message alone (for raise_exception: exactly the template's text).
  const std::string& message() const { return message_; }
  int line() const { return line_; }      // 1-based; 0 when unknown
  int column() const { return column_; }  // 1-based; 0 when unknown
  // True when the template itself called raise_exception.
  bool raised() const { return raised_; }

 private:
  std::string message_;
  int line_;
  int column_;
  bool raised_;
};

class ChatTemplate {
 public:
  // Parses the template; throws ChatTemplateError naming the line of a syntax error.
  explicit ChatTemplate(std::string_view source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders the conversation. Throws ChatTemplateError for errors in the template (and what it
  // raises), qkv::Error for malformed messages_json / variables_json.
  std::string render(const ChatTemplateInputs& inputs) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }  // for src/chat

 private:
  std::unique_ptr<Impl> impl_;
};

// Parses and renders in one call.
std::string render_chat_template(std::string_view source, const ChatTemplateInputs& inputs);

// ChatML, the format `qkv serve` and `qkv chat` use for a model that ships no template (llama.cpp's
// server falls back to the same): "<|im_start|>ROLE\nCONTENT<|im_end|>\n" per message, then
// "<|im_start|>assistant\n" when a reply is asked for. A reply ends at default_chat_stop().
std::string_view default_chat_template();
std::string_view default_chat_stop();  // "<|im_end|>"

}  // namespace qkv
