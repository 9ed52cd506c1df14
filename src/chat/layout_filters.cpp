// Jinja's filters that lay out text and sequences: center, truncate, wordcount, batch, slice,
// groupby, urlencode, filesizeformat, xmlattr, forceescape, with Jinja 3.1's behaviour
// (tests/chat/filters_oracle_test.py compares them with Python Jinja2).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "chat/builtins.h"
#include "chat/interp.h"

namespace qkv::chat {
namespace {

std::string join_code_points(const std::vector<std::string_view>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < cps.size(); ++i) out += cps[i];
  return out;
}

// The length Jinja's filters take with len(): code points of a string; other values have none.
const std::string& sized_str(const Value& v) {
  v.require_defined();
  if (!v.is_string()) fail("object of type '" + type_name(v) + "' has no len()");
  return v.str();
}

int64_t need_int(const CallArgs& a, size_t i, const char* name, int64_t dflt, bool required) {
  const Value* v = arg(a, i, name);
  if (!v && required) fail(std::string("missing required argument '") + name + "'");
  if (!v) return dflt;
  v->require_defined();
  if (!v->is_int_like()) {
    fail("'" + type_name(*v) + "' object cannot be interpreted as an integer (argument '" + name +
         "')");
  }
  return v->as_int();
}

// Python's str.center(width): the odd space goes left when both width and the margin are odd.
Value center(Interp& in, const Value& v, CallArgs& a) {
  const std::string s = to_str(v);
  const int64_t width = need_int(a, 0, "width", 80, false);
  const auto len = static_cast<int64_t>(code_point_count(s));
  if (width <= len) return Value::string(s);
  in.check_size(s.size() + static_cast<size_t>(width - len));
  const int64_t margin = width - len;
  const int64_t left = margin / 2 + (margin & width & 1);
  return Value::string(std::string(static_cast<size_t>(left), ' ') + s +
                       std::string(static_cast<size_t>(margin - left), ' '));
}

// truncate(length=255, killwords=False, end='...', leeway=5): strings up to length + leeway code
// points are kept; longer ones are cut to length - len(end) (at the last space unless killwords)
// and end appended.
Value truncate(Interp&, const Value& v, CallArgs& a) {
  // An undefined has length 0 (Jinja's Undefined.__len__): it comes back as it is.
  static const std::string kEmpty;
  const std::string& s = v.is_undefined() ? kEmpty : sized_str(v);
  const int64_t length = need_int(a, 0, "length", 255, false);
  const bool killwords = arg_bool(a, 1, "killwords", false);
  const std::string end = arg_str(a, 2, "end", "...");
  const int64_t leeway = need_int(a, 3, "leeway", 5, false);
  const auto end_len = static_cast<int64_t>(code_point_count(end));
  if (length < end_len) {
    fail("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
  }
  if (leeway < 0) fail("expected leeway >= 0, got " + std::to_string(leeway));
  const std::vector<std::string_view> cps = code_points(s);
  const auto n = static_cast<int64_t>(cps.size());
  if (n <= length || n - length <= leeway) return v;
  std::string head = join_code_points(cps, 0, static_cast<size_t>(length - end_len));
  if (!killwords) {
    const size_t space = head.rfind(' ');
    if (space != std::string::npos) head.resize(space);
  }
  return Value::string(head + end);
}

// Jinja counts the matches of \w+ (so "fox-dog" is two words).
Value wordcount(Interp&, const Value& v, CallArgs&) {
  const std::string s = to_str(v);
  int64_t words = 0;
  bool in_word = false;
  for (std::string_view cp : code_points(s)) {
    uint32_t c = static_cast<unsigned char>(cp[0]);
    if (cp.size() > 1) {  // decode the UTF-8 sequence
      c &= 0x3Fu >> (cp.size() - 1);
      for (size_t k = 1; k < cp.size(); ++k)
        c = (c << 6) | (static_cast<unsigned char>(cp[k]) & 0x3F);
    }
    const bool w = py_is_word_char(c);
    if (w && !in_word) ++words;
    in_word = w;
  }
  return Value::integer(words);
}

// batch(linecount, fill_with=None): lists of linecount items, the last one filled up.
Value batch(Interp& in, const Value& v, CallArgs& a) {
  const int64_t count = need_int(a, 0, "linecount", 0, true);
  const Value* fill = arg(a, 1, "fill_with");
  std::vector<Value> out;
  std::vector<Value> cur;
  for (const Value& x : in.iterate(v)) {
    in.step();
    if (static_cast<int64_t>(cur.size()) == count) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
    cur.push_back(x);
  }
  if (!cur.empty()) {
    if (fill && !fill->is_none() && static_cast<int64_t>(cur.size()) < count) {
      in.check_items(static_cast<size_t>(count));
      cur.resize(static_cast<size_t>(count), *fill);
    }
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

// slice(slices, fill_with=None): `slices` columns, the first len % slices of them one longer;
// the shorter ones get fill_with appended.
Value slice(Interp& in, const Value& v, CallArgs& a) {
  const int64_t slices = need_int(a, 0, "slices", 0, true);
  const Value* fill = arg(a, 1, "fill_with");
  const std::vector<Value> seq = in.iterate(v);
  if (slices == 0) fail("integer division or modulo by zero");
  if (slices < 0) return Value::list({});
  in.check_items(static_cast<size_t>(slices));
  const auto n = static_cast<int64_t>(seq.size());
  const int64_t per = n / slices;
  const int64_t extra = n % slices;
  std::vector<Value> out;
  int64_t offset = 0;
  for (int64_t k = 0; k < slices; ++k) {
    in.step();
    const int64_t start = offset + k * per;
    if (k < extra) ++offset;
    const int64_t end = offset + (k + 1) * per;
    std::vector<Value> col(seq.begin() + start, seq.begin() + end);
    if (fill && !fill->is_none() && k >= extra) col.push_back(*fill);
    out.push_back(Value::list(std::move(col)));
  }
  return Value::list(std::move(out));
}

// groupby(attribute, default=None, case_sensitive=False): items sorted by the attribute (an
// attribute path or an index), then (grouper, list) named tuples for each run of equal keys.
// Case-insensitive grouping compares lowered strings but reports the first item's own value.
Value groupby(Interp& in, const Value& v, CallArgs& a) {
  const Value* attr = arg(a, 0, "attribute");
  if (!attr) fail("groupby: missing required argument 'attribute'");
  const Value* dflt = arg(a, 1, "default");
  if (dflt && dflt->is_none()) dflt = nullptr;  // Jinja: default=None means no default
  const bool cs = arg_bool(a, 2, "case_sensitive", false);
  auto key_of = [&](const Value& x) {
    Value k = attr->is_int_like() ? in.getitem(x, *attr) : attr_path(in, x, to_str(*attr), dflt);
    if (dflt && k.is_undefined()) k = *dflt;
    return k;
  };
  const std::vector<Value> items = in.iterate(v);
  std::vector<Value> keys;
  for (const Value& x : items) {
    in.step();
    Value k = key_of(x);
    if (!cs && k.is_string()) k = Value::string(py_lower(k.str()));
    if (items.size() > 1) k.require_defined();  // sorting compares it, as Undefined refuses
    keys.push_back(std::move(k));
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return less(keys[x], keys[y]); });
  std::vector<Value> out;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    std::vector<Value> group;
    while (j < order.size() && equal(keys[order[j]], keys[order[i]])) {
      group.push_back(items[order[j]]);
      ++j;
    }
    Value grouper = cs ? keys[order[i]] : key_of(items[order[i]]);
    Value pair = Value::list({std::move(grouper), Value::list(std::move(group))}, true);
    pair.list().fields = {"grouper", "list"};
    out.push_back(std::move(pair));
    i = j;
  }
  return Value::list(std::move(out));
}

// Python's urllib.parse.quote of the UTF-8 bytes: letters, digits and _.-~ stay, and '/' unless
// for a query string, where a space becomes '+'.
std::string url_quote(const Value& v, bool for_qs) {
  const std::string s = to_str(v);
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' || (c == '/' && !for_qs)) {
      out += ch;
    } else if (c == ' ' && for_qs) {
      out += '+';
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// urlencode: a string (or any non-iterable) quoted; a dict or a sequence of pairs as a query
// string k=v&k=v.
Value urlencode(Interp& in, const Value& v, CallArgs&) {
  if (v.is_string() || !(v.is_list() || v.is_dict() || v.is_undefined())) {
    return Value::string(url_quote(v, false));
  }
  std::string out;
  auto add = [&](const Value& k, const Value& x) {
    if (!out.empty()) out += '&';
    out += url_quote(k, true) + "=" + url_quote(x, true);
    in.check_size(out.size());
  };
  if (v.is_dict()) {
    for (const auto& [k, x] : v.dict_ref().items) add(dict_key_value(k), x);
  } else {
    for (const Value& item : in.iterate(v)) {
      const std::vector<Value> kv = in.iterate(item);
      if (kv.size() != 2) {
        fail(kv.size() < 2
                 ? "not enough values to unpack (expected 2, got " + std::to_string(kv.size()) + ")"
                 : "too many values to unpack (expected 2)");
      }
      add(kv[0], kv[1]);
    }
  }
  return Value::string(std::move(out));
}

// filesizeformat(binary=False): "1 Byte", "999 Bytes", "1.5 kB" (powers of 1000) or "1.5 KiB"
// (powers of 1024), one decimal, up to yotta / yobi.
Value filesizeformat(Interp&, const Value& v, CallArgs& a) {
  const bool binary = arg_bool(a, 0, "binary", false);
  v.require_defined();
  double bytes = 0;
  if (v.is_number()) {
    bytes = v.as_float();
  } else if (v.is_string()) {
    const std::optional<double> f = py_float(v.str());
    if (!f) fail("could not convert string to float: " + repr(v));
    bytes = *f;
  } else {
    fail("float() argument must be a string or a real number, not '" + type_name(v) + "'");
  }
  static const char* const decimal[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  static const char* const binary_prefixes[] = {"KiB", "MiB", "GiB", "TiB",
                                                "PiB", "EiB", "ZiB", "YiB"};
  // base^(i + 2) exactly (10^27 = 2^27 * 5^27 fits a long double's 64-bit mantissa), so that the
  // comparison is exact as Python's float < int is.
  const long double base = binary ? 1024.0L : 1000.0L;
  if (bytes == 1) return Value::string("1 Byte");
  if (bytes < base) {
    if (!std::isfinite(bytes)) fail("cannot convert float infinity to integer");
    return Value::string(std::to_string(static_cast<int64_t>(bytes)) + " Bytes");
  }
  long double unit = base;
  const char* prefix = nullptr;
  for (int i = 0; i < 8; ++i) {
    unit *= base;
    prefix = binary ? binary_prefixes[i] : decimal[i];
    if (bytes < unit) break;
  }
  const double x = static_cast<double>(base) * bytes / static_cast<double>(unit);
  if (std::isnan(x)) return Value::string(std::string("nan ") + prefix);
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.1f %s", x, prefix);
  return Value::string(buf);
}

// xmlattr(autospace=True): ' key="value"' for each item whose value is neither none nor
// undefined, both escaped; a key with a space, '/', '>' or '=' is refused.
Value xmlattr(Interp&, const Value& v, CallArgs& a) {
  v.require_defined();
  if (!v.is_dict()) fail("'" + type_name(v) + "' object has no attribute 'items'");
  const bool autospace = arg_bool(a, 0, "autospace", true);
  std::string out;
  for (const auto& [k, x] : v.dict_ref().items) {
    if (x.is_none() || x.is_undefined()) continue;
    const Value key = dict_key_value(k);
    const std::string name = to_str(key);
    if (name.find_first_of(" \t\n\r\f\v/>=") != std::string::npos) {
      fail("Invalid character in attribute name: " + repr(key));
    }
    if (!out.empty() || autospace) out += ' ';
    out += html_escape(name) + "=\"" + html_escape(to_str(x)) + "\"";
  }
  return Value::string(std::move(out));
}

Value forceescape(Interp&, const Value& v, CallArgs&) {
  return Value::string(html_escape(to_str(v)));
}

}  // namespace

const std::unordered_map<std::string, FilterFn>& layout_filters() {
  static const std::unordered_map<std::string, FilterFn> table = {
      {"batch", batch},
      {"center", center},
      {"filesizeformat", filesizeformat},
      {"forceescape", forceescape},
      {"groupby", groupby},
      {"slice", slice},
      {"truncate", truncate},
      {"urlencode", urlencode},
      {"wordcount", wordcount},
      {"xmlattr", xmlattr},
  };
  return table;
}

}  // namespace qkv::chat
