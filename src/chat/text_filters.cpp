// Jinja's filters that rewrite text: format (printf-style), with Jinja 3.1's behaviour
// (tests/chat/filters_oracle_test.py compares them with Python Jinja2).
#include <string>
#include <unordered_map>

#include "chat/builtins.h"
#include "chat/interp.h"

namespace qkv::chat {
namespace {

// value|format(*args) is str(value) % args; value|format(**kwargs) is str(value) % kwargs.
Value format(Interp& in, const Value& v, CallArgs& a) {
  if (!a.pos.empty() && !a.kw.empty()) {
    fail("can't handle positional and keyword arguments at the same time");
  }
  Value operand;
  if (!a.kw.empty()) {
    auto d = std::make_shared<Dict>();
    for (const auto& [name, value] : a.kw) d->set(string_key(name), value);
    operand = Value::dict(std::move(d));
  } else {
    operand = Value::list(a.pos, true);
  }
  return Value::string(py_percent_format(in, to_str(v), operand));
}

}  // namespace

const std::unordered_map<std::string, FilterFn>& text_filters() {
  static const std::unordered_map<std::string, FilterFn> table = {
      {"format", format},
  };
  return table;
}

}  // namespace qkv::chat
