// The public face of the interpreter (qkv/chat.h): parse once, check the filters and tests it
// names, render with the variables transformers' apply_chat_template passes.
#include <nlohmann/json.hpp>

#include "chat/builtins.h"
#include "chat/interp.h"
#include "chat/lexer.h"
#include "chat/parser.h"
#include "chat/render.h"
#include "core/utf8.h"
#include "qkv/chat.h"

namespace qkv {

namespace {

std::string describe(const std::string& message, int line, int column, bool raised) {
  if (raised) {
    return message + " (raised by the chat template" +
           (line > 0 ? ", line " + std::to_string(line) : std::string()) + ")";
  }
  std::string where = "chat template";
  if (line > 0) where += " line " + std::to_string(line);
  if (column > 0) where += ", column " + std::to_string(column);
  return where + ": " + message;
}

}  // namespace

ChatTemplateError::ChatTemplateError(const std::string& message, int line, int column, bool raised)
    : Error(describe(message, line, column, raised)),
      message_(message),
      line_(line),
      column_(column),
      raised_(raised) {}

namespace chat {
namespace {

// Filters and tests the interpreter does not know are refused when the template is parsed, as
// Jinja refuses them when compiling, except where Jinja defers the error to the moment the filter
// runs: in an if statement's conditions and branches and in a conditional expression ("soft"
// frames in Jinja's compiler), up to the next loop, macro or set block, which start a frame of
// their own. So a template may name a filter it only uses on a path never taken (DeepSeek V3.2's
// `args | from_json`, only for tool calls given as strings).
void check_names(const Expr& e, bool soft) {
  if (!soft && e.kind == Expr::Kind::Filter && !is_known_filter(e.name)) {
    throw SyntaxError{"unsupported filter '" + e.name + "'", e.line, e.column};
  }
  if (!soft && e.kind == Expr::Kind::Test && !is_known_test(e.name)) {
    throw SyntaxError{"unsupported test '" + e.name + "'", e.line, e.column};
  }
  soft = soft || e.kind == Expr::Kind::Cond;
  for (const Expr* x : {e.a.get(), e.b.get(), e.c.get()}) {
    if (x) check_names(*x, soft);
  }
  for (const auto& x : e.items) {
    if (x) check_names(*x, soft);
  }
  for (const auto& x : e.keys) check_names(*x, soft);
  for (const auto& x : e.args) check_names(*x.value, soft);
}

void check_names(const Body& body, bool soft) {
  for (const auto& s : body) {
    switch (s->kind) {
      case Stmt::Kind::If:
        for (const auto& x : s->conds) check_names(*x, true);
        for (const auto& b : s->bodies) check_names(b, true);
        check_names(s->else_body, true);
        break;
      case Stmt::Kind::For:
        check_names(*s->expr, soft);
        if (s->cond) check_names(*s->cond, false);
        check_names(s->body, false);
        check_names(s->else_body, false);
        break;
      case Stmt::Kind::Macro:
        for (const auto& x : s->defaults) {
          if (x) check_names(*x, false);
        }
        check_names(s->body, false);
        break;
      case Stmt::Kind::SetBlock:
        check_names(s->body, false);
        break;
      case Stmt::Kind::FilterBlock:
        check_names(*s->expr, false);
        check_names(s->body, false);
        break;
      default:
        if (s->expr) check_names(*s->expr, soft);
        check_names(s->body, soft);  // {% generation %}
        break;
    }
  }
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::real(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::real(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (const auto& [k, v] : j.items()) d->set(string_key(k), from_json(v));
      return Value::dict(d);
    }
    default:
      throw Error("chat template inputs: binary JSON values are not supported");
  }
}

nlohmann::ordered_json parse_json(const std::string& text, const char* what) {
  try {
    // ordered: Python dicts keep the order the JSON gave (and tojson prints it so)
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string(what) + " is not valid JSON: " + e.what());
  }
}

}  // namespace
}  // namespace chat

struct ChatTemplate::Impl {
  chat::Body body;
};

ChatTemplate::ChatTemplate(std::string_view source) : impl_(std::make_unique<Impl>()) {
  if (const size_t bad = core::find_invalid_utf8(source); bad != std::string_view::npos) {
    int line = 1;
    for (size_t i = 0; i < bad; ++i) line += source[i] == '\n';
    throw ChatTemplateError("invalid UTF-8 at byte " + std::to_string(bad), line, 0, false);
  }
  try {
    impl_->body = chat::parse(source);
    chat::check_names(impl_->body, /*soft=*/false);
  } catch (const chat::SyntaxError& e) {
    throw ChatTemplateError(e.message, e.line, e.column, false);
  }
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

namespace chat {
namespace {

std::string render_body(const Body& body, const ChatTemplateInputs& in, const Limits& limits) {
  Value messages;
  if (!in.messages_json.empty()) {
    const auto j = chat::parse_json(in.messages_json, "the messages");
    if (!j.is_array()) throw Error("the messages must be a JSON array of message objects");
    messages = chat::from_json(j);
  } else {
    std::vector<Value> list;
    for (const ChatMessage& m : in.messages) {
      auto d = std::make_shared<chat::Dict>();
      d->set("role", Value::string(m.role));
      d->set("content", Value::string(m.content));
      list.push_back(Value::dict(d));
    }
    messages = Value::list(std::move(list));
  }
  std::vector<std::pair<std::string, Value>> vars = {
      {"messages", messages},
      {"tools", Value::none()},
      {"documents", Value::none()},
      {"add_generation_prompt", Value::boolean(in.add_generation_prompt)},
      {"bos_token", Value::string(in.bos_token)},
      {"eos_token", Value::string(in.eos_token)},
  };
  if (!in.variables_json.empty()) {
    const auto j = chat::parse_json(in.variables_json, "the template variables");
    if (!j.is_object()) throw Error("the template variables must be a JSON object");
    const Value extra = chat::from_json(j);
    for (const auto& [key, v] : extra.dict_ref().items) {
      const std::string k = dict_key_value(key).str();
      bool replaced = false;
      for (auto& [name, old] : vars) {
        if (name == k) {
          old = v;
          replaced = true;
        }
      }
      if (!replaced) vars.emplace_back(k, v);
    }
  }
  Interp interp(limits, in.now);
  try {
    return interp.render(body, std::move(vars));
  } catch (const EvalError& e) {
    throw ChatTemplateError(e.message, interp.line(), e.raised ? 0 : interp.column(), e.raised);
  }
}

}  // namespace

std::string render_with_limits(std::string_view source, const ChatTemplateInputs& inputs,
                               const Limits& limits) {
  const ChatTemplate t(source);
  return render_body(t.impl().body, inputs, limits);
}

}  // namespace chat

std::string ChatTemplate::render(const ChatTemplateInputs& in) const {
  return chat::render_body(impl_->body, in, chat::Limits{});
}

std::string_view default_chat_template() {
  return "{%- for message in messages %}"
         "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
         "{%- endfor %}"
         "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
}

std::string_view default_chat_stop() {
  return "<|im_end|>";
}

std::string render_chat_template(std::string_view source, const ChatTemplateInputs& inputs) {
  return ChatTemplate(source).render(inputs);
}

}  // namespace qkv
