// Values of the chat-template interpreter, with Python's semantics where Jinja inherits them
// (str(), repr(), ==, truthiness, json.dumps), because templates are written against Jinja2 on
// CPython and their output must match it byte for byte.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qkv::chat {

class Value;
class Interp;

// A failure while evaluating, before the interpreter attaches the template line.
struct EvalError {
  std::string message;
  bool raised = false;  // raise_exception() in the template
};

[[noreturn]] void fail(std::string message);

// The bytes that strings and list elements created while a render runs hold, so that a template
// cannot hold more than Limits::max_memory at once (copying a Value shares its string and list;
// what the values hold is charged when made and given back when the last copy goes, which may
// be after the render).
struct MemoryAccount {
  std::atomic<int64_t> bytes{0};
};

// While alive, strings and lists made on this thread are charged to `account`, and the text that
// str(), repr() and to_json() make of a value is refused beyond `max_text` bytes (a list that
// holds one big string a million times is small, its text is not).
class ChargeTo {
 public:
  ChargeTo(std::shared_ptr<MemoryAccount> account, size_t max_text);
  ~ChargeTo();
  ChargeTo(const ChargeTo&) = delete;
  ChargeTo& operator=(const ChargeTo&) = delete;

 private:
  std::shared_ptr<MemoryAccount> previous_;
  size_t previous_max_text_;
};

struct List {
  std::vector<Value> items;
  bool tuple = false;  // printed as (a, b) rather than [a, b]
  // A named tuple's field names (groupby's (grouper, list)): item i is also attribute fields[i].
  std::vector<std::string> fields;
};

struct Callable;

// Python dicts keep insertion order; keys are strings (what JSON and the templates use).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  std::shared_ptr<Callable> call;  // set for a recursive loop's `loop`, which is also callable
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(std::string key, Value v);
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* kwarg(std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Value(Interp&, CallArgs&)> fn;
};

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

  Value() = default;  // undefined
  static Value undefined(std::string message);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value real(double f);
  static Value string(std::string s);
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict(std::shared_ptr<Dict> d);
  static Value dict();
  static Value ns(std::shared_ptr<Dict> d);
  static Value callable(std::string name, std::function<Value(Interp&, CallArgs&)> fn);

  Kind kind() const { return kind_; }
  bool is(Kind k) const { return kind_ == k; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_dict() const { return kind_ == Kind::Dict; }
  // Python ints include bools.
  bool is_int_like() const { return kind_ == Kind::Int || kind_ == Kind::Bool; }
  bool is_number() const { return is_int_like() || kind_ == Kind::Float; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::Bool ? (b_ ? 1 : 0) : i_; }
  double as_float() const { return kind_ == Kind::Float ? f_ : static_cast<double>(as_int()); }
  // The string, or an undefined's message.
  const std::string& str() const { return s_ ? *s_ : empty_string(); }
  List& list() const { return *list_; }
  Dict& dict_ref() const { return *dict_; }
  const std::shared_ptr<Dict>& dict_ptr() const { return dict_; }
  const Callable& fn() const { return *fn_; }

  // Python truthiness.
  bool truthy() const;
  // Throws the undefined's message when this is undefined (an operation that Jinja's Undefined
  // refuses).
  void require_defined() const;

 private:
  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  static const std::string& empty_string();
  std::shared_ptr<const std::string> s_;  // shared by copies: a string is never changed
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Callable> fn_;
};

// "dict object", "str object", "None" ... as Jinja names an object in undefined messages.
std::string type_repr(const Value& v);
// Python's type name: "str", "int", "dict" ...
std::string type_name(const Value& v);

// str(v) as Python prints it ({{ v }}); undefined prints as "".
std::string to_str(const Value& v);
// repr(v).
std::string repr(const Value& v);
// Python's repr of a float: shortest round-trip digits, "1.0", "1e+16", "inf".
std::string float_repr(double f);

// json.dumps(v, ensure_ascii=False, indent=indent, separators=..., sort_keys=sort_keys), the
// tojson transformers installs.
struct JsonStyle {
  bool indented = false;
  std::string indent;    // one level of indentation (json.dumps' indent=N is N spaces)
  std::string item_sep;  // empty: ", " without indent, "," with
  std::string key_sep = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
std::string to_json(const Value& v, const JsonStyle& style);

// Dict keys are strings (what JSON and most templates use); a dict literal may also have int keys
// (ByteDance Seed-OSS: {0: 0, 512: 128, ...}), stored as "\x01" and the decimal digits. A string
// key is stored as itself, or, when it starts with "\x01" or "\x02", behind one more "\x02", so
// no string (from a template or a conversation's JSON) reads back as an int. Lookups by a name
// (an attribute, "role") use the name itself. dict_key refuses other key types.
std::string dict_key(const Value& key);
std::string string_key(std::string key);
Value dict_key_value(const std::string& key);  // the key as the template sees it (str or int)

bool equal(const Value& a, const Value& b);
// a < b with Python's ordering; refuses mixed types.
bool less(const Value& a, const Value& b);

// Code-point view of a UTF-8 string (Python's str indexes code points).
std::vector<std::string_view> code_points(std::string_view s);
size_t code_point_count(std::string_view s);
// The code point of one UTF-8 character (an element of code_points()).
uint32_t decode_cp(std::string_view cp);

// Appends Python's escape of one code point: \xNN, \uNNNN or \UNNNNNNNN.
void append_cp_escape(std::string& out, uint32_t cp);
// Python's str.isprintable() for one code point (chat/casing.cpp): what repr() leaves as is.
bool py_isprintable(uint32_t cp);
// Python's str.isspace() for one code point.
bool is_py_space(uint32_t cp);
std::string py_strip(std::string_view s, const Value* chars, bool left, bool right);

}  // namespace qkv::chat
