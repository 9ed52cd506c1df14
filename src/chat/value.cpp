#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

namespace qkv::chat {

void fail(std::string message) {
  throw EvalError{std::move(message), false};
}

namespace {

thread_local std::shared_ptr<MemoryAccount> t_account;
thread_local size_t t_max_text = SIZE_MAX;

// The text being made of a value has grown past what a render may make.
void check_text(const std::string& out) {
  if (out.size() > t_max_text) {
    fail("template output or a string in it exceeds " + std::to_string(t_max_text) + " bytes");
  }
}

// Owns `object`, charging `bytes` to the current account (if any) until the last copy goes.
template <class T>
std::shared_ptr<T> charged(std::unique_ptr<T> object, size_t bytes) {
  if (!t_account) return std::shared_ptr<T>(std::move(object));
  std::shared_ptr<MemoryAccount> account = t_account;
  const auto n = static_cast<int64_t>(bytes);
  account->bytes += n;
  return std::shared_ptr<T>(object.release(), [account, n](T* p) {
    account->bytes -= n;
    delete p;
  });
}

// Heap bytes of a string or a list's elements, with the allocation's own overhead.
constexpr size_t kOverhead = 64;

std::shared_ptr<const std::string> shared_string(std::string s) {
  const size_t bytes = s.capacity() + kOverhead;
  return charged<const std::string>(std::make_unique<const std::string>(std::move(s)), bytes);
}

}  // namespace

ChargeTo::ChargeTo(std::shared_ptr<MemoryAccount> account, size_t max_text)
    : previous_(std::move(t_account)), previous_max_text_(t_max_text) {
  t_account = std::move(account);
  t_max_text = max_text;
}
ChargeTo::~ChargeTo() {
  t_account = std::move(previous_);
  t_max_text = previous_max_text_;
}

const std::string& Value::empty_string() {
  static const std::string empty;
  return empty;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value* Dict::find(std::string_view key) {
  for (auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::set(std::string key, Value v) {
  if (Value* old = find(key)) {
    *old = std::move(v);
  } else {
    items.emplace_back(std::move(key), std::move(v));
  }
}

const Value* CallArgs::kwarg(std::string_view name) const {
  for (const auto& [k, v] : kw) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value Value::undefined(std::string message) {
  Value v;
  if (!message.empty()) v.s_ = shared_string(std::move(message));
  return v;
}
Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.b_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.i_ = i;
  return v;
}
Value Value::real(double f) {
  Value v;
  v.kind_ = Kind::Float;
  v.f_ = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  if (!s.empty()) v.s_ = shared_string(std::move(s));
  return v;
}
Value Value::list(std::vector<Value> items, bool tuple) {
  Value v;
  v.kind_ = Kind::List;
  const size_t bytes = items.capacity() * sizeof(Value) + kOverhead;
  v.list_ = charged(std::make_unique<List>(List{std::move(items), tuple, {}}), bytes);
  return v;
}
Value Value::dict(std::shared_ptr<Dict> d) {
  Value v;
  v.kind_ = Kind::Dict;
  v.dict_ = std::move(d);
  return v;
}
Value Value::dict() {
  return dict(std::make_shared<Dict>());
}
Value Value::ns(std::shared_ptr<Dict> d) {
  Value v;
  v.kind_ = Kind::Namespace;
  v.dict_ = std::move(d);
  return v;
}
Value Value::callable(std::string name, std::function<Value(Interp&, CallArgs&)> fn) {
  Value v;
  v.kind_ = Kind::Callable;
  v.fn_ = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return b_;
    case Kind::Int:
      return i_ != 0;
    case Kind::Float:
      return f_ != 0;
    case Kind::String:
      return !str().empty();
    case Kind::List:
      return !list_->items.empty();
    case Kind::Dict:
      return !dict_->items.empty();
    case Kind::Namespace:
    case Kind::Callable:
      return true;
  }
  return false;
}

void Value::require_defined() const {
  if (kind_ == Kind::Undefined) fail(str().empty() ? "value is undefined" : str());
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return "Undefined";
    case Value::Kind::None:
      return "NoneType";
    case Value::Kind::Bool:
      return "bool";
    case Value::Kind::Int:
      return "int";
    case Value::Kind::Float:
      return "float";
    case Value::Kind::String:
      return "str";
    case Value::Kind::List:
      return v.list().tuple ? "tuple" : "list";
    case Value::Kind::Dict:
      return "dict";
    case Value::Kind::Namespace:
      return "Namespace";
    case Value::Kind::Callable:
      return "function";
  }
  return "object";
}

std::string type_repr(const Value& v) {
  if (v.is_none()) return "None";
  return type_name(v) + " object";
}

std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // "-d.ddde+XX"
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e_pos = sci.find('e');
  std::string digits = sci.substr(0, e_pos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp = std::atoi(sci.c_str() + e_pos + 1);
  const int decpt = exp + 1;  // value = 0.d1d2... * 10^decpt
  std::string out;
  if (decpt <= -4 || decpt > 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  } else if (decpt <= 0) {
    out = "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  } else if (static_cast<size_t>(decpt) >= digits.size()) {
    out = digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, static_cast<size_t>(decpt)) + "." +
          digits.substr(static_cast<size_t>(decpt));
  }
  return sign + out;
}

std::string string_key(std::string key) {
  if (!key.empty() && (key[0] == '\x01' || key[0] == '\x02')) key.insert(0, 1, '\x02');
  return key;
}

std::string dict_key(const Value& key) {
  if (key.is_string()) return string_key(key.str());
  if (key.is(Value::Kind::Int)) return "\x01" + std::to_string(key.as_int());
  fail("dict keys must be strings or integers here, not " + type_name(key));
}

Value dict_key_value(const std::string& key) {
  if (!key.empty() && key[0] == '\x01') {
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(key.data() + 1, key.data() + key.size(), v);
    if (ec == std::errc() && end == key.data() + key.size()) return Value::integer(v);
  }
  if (!key.empty() && key[0] == '\x02') return Value::string(key.substr(1));
  return Value::string(key);
}

namespace {

std::string str_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char q = has_single && !has_double ? '"' : '\'';
  std::string out(1, q);
  for (std::string_view ch : code_points(s)) {
    if (ch.size() > 1) {
      // Python escapes what str.isprintable() refuses (U+00A0, U+200B, U+2028, ...).
      const uint32_t cp = decode_cp(ch);
      if (py_isprintable(cp)) {
        out += ch;
      } else {
        append_cp_escape(out, cp);
      }
      continue;
    }
    const auto c = static_cast<unsigned char>(ch[0]);
    if (c == q || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += q;
  check_text(out);
  return out;
}

}  // namespace

std::string repr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::String:
      return str_repr(v.str());
    case Value::Kind::List: {
      const List& l = v.list();
      std::string out = l.tuple ? "(" : "[";
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        out += repr(l.items[i]);
        check_text(out);
      }
      if (l.tuple && l.items.size() == 1) out += ",";
      out += l.tuple ? ")" : "]";
      return out;
    }
    case Value::Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, val] : v.dict_ref().items) {
        if (!first) out += ", ";
        first = false;
        out += repr(dict_key_value(k)) + ": " + repr(val);
        check_text(out);
      }
      return out + "}";
    }
    case Value::Kind::Undefined:
      return "Undefined";  // Jinja's Undefined.__repr__ ([x.missing] prints [Undefined])
    default:
      return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return "";
    case Value::Kind::None:
      return "None";
    case Value::Kind::Bool:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::Int:
      return std::to_string(v.as_int());
    case Value::Kind::Float:
      return float_repr(v.as_float());
    case Value::Kind::String:
      return v.str();
    case Value::Kind::List:
    case Value::Kind::Dict:
      return repr(v);
    case Value::Kind::Namespace: {
      // Jinja's Namespace repr: <Namespace {'a': 1}>
      std::string out = "<Namespace {";
      bool first = true;
      for (const auto& [k, val] : v.dict_ref().items) {
        if (!first) out += ", ";
        first = false;
        out += repr(dict_key_value(k)) + ": " + repr(val);
        check_text(out);
      }
      return out + "}>";
    }
    case Value::Kind::Callable:
      return "<function " + v.fn().name + ">";
  }
  return "";
}

namespace {

void json_string(const std::string& s, bool ensure_ascii, std::string& out) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c >= 0x80)) {
          uint32_t cp = c;
          if (c >= 0x80) {
            // decode one UTF-8 sequence (the strings were validated on the way in)
            int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
            cp = c & (0x3f >> n);
            for (int k = 0; k < n && i + 1 < s.size(); ++k) cp = (cp << 6) | (s[++i] & 0x3f);
          }
          char b[16];
          if (cp >= 0x10000) {
            cp -= 0x10000;
            std::snprintf(b, sizeof b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
                          0xdc00 + (cp & 0x3ff));
          } else {
            std::snprintf(b, sizeof b, "\\u%04x", cp);
          }
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void json_value(const Value& v, const JsonStyle& st, int depth, std::string& out) {
  if (depth > 200) fail("tojson: value nested too deeply");
  auto newline = [&](int d) {
    if (!st.indented) return;
    out += '\n';
    for (int k = 0; k < d; ++k) out += st.indent;
  };
  const std::string item_sep = st.item_sep.empty() ? (st.indented ? "," : ", ") : st.item_sep;
  switch (v.kind()) {
    case Value::Kind::None:
      out += "null";
      return;
    case Value::Kind::Bool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::Int:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::Float: {
      const double f = v.as_float();
      if (std::isnan(f)) {
        out += "NaN";
      } else if (std::isinf(f)) {
        out += f > 0 ? "Infinity" : "-Infinity";
      } else {
        out += float_repr(f);
      }
      return;
    }
    case Value::Kind::String:
      json_string(v.str(), st.ensure_ascii, out);
      return;
    case Value::Kind::List: {
      const auto& items = v.list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        json_value(items[i], st, depth + 1, out);
        check_text(out);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict_ref().items) items.push_back(&kv);
      if (items.empty()) {
        out += "{}";
        return;
      }
      if (st.sort_keys) {
        std::stable_sort(items.begin(), items.end(), [](const auto* a, const auto* b) {
          const Value ka = dict_key_value(a->first);
          const Value kb = dict_key_value(b->first);
          return ka.kind() == kb.kind() ? less(ka, kb) : a->first < b->first;
        });
      }
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        json_string(to_str(dict_key_value(items[i]->first)), st.ensure_ascii, out);
        out += st.key_sep;
        json_value(items[i]->second, st, depth + 1, out);
        check_text(out);
      }
      newline(depth);
      out += '}';
      return;
    }
    default:
      fail("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonStyle& style) {
  std::string out;
  json_value(v, style, 0, out);
  return out;
}

bool equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is(K::Float) || b.is(K::Float)) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::Undefined:
    case K::None:
      return true;
    case K::String:
      return a.str() == b.str();
    case K::List: {
      const List& x = a.list();
      const List& y = b.list();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!equal(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case K::Dict: {
      const Dict& x = a.dict_ref();
      const Dict& y = b.dict_ref();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* o = y.find(k);
        if (!o || !equal(v, *o)) return false;
      }
      return true;
    }
    case K::Namespace:
      return a.dict_ptr() == b.dict_ptr();
    default:
      return false;  // callables: identity, which copies of a bound method do not share
  }
}

bool less(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is(K::Float) || b.is(K::Float)) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_list() && b.is_list() && a.list().tuple == b.list().tuple) {
    const auto& x = a.list().items;
    const auto& y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equal(x[i], y[i])) return less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  a.require_defined();
  b.require_defined();
  fail("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

std::vector<std::string_view> code_points(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    n = std::min(n, s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t code_point_count(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

void append_cp_escape(std::string& out, uint32_t cp) {
  char b[16];
  if (cp < 0x100) {
    std::snprintf(b, sizeof b, "\\x%02x", cp);
  } else if (cp < 0x10000) {
    std::snprintf(b, sizeof b, "\\u%04x", cp);
  } else {
    std::snprintf(b, sizeof b, "\\U%08x", cp);
  }
  out += b;
}

uint32_t decode_cp(std::string_view s) {
  const unsigned char c = static_cast<unsigned char>(s[0]);
  if (c < 0x80 || s.size() == 1) return c;
  uint32_t cp = c & (0x7f >> s.size());
  for (size_t i = 1; i < s.size(); ++i) cp = (cp << 6) | (s[i] & 0x3f);
  return cp;
}

std::string py_strip(std::string_view s, const Value* chars, bool left, bool right) {
  const auto cps = code_points(s);
  std::vector<std::string_view> set;
  const bool by_set = chars && !chars->is_none() && !chars->is_undefined();
  if (by_set) {
    if (!chars->is_string()) fail("strip arg must be None or str");
    set = code_points(chars->str());
  }
  auto strip_it = [&](std::string_view cp) {
    if (by_set) return std::find(set.begin(), set.end(), cp) != set.end();
    return is_py_space(decode_cp(cp));
  };
  size_t b = 0;
  size_t e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  if (b == e) return {};
  const char* start = cps[b].data();
  const char* end = cps[e - 1].data() + cps[e - 1].size();
  return std::string(start, end);
}

}  // namespace qkv::chat
