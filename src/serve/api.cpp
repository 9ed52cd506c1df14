// Request fields, prompts and shared response pieces (api.h).
#include "serve/api.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"

namespace qkv::serve {

namespace {

std::string type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    default:
      return "an unknown value";
  }
}

ApiError wrong_type(const std::string& name, const char* expected, const json& got) {
  return ApiError(400, core::concat("'", name, "' must be ", expected, ", not ", type_name(got)),
                  name);
}

}  // namespace

json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  json e = {{"message", message}, {"type", type}};
  e["param"] = param.empty() ? json(nullptr) : json(param);
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return json{{"error", e}};
}

json parse_body(const std::string& body) {
  // Copying, dumping and rendering a JSON value recurse once per level, so a body nested a
  // hundred thousand levels deep (a few hundred KB) would overflow a handler thread's stack.
  // The parser itself does not recurse; the nesting is checked before it runs.
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        throw ApiError(400, core::concat("the request body nests arrays and objects deeper than ",
                                         kMaxJsonDepth, " levels (at byte ", i, ")"));
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, core::concat("the request body is not valid JSON: ", e.what()));
  } catch (const json::out_of_range& e) {
    // Valid JSON with a number no double holds (1e400).
    throw ApiError(400, core::concat("the request body has a number out of range: ", e.what()));
  }
  if (!j.is_object()) {
    throw ApiError(400, "the request body must be a JSON object, not " + type_name(j));
  }
  return j;
}

double Fields::number(const char* name, double def, double lo, double hi) const {
  if (!has(name)) return def;
  const json& v = j_[name];
  if (!v.is_number()) throw wrong_type(field(name), "a number", v);
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    throw ApiError(
        400, core::concat("'", field(name), "' = ", x, " is out of range [", lo, ", ", hi, "]"),
        field(name));
  }
  return x;
}

int64_t Fields::integer(const char* name, int64_t def, int64_t lo, int64_t hi) const {
  if (!has(name)) return def;
  const json& v = j_[name];
  int64_t x = 0;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw ApiError(400, core::concat("'", field(name), "' is out of range [", lo, ", ", hi, "]"),
                     field(name));
    }
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) &&
             v.get<double>() == std::floor(v.get<double>()) && std::fabs(v.get<double>()) < 9e15) {
    x = static_cast<int64_t>(v.get<double>());
  } else {
    throw wrong_type(field(name), "an integer", v);
  }
  if (x < lo || x > hi) {
    throw ApiError(
        400, core::concat("'", field(name), "' = ", x, " is out of range [", lo, ", ", hi, "]"),
        field(name));
  }
  return x;
}

bool Fields::boolean(const char* name, bool def) const {
  if (!has(name)) return def;
  const json& v = j_[name];
  if (!v.is_boolean()) throw wrong_type(field(name), "a boolean", v);
  return v.get<bool>();
}

std::optional<std::string> Fields::string(const char* name) const {
  if (!has(name)) return std::nullopt;
  const json& v = j_[name];
  if (!v.is_string()) throw wrong_type(field(name), "a string", v);
  return v.get<std::string>();
}

ChatFormatter::ChatFormatter(const std::string& source, std::string bos, std::string eos)
    : bos_(std::move(bos)), eos_(std::move(eos)) {
  is_default_ = source.empty();
  template_.emplace(is_default_ ? default_chat_template() : std::string_view(source));
}

ChatPrompt ChatFormatter::render(const json& messages, const ChatRenderOptions& options) const {
  if (!messages.is_array()) throw wrong_type("messages", "an array", messages);
  if (messages.empty()) throw ApiError(400, "'messages' is empty; give at least one", "messages");
  json clean = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string at = core::concat("messages[", i, "]");
    if (!m.is_object()) {
      throw ApiError(400, core::concat("'", at, "' must be an object, not ", type_name(m)), at);
    }
    if (!m.contains("role") || !m["role"].is_string()) {
      throw ApiError(400, core::concat("'", at, ".role' must be a string"), at + ".role");
    }
    // OpenAI's roles. A template renders any role it is given, so an unknown one (a typo, a
    // client's own) would reach the model as text it was never trained on.
    const std::string role = m["role"].get<std::string>();
    static constexpr std::string_view kRoles[] = {"system",    "developer", "user",
                                                  "assistant", "tool",      "function"};
    if (std::find(std::begin(kRoles), std::end(kRoles), role) == std::end(kRoles)) {
      throw ApiError(400,
                     core::concat("'", at, ".role' is \"", role, "\"; expected one of system, ",
                                  "developer, user, assistant, tool, function"),
                     at + ".role");
    }
    json out = m;
    // "developer" is the newer name of "system" (OpenAI's o-series); templates know "system".
    if (role == "developer") out["role"] = "system";
    const json content = m.contains("content") ? m["content"] : json(nullptr);
    if (content.is_array()) {
      // [{"type": "text", "text": "..."}, ...]: the text parts, one per line, as llama-server
      // and vLLM join them for a template that takes a string.
      std::string text;
      for (const json& part : content) {
        // (json's value("type", "") throws on a type that is not a string: a 500.)
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
            !part.contains("text") || !part["text"].is_string()) {
          throw ApiError(400,
                         core::concat("'", at, ".content' parts must be {\"type\": \"text\", ",
                                      "\"text\": ...}; other kinds are not supported"),
                         at + ".content");
        }
        if (&part != &content.front()) text += '\n';
        text += part["text"].get<std::string>();
      }
      out["content"] = text;
    } else if (content.is_null()) {
      out["content"] = "";
    } else if (!content.is_string()) {
      throw ApiError(400,
                     core::concat("'", at, ".content' must be a string or an array of text parts, ",
                                  "not ", type_name(content)),
                     at + ".content");
    }
    clean.push_back(std::move(out));
  }
  std::string open_text;  // the content of the message left open
  if (options.continue_final_message) {
    if (options.add_generation_prompt) {
      throw ApiError(400,
                     "'continue_final_message' continues the last message, and "
                     "'add_generation_prompt' starts a new one: set one of them only",
                     "continue_final_message");
    }
    if (clean.back()["role"] != "assistant") {
      throw ApiError(400,
                     core::concat("'continue_final_message' continues the assistant's last ",
                                  "message, but the last message is the ",
                                  clean.back()["role"].get<std::string>(), "'s"),
                     "continue_final_message");
    }
    open_text = clean.back()["content"].get<std::string>();
    // Nothing to continue: the reply starts as the generation prompt starts it.
    if (open_text.empty()) clean.erase(clean.size() - 1);
  }
  ChatTemplateInputs in;
  in.messages_json = clean.dump(-1, ' ', false, json::error_handler_t::replace);
  in.bos_token = bos_;
  in.eos_token = eos_;
  in.add_generation_prompt =
      options.add_generation_prompt || (options.continue_final_message && open_text.empty());
  ChatPrompt p;
  try {
    p.text = template_->render(in);
  } catch (const ChatTemplateError& e) {
    // The template's own raise_exception speaks to the client ("roles must alternate").
    throw ApiError(400, core::concat("the chat template refused the messages: ", e.message()),
                   "messages");
  }
  if (!open_text.empty()) {
    // Cut after the last message's content, where the template closes the turn; a template
    // that trims the content is cut after the trimmed text.
    size_t at = p.text.rfind(open_text);
    size_t len = open_text.size();
    if (at == std::string::npos) {
      const size_t b = open_text.find_first_not_of(" \t\r\n");
      const size_t e = open_text.find_last_not_of(" \t\r\n");
      const std::string trimmed = b == std::string::npos ? "" : open_text.substr(b, e - b + 1);
      at = trimmed.empty() ? std::string::npos : p.text.rfind(trimmed);
      len = trimmed.size();
    }
    if (at == std::string::npos) {
      throw ApiError(400,
                     "the chat template does not write the last message's content as it is "
                     "given, so the message cannot be continued ('continue_final_message')",
                     "continue_final_message");
    }
    p.text.resize(at + len);
  }
  if (is_default_) p.extra_stop.emplace_back(default_chat_stop());
  return p;
}

void read_sampling(const Fields& f, JobParams& p) {
  SamplingParams& s = p.sampling;
  s.temperature = static_cast<float>(f.number("temperature", 1.0, 0, 2));
  s.top_p = static_cast<float>(f.number("top_p", 1.0, 0, 1));
  if (s.top_p == 0) s.top_p = std::numeric_limits<float>::min();  // OpenAI allows 0: greedy
  s.top_k = static_cast<int>(f.integer("top_k", 0, 0, 1 << 30));
  s.min_p = static_cast<float>(f.number("min_p", 0, 0, 1));
  s.repeat_penalty = static_cast<float>(f.number("repeat_penalty", 1, 1e-3, 100));
  s.repeat_last_n = 64;
  // Without a seed each request draws its own, so that repeated requests give different samples
  // (as OpenAI's API and llama-server do); with one, the same request gives the same tokens.
  if (f.has("seed")) {
    s.seed = static_cast<uint64_t>(f.integer("seed", 0, INT64_MIN, INT64_MAX));
  } else {
    static std::atomic<uint64_t> counter{std::random_device{}()};
    s.seed =
        counter.fetch_add(0x9e3779b97f4a7c15ull) ^ static_cast<uint64_t>(std::random_device{}());
  }
  p.stop_at_eos = !f.boolean("ignore_eos", false);
  p.presence_penalty = static_cast<float>(f.number("presence_penalty", 0, -2, 2));
  p.frequency_penalty = static_cast<float>(f.number("frequency_penalty", 0, -2, 2));
  if (f.has("n") && f.integer("n", 1, 1, 128) != 1) {
    throw ApiError(400, "'n' must be 1: one choice per request is supported", "n");
  }
  // max_completion_tokens is the newer name: it wins when both are given (as in vLLM and
  // llama-server), and errors about the limit name the field the client used.
  p.max_tokens = -1;  // the caller fills in the context's room when none is given
  p.max_tokens_field = "max_tokens";
  // 0 only scores the prompt (completions with echo; the caller refuses it otherwise).
  if (f.has("max_tokens")) p.max_tokens = f.integer("max_tokens", 0, 0, INT32_MAX);
  if (f.has("max_completion_tokens")) {
    p.max_tokens = f.integer("max_completion_tokens", 0, 0, INT32_MAX);
    p.max_tokens_field = "max_completion_tokens";
  }
  if (f.has("user")) f.string("user");  // an end-user id for abuse monitoring: checked, unused
  if (f.has("stop")) {
    const json& st = f.get("stop");
    if (st.is_string()) {
      p.stop.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      if (st.size() > 16) throw ApiError(400, "'stop' has more than 16 strings", "stop");
      for (const json& x : st) {
        if (!x.is_string()) throw wrong_type("stop", "a string or an array of strings", st);
        p.stop.push_back(x.get<std::string>());
      }
    } else {
      throw wrong_type("stop", "a string or an array of strings", st);
    }
    for (const std::string& x : p.stop) {
      if (x.empty()) throw ApiError(400, "'stop' has an empty string", "stop");
    }
  }
}

void check_unsupported_chat_fields(const Fields& f) {
  if (f.has("response_format")) {
    const json& rf = f.get("response_format");
    if (!rf.is_object()) throw wrong_type("response_format", "an object", rf);
    const auto type = Fields(rf, "response_format.").string("type");
    if (!type) throw ApiError(400, "'response_format.type' is required", "response_format.type");
    if (*type != "text") {
      throw ApiError(400,
                     core::concat("'response_format.type' \"", *type,
                                  "\" is not supported: the server has no constrained decoding; ",
                                  "only \"text\" (ask for JSON in the prompt instead)"),
                     "response_format.type");
    }
  }
  std::string tool_choice = "auto";
  if (f.has("tool_choice")) {
    const json& tc = f.get("tool_choice");
    if (!tc.is_string() || (tc != "none" && tc != "auto")) {
      throw ApiError(400,
                     core::concat("'tool_choice' ", tc.dump(), " is not supported: the server ",
                                  "does not call tools; only \"none\" or \"auto\""),
                     "tool_choice");
    }
    tool_choice = tc.get<std::string>();
  }
  if (f.has("tools")) {
    const json& tools = f.get("tools");
    if (!tools.is_array()) throw wrong_type("tools", "an array", tools);
    if (!tools.empty() && tool_choice != "none") {
      throw ApiError(400,
                     "'tools' is not supported: the server does not parse tool calls out of the "
                     "reply (send no tools, or tool_choice \"none\")",
                     "tools");
    }
  }
  // functions and function_call: the deprecated names of tools and tool_choice.
  std::string function_call = "auto";
  if (f.has("function_call")) {
    const json& fc = f.get("function_call");
    if (!fc.is_string() || (fc != "none" && fc != "auto")) {
      throw ApiError(400,
                     core::concat("'function_call' ", fc.dump(), " is not supported: the server ",
                                  "does not call functions; only \"none\" or \"auto\""),
                     "function_call");
    }
    function_call = fc.get<std::string>();
  }
  if (f.has("functions")) {
    const json& functions = f.get("functions");
    if (!functions.is_array()) throw wrong_type("functions", "an array", functions);
    if (!functions.empty() && function_call != "none") {
      throw ApiError(400,
                     "'functions' is not supported: the server does not parse function calls out "
                     "of the reply (send no functions, or function_call \"none\")",
                     "functions");
    }
  }
  if (f.has("parallel_tool_calls")) f.boolean("parallel_tool_calls", true);  // checked, unused
}

void read_logit_bias(const Fields& f, int64_t n_vocab, JobParams& p) {
  if (!f.has("logit_bias")) return;
  const json& lb = f.get("logit_bias");
  if (!lb.is_object()) {
    throw wrong_type("logit_bias", "an object of token ids to numbers", lb);
  }
  int64_t n_banned = 0;
  for (const auto& [key, value] : lb.items()) {
    // A key is a token id in decimal, as OpenAI's tokenizers print them.
    int64_t id = -1;
    if (!key.empty() && key.size() <= 10 &&
        std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      id = std::stoll(key);
    }
    if (id < 0 || id >= n_vocab) {
      throw ApiError(400,
                     core::concat("'logit_bias' has the key \"", key,
                                  "\"; keys are token ids in [0, ", n_vocab, ") (POST /tokenize)"),
                     "logit_bias");
    }
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < -100 ||
        value.get<double>() > 100) {
      throw ApiError(400,
                     core::concat("'logit_bias' gives token ", id, " the value ", value.dump(),
                                  "; expected a number in [-100, 100]"),
                     "logit_bias");
    }
    const double bias = value.get<double>();
    n_banned += bias == -100;
    p.logit_bias.emplace_back(
        static_cast<int32_t>(id),
        bias == -100 ? -std::numeric_limits<float>::infinity() : static_cast<float>(bias));
  }
  if (n_banned >= n_vocab) {
    throw ApiError(400, "'logit_bias' bans every token of the vocabulary", "logit_bias");
  }
}

void read_attention(const Fields& f, const ModelConfig& c, JobParams& p) {
  if (!f.has("attention")) return;
  const json& a = f.get("attention");
  if (!a.is_object()) throw wrong_type("attention", "an object", a);
  const Fields af(a, "attention.");
  p.attention.top_k = static_cast<int>(af.integer("top_k", 5, 1, 64));
  auto list = [&](const char* name, int64_t n, std::vector<int>& out) {
    if (!af.has(name)) return;
    const json& v = a[name];
    const std::string field = core::concat("attention.", name);
    if (!v.is_array()) {
      throw ApiError(400, core::concat("'", field, "' must be an array of integers"), field);
    }
    for (const json& x : v) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= n) {
        throw ApiError(
            400,
            core::concat("'", field, "' has ", x.dump(), "; expected integers in [0, ", n, ")"),
            field);
      }
      out.push_back(x.get<int>());
    }
  };
  list("layers", c.n_layer, p.attention.layers);
  list("heads", c.n_head, p.attention.heads);
}

json token_logprob(const Tokenizer& tok, int32_t id, float logprob) {
  const std::string bytes = tok.token_bytes(id);
  json b = json::array();
  for (unsigned char ch : bytes) b.push_back(static_cast<int>(ch));
  return json{{"token", bytes}, {"logprob", logprob}, {"bytes", b}};
}

json attention_json(const std::vector<AttentionTop>& att) {
  json out = json::array();
  for (const AttentionTop& t : att) {
    out.push_back(
        {{"layer", t.layer}, {"head", t.head}, {"positions", t.positions}, {"weights", t.weights}});
  }
  return out;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const char* finish_reason(Finish f) {
  switch (f) {
    case Finish::stop:
      return "stop";
    case Finish::length:
      return "length";
    case Finish::cancelled:
      return "cancelled";
    case Finish::error:
      return "error";
  }
  return "stop";
}

}  // namespace qkv::serve
