// The OpenAI-style request side of the server: reading and checking request fields, building
// prompts (chat template or ChatML), and the JSON pieces responses share (logprobs, attention).
// Every problem a request can have becomes an ApiError naming the field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qkv/chat.h"
#include "qkv/tokenizer.h"
#include "serve/scheduler.h"

namespace qkv::serve {

using json = nlohmann::json;

// A client error: HTTP status, OpenAI error type, message and the field it concerns.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {},
           std::string type = "invalid_request_error", std::string code = {})
      : std::runtime_error(message),
        status(status),
        param(std::move(param)),
        type(std::move(type)),
        code(std::move(code)) {}
  int status;
  std::string param, type, code;
};

json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code);

// Parses a request body: must be a JSON object nested at most kMaxJsonDepth levels.
inline constexpr int kMaxJsonDepth = 64;
json parse_body(const std::string& body);

// Typed, range-checked access to an object's optional fields. Errors name a field as
// `prefix` + its name ("stream_options.include_usage").
class Fields {
 public:
  explicit Fields(const json& j, std::string prefix = {}) : j_(j), prefix_(std::move(prefix)) {}
  bool has(const char* name) const { return j_.contains(name) && !j_[name].is_null(); }
  double number(const char* name, double def, double lo, double hi) const;
  int64_t integer(const char* name, int64_t def, int64_t lo, int64_t hi) const;
  bool boolean(const char* name, bool def) const;
  std::optional<std::string> string(const char* name) const;
  const json& get(const char* name) const { return j_[name]; }
  std::string field(const char* name) const { return prefix_ + name; }

 private:
  const json& j_;
  std::string prefix_;
};

// The prompt a chat makes: messages (validated) through the template, as transformers'
// apply_chat_template renders them: with add_generation_prompt (the header of the reply to
// come) by default; with continue_final_message, the last message (the assistant's) is left
// open for the reply to continue: the rendering is cut right after its content, as
// transformers cuts it (vLLM's and llama-server's field of the same name).
struct ChatRenderOptions {
  bool add_generation_prompt = true;
  bool continue_final_message = false;
};
struct ChatPrompt {
  std::string text;
  std::vector<std::string> extra_stop;  // ChatML's <|im_end|> when the default template is used
};
class ChatFormatter {
 public:
  // An empty source: ChatML. Throws qkv::Error when the model's template does not parse.
  ChatFormatter(const std::string& source, std::string bos, std::string eos);
  ChatPrompt render(const json& messages, const ChatRenderOptions& options = {}) const;
  bool is_default() const { return is_default_; }

 private:
  std::optional<ChatTemplate> template_;
  std::string bos_, eos_;
  bool is_default_ = false;
};

// Sampling fields shared by chat and completions: temperature, top_p, top_k, min_p, seed,
// presence/frequency penalties, repeat_penalty, stop, max_tokens (max_completion_tokens), n.
// n_ctx bounds max_tokens together with the prompt (checked by the caller once it is tokenized).
void read_sampling(const Fields& f, JobParams& p);
// Chat fields the server cannot honour are a 400 naming them rather than silently ignored:
// response_format other than {"type": "text"} (no constrained decoding), and tools unless
// tool_choice is "none" (tool calls are not parsed out of the reply); likewise their deprecated
// names functions and function_call.
void check_unsupported_chat_fields(const Fields& f);
// logit_bias: {"token id": bias in [-100, 100]}; -100 bans the token, as OpenAI documents.
void read_logit_bias(const Fields& f, int64_t n_vocab, JobParams& p);
// The attention extension: {"top_k": K, "layers": [...], "heads": [...]}.
void read_attention(const Fields& f, const ModelConfig& c, JobParams& p);

// JSON of what a token stands for: {"token", "logprob", "bytes"}.
json token_logprob(const Tokenizer& tok, int32_t id, float logprob);
json attention_json(const std::vector<AttentionTop>& att);

// Serialises with invalid UTF-8 replaced (token pieces may be partial characters).
std::string dump(const json& j);

const char* finish_reason(Finish f);

}  // namespace qkv::serve
