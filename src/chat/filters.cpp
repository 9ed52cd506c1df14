// Filters and tests of the chat-template interpreter, with the behaviour of Jinja 3.1 under
// transformers' environment (tojson = json.dumps(ensure_ascii=False, ...)).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <unordered_map>

#include "chat/builtins.h"
#include "chat/interp.h"

namespace qkv::chat {

// Jinja's attribute paths for sort/map/selectattr: "a.b.0". With a default (map's), an undefined
// step becomes the default before the next one, as Jinja's attribute getter does.
Value attr_path(Interp& in, const Value& v, const std::string& path, const Value* dflt) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c));
    });
    cur = digits && part.size() < 18 ? in.getitem(cur, Value::integer(std::stoll(part)))
                                     : in.getitem(cur, Value::string(part));
    if (dflt && cur.is_undefined()) cur = *dflt;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// Jinja's title filter (not str.title): the text cut before and after runs of [-\s({[<], each
// piece's first character upper-cased and the rest lower-cased ("they're" -> "They're").
std::string jinja_title(const std::string& s) {
  const auto cps = code_points(s);
  const auto separator = [](std::string_view cp) {
    const uint32_t c = decode_cp(cp);
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_py_space(c);
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    const bool sep = separator(cps[i]);
    size_t j = i + 1;
    while (j < cps.size() && separator(cps[j]) == sep) ++j;
    std::string rest;
    for (size_t k = i + 1; k < j; ++k) rest += cps[k];
    out += py_upper(cps[i]);
    out += py_lower(rest);
    i = j;
  }
  return out;
}

int64_t py_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return 0;
    case Value::Kind::String:
      return static_cast<int64_t>(code_point_count(v.str()));
    case Value::Kind::List:
      return static_cast<int64_t>(v.list().items.size());
    case Value::Kind::Dict:
      return static_cast<int64_t>(v.dict_ref().items.size());
    default:
      fail("object of type '" + type_name(v) + "' has no len()");
  }
}

// Sort key comparison: strings compared case-insensitively unless asked otherwise.
bool sort_less(const Value& a, const Value& b, bool case_sensitive) {
  if (!case_sensitive && a.is_string() && b.is_string()) {
    return py_lower(a.str()) < py_lower(b.str());
  }
  return less(a, b);
}

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return l >= 'a' && l <= 'z' ? l - 'a' + 10 : 99;
}

// Appends the digits (in `base`) at s[i..] to `out`, past single underscores between two digits
// as Python's literals allow ("1_000"); false when there is no digit.
bool digit_part(const std::string& s, size_t& i, std::string& out, int base) {
  const size_t start = i;
  while (i < s.size()) {
    if (digit_value(s[i]) < base) {
      out += s[i++];
    } else if (s[i] == '_' && i > start && i + 1 < s.size() && digit_value(s[i + 1]) < base) {
      ++i;
    } else {
      break;
    }
  }
  return i > start;
}

}  // namespace

// Python's float(str): surrounding whitespace, a sign, then "inf", "infinity" or "nan" in any
// case, or decimal digits with an optional point and exponent. strtod alone would also read
// hexadecimal ("0x1A" = 26) and "nan(...)", which Python refuses.
std::optional<double> py_float(const std::string& text) {
  const std::string s = py_strip(text, nullptr, true, true);
  size_t i = 0;
  std::string clean;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) clean += s[i++];
  const std::string word = ascii_lower(s.substr(i));
  if (word == "inf" || word == "infinity" || word == "nan") {
    return std::strtod((clean + word).c_str(), nullptr);
  }
  const bool whole = digit_part(s, i, clean, 10);
  bool frac = false;
  if (i < s.size() && s[i] == '.') {
    clean += s[i++];
    frac = digit_part(s, i, clean, 10);
  }
  if (!whole && !frac) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    clean += s[i++];
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) clean += s[i++];
    if (!digit_part(s, i, clean, 10)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return std::strtod(clean.c_str(), nullptr);
}

namespace {

// Python's int(str, base): surrounding whitespace, a sign, the 0x / 0o / 0b prefix its base
// allows (base 0: the prefix picks the base, else decimal without leading zeros), digits with
// single underscores between them. nullopt where Python raises ValueError; a value beyond 64 bits
// (a Python int still) is an error.
std::optional<int64_t> py_int(const std::string& text, int64_t base) {
  if (base != 0 && (base < 2 || base > 36)) fail("int() base must be >= 2 and <= 36, or 0");
  const std::string s = py_strip(text, nullptr, true, true);
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  bool prefixed = false;
  if (i + 1 < s.size() && s[i] == '0') {
    const char p = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i + 1])));
    const int b = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (b != 0 && (base == 0 || base == b)) {
      base = b;
      prefixed = true;
      i += 2;
      if (i + 1 < s.size() && s[i] == '_') ++i;  // "0x_ff"
    }
  }
  const bool decimal_by_default = base == 0;
  if (base == 0) base = 10;
  std::string digits;
  if (!digit_part(s, i, digits, static_cast<int>(base)) || i != s.size()) return std::nullopt;
  if (decimal_by_default && !prefixed && digits.size() > 1 && digits[0] == '0' &&
      digits.find_first_not_of('0') != std::string::npos) {
    return std::nullopt;  // "017": base 0 refuses leading zeros
  }
  uint64_t magnitude = 0;
  for (char c : digits) {
    const uint64_t d = static_cast<uint64_t>(digit_value(c));
    if (magnitude > (uint64_t{1} << 63) / static_cast<uint64_t>(base) ||
        magnitude * static_cast<uint64_t>(base) > (uint64_t{1} << 63) - d) {
      fail("integer " + text + " is beyond 64 bits");
    }
    magnitude = magnitude * static_cast<uint64_t>(base) + d;
  }
  if (!negative && magnitude == uint64_t{1} << 63) fail("integer " + text + " is beyond 64 bits");
  return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
}

// Jinja's int filter: int(value, base) for a string, int(value) otherwise, and where that raises
// ValueError or TypeError, int(float(value)) ("4.7" -> 4); the default where that fails too
// (also for infinity, which raises OverflowError).
Value to_int(const Value& v, const Value& dflt, int64_t base) {
  v.require_defined();
  if (v.is_int_like()) return Value::integer(v.as_int());
  std::optional<double> f;
  if (v.is(Value::Kind::Float)) {
    f = v.as_float();
  } else if (v.is_string()) {
    if (const std::optional<int64_t> i = py_int(v.str(), base)) return Value::integer(*i);
    f = py_float(v.str());
  }
  if (!f || !std::isfinite(*f)) return dflt;
  if (std::fabs(*f) >= 9223372036854775808.0)
    fail("integer " + float_repr(*f) + " is beyond 64 bits");
  return Value::integer(static_cast<int64_t>(*f));
}

// Jinja's float filter: float(value), the default where Python raises.
Value to_float(const Value& v, const Value& dflt) {
  v.require_defined();
  if (v.is_number()) return Value::real(v.as_float());
  if (v.is_string()) {
    if (const std::optional<double> f = py_float(v.str())) return Value::real(*f);
  }
  return dflt;
}

// Python's round(x, ndigits): an int stays an int (rounded to a multiple of 10^-ndigits, half to
// even, when ndigits < 0); a float is rounded correctly from its exact binary value, half to
// even, so 2.675 -> 2.67 (2.675 is 2.67499999...) where x * 100 would round up.
Value py_round(const Value& v, int64_t ndigits) {
  if (v.is_int_like()) {
    const int64_t x = v.as_int();
    if (ndigits >= 0) return Value::integer(x);
    if (ndigits < -18) return Value::integer(0);
    int64_t p = 1;
    for (int64_t k = 0; k < -ndigits; ++k) p *= 10;
    int64_t q = x / p;
    int64_t r = x % p;
    if (r < 0) {  // floor division, as Python's
      r += p;
      --q;
    }
    if (2 * static_cast<__int128>(r) > p || (2 * static_cast<__int128>(r) == p && q % 2 != 0)) ++q;
    const __int128 out = static_cast<__int128>(q) * p;
    if (out > INT64_MAX || out < INT64_MIN) fail("integer overflow (beyond 64 bits)");
    return Value::integer(static_cast<int64_t>(out));
  }
  const double x = v.as_float();
  if (!std::isfinite(x) || ndigits > 330) return Value::real(x);
  if (ndigits >= 0) {
    // printf rounds the exact binary value to nearest, ties to even: what Python's round does.
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(ndigits), x);
    return Value::real(std::strtod(buf, nullptr));
  }
  const double scale = std::pow(10.0, static_cast<double>(-ndigits));
  return Value::real(std::nearbyint(x / scale) * scale);
}

JsonStyle json_style(const CallArgs& a) {
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  JsonStyle st;
  st.ensure_ascii = arg_bool(a, 0, "ensure_ascii", false);
  if (const Value* ind = arg(a, 1, "indent"); ind && !ind->is_none()) {
    st.indented = true;
    if (ind->is_string()) {
      st.indent = ind->str();
    } else if (ind->is_int_like()) {
      st.indent =
          std::string(static_cast<size_t>(std::clamp<int64_t>(ind->as_int(), 0, 1000)), ' ');
    } else {
      fail("tojson: indent must be an integer or a string");
    }
  }
  if (const Value* sep = arg(a, 2, "separators"); sep && !sep->is_none()) {
    if (!sep->is_list() || sep->list().items.size() != 2 || !sep->list().items[0].is_string() ||
        !sep->list().items[1].is_string()) {
      fail("tojson: separators must be a pair of strings");
    }
    st.item_sep = sep->list().items[0].str();
    st.key_sep = sep->list().items[1].str();
    if (st.item_sep.empty()) st.item_sep = std::string(1, '\0');  // marks "" as given
  }
  st.sort_keys = arg_bool(a, 3, "sort_keys", false);
  return st;
}

// Jinja's max / min (case_sensitive=False, attribute=None): the first greatest / least item,
// compared by the attribute where one is named.
Value min_or_max(Interp& in, const Value& v, CallArgs& a, bool want_max) {
  const auto items = in.iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const bool cs = arg_bool(a, 0, "case_sensitive", false);
  const Value* attr = arg(a, 1, "attribute");
  auto key_of = [&](const Value& x) {
    Value k = attr && !attr->is_none() ? attr_path(in, x, to_str(*attr)) : x;
    k.require_defined();
    return k;
  };
  size_t best = 0;
  Value best_key = key_of(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = key_of(items[i]);
    if (want_max ? sort_less(best_key, key, cs) : sort_less(key, best_key, cs)) {
      best = i;
      best_key = std::move(key);
    }
  }
  return items[best];
}

using TestFn = bool (*)(Interp&, const Value&, CallArgs&);

// select/reject/selectattr/rejectattr: `test` with the arguments after index `first`.
std::vector<Value> select_items(Interp& in, const Value& seq, CallArgs& a, bool by_attr,
                                bool keep) {
  // Jinja's select_or_reject and map begin `if value:`, so a false value (none: `tools` when a
  // conversation has none) selects and maps to nothing rather than failing to iterate.
  if (!seq.truthy()) return {};
  size_t first = 0;
  std::string attr;
  if (by_attr) {
    attr = arg_str(a, 0, "attribute", "");
    first = 1;
  }
  std::string test_name;
  if (a.pos.size() > first) test_name = need_str(a.pos[first], "select test name");
  CallArgs targs;
  for (size_t i = first + 1; i < a.pos.size(); ++i) targs.pos.push_back(a.pos[i]);
  std::vector<Value> out;
  for (const Value& item : in.iterate(seq)) {
    in.step();
    const Value x = by_attr ? attr_path(in, item, attr) : item;
    const bool ok = test_name.empty() ? x.truthy() : in.test(test_name, x, targs);
    if (ok == keep) out.push_back(item);
  }
  return out;
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> table = {
      {"abs",
       [](Interp&, const Value& v, CallArgs&) {
         if (v.is(Value::Kind::Float)) return Value::real(std::fabs(v.as_float()));
         if (!v.is_int_like()) fail("bad operand type for abs(): '" + type_name(v) + "'");
         if (v.as_int() == INT64_MIN) fail("integer overflow (beyond 64 bits)");
         return Value::integer(std::llabs(v.as_int()));
       }},
      // getattr(obj, name) only: a dict's keys are items, not attributes (messages[0]|attr('role')
      // is undefined in Jinja), but its methods and a namespace's attributes are.
      {"attr",
       [](Interp& in, const Value& v, CallArgs& a) {
         const std::string name = arg_str(a, 0, "name", "");
         if (v.is(Value::Kind::Namespace) || v.is_undefined()) return in.getattr(v, name);
         Value m = in.method(v, name);
         if (!m.is_undefined() || !m.str().empty()) return m;  // a method, or an unsafe one
         return Value::undefined("'" + type_repr(v) + "' has no attribute '" + name + "'");
       }},
      {"capitalize",
       [](Interp&, const Value& v, CallArgs&) { return Value::string(py_capitalize(to_str(v))); }},
      {"default",
       [](Interp&, const Value& v, CallArgs& a) {
         const bool boolean = arg_bool(a, 1, "boolean", false);
         if (v.is_undefined() || (boolean && !v.truthy())) {
           const Value* d = arg(a, 0, "default_value");
           return d ? *d : Value::string("");
         }
         return v;
       }},
      {"dictsort",
       [](Interp&, const Value& v, CallArgs& a) {
         v.require_defined();
         if (!v.is_dict()) fail("You can only sort by either 'key' or 'value' of a dict");
         const bool cs = arg_bool(a, 0, "case_sensitive", false);
         const std::string by = arg_str(a, 1, "by", "key");
         const bool rev = arg_bool(a, 2, "reverse", false);
         if (by != "key" && by != "value") fail("You can only sort by either 'key' or 'value'");
         std::vector<std::pair<std::string, Value>> items = v.dict_ref().items;
         const int idx = by == "key" ? 0 : 1;
         std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
           const Value kx = idx == 0 ? dict_key_value(x.first) : x.second;
           const Value ky = idx == 0 ? dict_key_value(y.first) : y.second;
           return rev ? sort_less(ky, kx, cs) : sort_less(kx, ky, cs);
         });
         Dict d;
         d.items = std::move(items);
         return pairs(d);
       }},
      {"escape",
       [](Interp&, const Value& v, CallArgs&) { return Value::string(html_escape(to_str(v))); }},
      {"first",
       [](Interp& in, const Value& v, CallArgs&) {
         const auto items = in.iterate(v);
         if (items.empty()) return Value::undefined("No first item, sequence was empty.");
         return items.front();
       }},
      {"float",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* d = arg(a, 0, "default");
         return to_float(v, d ? *d : Value::real(0));
       }},
      {"indent",
       [](Interp& in, const Value& v, CallArgs& a) {
         // Jinja appends "\n" to the value first: an undefined or a non-string fails there.
         v.require_defined();
         if (!v.is_string()) {
           fail("unsupported operand type(s) for +=: '" + type_name(v) + "' and 'str'");
         }
         std::string pad = "    ";
         if (const Value* w = arg(a, 0, "width")) {
           pad = w->is_string() ? w->str()
                                : std::string(static_cast<size_t>(std::clamp<int64_t>(
                                                  w->is_int_like() ? w->as_int() : 4, 0, 1000)),
                                              ' ');
         }
         const bool first = arg_bool(a, 1, "first", false);
         const bool blank = arg_bool(a, 2, "blank", false);
         // Python's splitlines (every line boundary) of the value plus "\n", joined by "\n".
         const std::vector<Value> lines = py_splitlines(v.str() + "\n", false);
         in.check_size(v.str().size() + lines.size() * (pad.size() + 1));
         std::string out;
         for (size_t i = 0; i < lines.size(); ++i) {
           const std::string& line = lines[i].str();
           if (i > 0) out += '\n';
           if (i == 0 ? first : (blank || !line.empty())) out += pad;
           out += line;
         }
         return Value::string(out);
       }},
      {"int",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* d = arg(a, 0, "default");
         return to_int(v, d ? *d : Value::integer(0), arg_int(a, 1, "base", 10));
       }},
      {"items",
       [](Interp&, const Value& v, CallArgs&) {
         if (v.is_undefined()) return Value::list({});
         if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
         return pairs(v.dict_ref());
       }},
      {"join",
       [](Interp& in, const Value& v, CallArgs& a) {
         const std::string sep = arg_str(a, 0, "d", "");
         const Value* attr = arg(a, 1, "attribute");
         std::string out;
         bool first = true;
         for (const Value& item : in.iterate(v)) {
           if (!first) out += sep;
           first = false;
           out += to_str(attr && !attr->is_none() ? attr_path(in, item, to_str(*attr)) : item);
           in.check_size(out.size());
         }
         return Value::string(std::move(out));
       }},
      {"last",
       [](Interp& in, const Value& v, CallArgs&) {
         const auto items = in.iterate(v);
         if (items.empty()) return Value::undefined("No last item, sequence was empty.");
         return items.back();
       }},
      {"length", [](Interp&, const Value& v, CallArgs&) { return Value::integer(py_len(v)); }},
      {"list", [](Interp& in, const Value& v, CallArgs&) { return Value::list(in.iterate(v)); }},
      {"lower",
       [](Interp&, const Value& v, CallArgs&) { return Value::string(py_lower(to_str(v))); }},
      {"map",
       [](Interp& in, const Value& v, CallArgs& a) {
         std::vector<Value> out;
         if (!v.truthy()) return Value::list({});  // as select_items
         const Value* attr = a.kwarg("attribute");
         if (attr) {
           const Value* dflt = a.kwarg("default");
           for (const Value& item : in.iterate(v)) {
             out.push_back(attr_path(in, item, to_str(*attr), dflt));
           }
           return Value::list(std::move(out));
         }
         if (a.pos.empty()) fail("map: give a filter name or attribute=");
         const std::string name = need_str(a.pos[0], "map filter name");
         CallArgs fargs;
         fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
         fargs.kw = a.kw;
         for (const Value& item : in.iterate(v)) {
           in.step();
           CallArgs copy = fargs;
           out.push_back(in.filter(name, item, copy));
         }
         return Value::list(std::move(out));
       }},
      {"max", [](Interp& in, const Value& v,
                 CallArgs& a) { return min_or_max(in, v, a, /*want_max=*/true); }},
      {"min", [](Interp& in, const Value& v,
                 CallArgs& a) { return min_or_max(in, v, a, /*want_max=*/false); }},
      {"reject", [](Interp& in, const Value& v,
                    CallArgs& a) { return Value::list(select_items(in, v, a, false, false)); }},
      {"rejectattr", [](Interp& in, const Value& v,
                        CallArgs& a) { return Value::list(select_items(in, v, a, true, false)); }},
      {"replace",
       [](Interp& in, const Value& v, CallArgs& a) {
         return Value::string(py_replace(to_str(v), arg_str(a, 0, "old", ""),
                                         arg_str(a, 1, "new", ""), arg_int(a, 2, "count", -1), in));
       }},
      {"reverse",
       [](Interp& in, const Value& v, CallArgs&) {
         if (v.is_string()) {
           auto cps = code_points(v.str());
           std::string out;
           for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
           return Value::string(out);
         }
         auto items = in.iterate(v);
         std::reverse(items.begin(), items.end());
         return Value::list(std::move(items));
       }},
      {"round",
       [](Interp&, const Value& v, CallArgs& a) {
         if (!v.is_number()) fail("type " + type_name(v) + " doesn't define __round__ method");
         const int64_t prec = arg_int(a, 0, "precision", 0);
         const std::string method = arg_str(a, 1, "method", "common");
         if (method == "common") return py_round(v, prec);
         if (method != "ceil" && method != "floor") {
           fail("method must be common, ceil or floor");
         }
         const double scale = std::pow(10.0, static_cast<double>(prec));
         const double x = v.as_float() * scale;
         return Value::real((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
       }},
      {"safe", [](Interp&, const Value& v, CallArgs&) { return v; }},
      {"select", [](Interp& in, const Value& v,
                    CallArgs& a) { return Value::list(select_items(in, v, a, false, true)); }},
      {"selectattr", [](Interp& in, const Value& v,
                        CallArgs& a) { return Value::list(select_items(in, v, a, true, true)); }},
      {"sort",
       [](Interp& in, const Value& v, CallArgs& a) {
         auto items = in.iterate(v);
         const bool rev = arg_bool(a, 0, "reverse", false);
         const bool cs = arg_bool(a, 1, "case_sensitive", false);
         const Value* attr = arg(a, 2, "attribute");
         std::vector<Value> keys;
         for (const Value& x : items) {
           keys.push_back(attr && !attr->is_none() ? attr_path(in, x, to_str(*attr)) : x);
         }
         std::vector<size_t> order(items.size());
         for (size_t i = 0; i < order.size(); ++i) order[i] = i;
         std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
           return rev ? sort_less(keys[y], keys[x], cs) : sort_less(keys[x], keys[y], cs);
         });
         std::vector<Value> out;
         for (size_t i : order) out.push_back(items[i]);
         return Value::list(std::move(out));
       }},
      {"string", [](Interp&, const Value& v, CallArgs&) { return Value::string(to_str(v)); }},
      {"sum",
       [](Interp& in, const Value& v, CallArgs& a) {
         const Value* attr = arg(a, 0, "attribute");
         const Value* start = arg(a, 1, "start");
         Value total = start ? *start : Value::integer(0);
         if (total.is_string()) fail("sum() can't sum strings [use ''.join(seq) instead]");
         for (const Value& x : in.iterate(v)) {
           in.step();
           total = in.binary("+", total,
                             attr && !attr->is_none() ? attr_path(in, x, to_str(*attr)) : x);
         }
         return total;
       }},
      {"title",
       [](Interp&, const Value& v, CallArgs&) { return Value::string(jinja_title(to_str(v))); }},
      {"tojson",
       [](Interp&, const Value& v, CallArgs& a) {
         JsonStyle st = json_style(a);
         if (st.item_sep == std::string(1, '\0')) st.item_sep.clear();
         return Value::string(to_json(v, st));
       }},
      {"trim",
       [](Interp&, const Value& v, CallArgs& a) {
         return Value::string(py_strip(to_str(v), arg(a, 0, "chars"), true, true));
       }},
      {"unique",
       [](Interp& in, const Value& v, CallArgs& a) {
         const bool cs = arg_bool(a, 0, "case_sensitive", false);
         const Value* attr = arg(a, 1, "attribute");
         std::vector<Value> out;
         std::vector<Value> seen;
         for (const Value& x : in.iterate(v)) {
           Value k = attr && !attr->is_none() ? attr_path(in, x, to_str(*attr)) : x;
           if (!cs && k.is_string()) k = Value::string(py_lower(k.str()));
           bool dup = false;
           for (const Value& s : seen) dup = dup || equal(s, k);
           if (!dup) {
             seen.push_back(k);
             out.push_back(x);
           }
         }
         return Value::list(std::move(out));
       }},
      {"upper",
       [](Interp&, const Value& v, CallArgs&) { return Value::string(py_upper(to_str(v))); }},
  };
  return table;
}

const std::unordered_map<std::string, std::string>& filter_aliases() {
  static const std::unordered_map<std::string, std::string> table = {
      {"d", "default"}, {"e", "escape"}, {"count", "length"}};
  return table;
}

bool is_iterable(const Value& v) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}

const std::unordered_map<std::string, TestFn>& tests() {
  static const std::unordered_map<std::string, TestFn> table = {
      {"defined", [](Interp&, const Value& v, CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](Interp&, const Value& v, CallArgs&) { return v.is_undefined(); }},
      {"none", [](Interp&, const Value& v, CallArgs&) { return v.is_none(); }},
      {"boolean", [](Interp&, const Value& v, CallArgs&) { return v.is(Value::Kind::Bool); }},
      {"false",
       [](Interp&, const Value& v, CallArgs&) { return v.is(Value::Kind::Bool) && !v.as_bool(); }},
      {"true",
       [](Interp&, const Value& v, CallArgs&) { return v.is(Value::Kind::Bool) && v.as_bool(); }},
      {"integer", [](Interp&, const Value& v, CallArgs&) { return v.is(Value::Kind::Int); }},
      {"float", [](Interp&, const Value& v, CallArgs&) { return v.is(Value::Kind::Float); }},
      {"number", [](Interp&, const Value& v, CallArgs&) { return v.is_number(); }},
      {"string", [](Interp&, const Value& v, CallArgs&) { return v.is_string(); }},
      {"mapping", [](Interp&, const Value& v, CallArgs&) { return v.is_dict(); }},
      {"iterable", [](Interp&, const Value& v, CallArgs&) { return is_iterable(v); }},
      // Jinja: len() and __getitem__ work; its Undefined has both.
      {"sequence", [](Interp&, const Value& v, CallArgs&) { return is_iterable(v); }},
      {"callable", [](Interp&, const Value& v, CallArgs&) { return v.is(Value::Kind::Callable); }},
      {"sameas",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "other");
         if (!o) fail("sameas needs an argument");
         if (v.kind() != o->kind()) return false;
         switch (v.kind()) {
           case Value::Kind::None:
           case Value::Kind::Undefined:
             return true;
           case Value::Kind::Bool:
             return v.as_bool() == o->as_bool();
           case Value::Kind::List:
             return &v.list() == &o->list();
           case Value::Kind::Dict:
           case Value::Kind::Namespace:
             return v.dict_ptr() == o->dict_ptr();
           default:
             return equal(v, *o);
         }
       }},
      {"eq",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "other");
         if (!o) fail("eq needs an argument");
         return equal(v, *o);
       }},
      {"ne",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "other");
         if (!o) fail("ne needs an argument");
         return !equal(v, *o);
       }},
      {"lt",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "other");
         if (!o) fail("lt needs an argument");
         return less(v, *o);
       }},
      {"le",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "other");
         if (!o) fail("le needs an argument");
         return less(v, *o) || equal(v, *o);
       }},
      {"gt",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "other");
         if (!o) fail("gt needs an argument");
         return less(*o, v);
       }},
      {"ge",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "other");
         if (!o) fail("ge needs an argument");
         return less(*o, v) || equal(v, *o);
       }},
      {"in",
       [](Interp& in, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "seq");
         if (!o) fail("in needs an argument");
         if (o->is_string()) return v.is_string() && o->str().find(v.str()) != std::string::npos;
         for (const Value& x : in.iterate(*o)) {
           if (equal(x, v)) return true;
         }
         return false;
       }},
      {"odd",
       [](Interp&, const Value& v, CallArgs&) {
         if (!v.is_int_like()) fail("odd needs an integer");
         return v.as_int() % 2 != 0;
       }},
      {"even",
       [](Interp&, const Value& v, CallArgs&) {
         if (!v.is_int_like()) fail("even needs an integer");
         return v.as_int() % 2 == 0;
       }},
      {"divisibleby",
       [](Interp&, const Value& v, CallArgs& a) {
         const Value* o = arg(a, 0, "num");
         if (!o || !o->is_int_like() || !v.is_int_like()) fail("divisibleby needs integers");
         if (o->as_int() == 0) fail("integer division or modulo by zero");
         if (o->as_int() == -1) return true;
         return v.as_int() % o->as_int() == 0;
       }},
      {"lower", [](Interp&, const Value& v, CallArgs&) { return py_islower(to_str(v)); }},
      {"upper", [](Interp&, const Value& v, CallArgs&) { return py_isupper(to_str(v)); }},
      {"filter", [](Interp&, const Value& v,
                    CallArgs&) { return v.is_string() && is_known_filter(v.str()); }},
      {"test",
       [](Interp&, const Value& v, CallArgs&) { return v.is_string() && is_known_test(v.str()); }},
      {"escaped", [](Interp&, const Value&, CallArgs&) { return false; }},
  };
  return table;
}

const std::unordered_map<std::string, std::string>& test_aliases() {
  static const std::unordered_map<std::string, std::string> table = {
      {"==", "eq"}, {"equalto", "eq"}, {"!=", "ne"},          {"<", "lt"},  {"lessthan", "lt"},
      {"<=", "le"}, {">", "gt"},       {"greaterthan", "gt"}, {">=", "ge"},
  };
  return table;
}

}  // namespace

bool is_known_filter(const std::string& name) {
  return filters().count(name) != 0 || layout_filters().count(name) != 0 ||
         text_filters().count(name) != 0 || filter_aliases().count(name) != 0;
}

bool is_known_test(const std::string& name) {
  return tests().count(name) != 0 || test_aliases().count(name) != 0;
}

Value Interp::filter(const std::string& name, const Value& v, CallArgs& args) {
  std::string n = name;
  if (auto it = filter_aliases().find(n); it != filter_aliases().end()) n = it->second;
  auto it = filters().find(n);
  if (it == filters().end()) {
    it = layout_filters().find(n);
    if (it == layout_filters().end()) {
      it = text_filters().find(n);
      if (it == text_filters().end()) fail("unsupported filter '" + name + "'");
    }
  }
  return it->second(*this, v, args);
}

bool Interp::test(const std::string& name, const Value& v, CallArgs& args) {
  std::string n = name;
  if (auto it = test_aliases().find(n); it != test_aliases().end()) n = it->second;
  auto it = tests().find(n);
  if (it == tests().end()) fail("unsupported test '" + name + "'");
  return it->second(*this, v, args);
}

}  // namespace qkv::chat
