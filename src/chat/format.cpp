// Python's str.format (what Jinja's sandbox runs for '...'.format(...)): replacement fields
// {}, {0}, {name}, with .attr and [key] steps ({0.role}, {m[content]}), an optional !s / !r / !a
// conversion and a format spec [[fill]align][sign][#][0][width][grouping][.precision][type] that
// may hold fields of its own ({:>{w}}), "{{" and "}}" for braces.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/builtins.h"
#include "chat/interp.h"
#include "core/utf8.h"

namespace qkv::chat {
namespace {

struct Spec {
  std::string fill = " ";
  char align = 0;  // '<', '>', '^', '=' or 0 (the type's default)
  char sign = '-';
  bool alt = false;   // '#': 0x / 0o / 0b prefixes, a float's point kept
  bool zero = false;  // a '0' before the width: '0' fill, after the sign for numbers
  int64_t width = 0;
  char group = 0;  // ',' or '_': thousands separators
  int64_t precision = -1;
  char type = 0;
};

bool is_align(char c) {
  return c == '<' || c == '>' || c == '^' || c == '=';
}

int64_t read_number(const std::string& s, size_t& i) {
  int64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    n = n * 10 + (s[i++] - '0');
    if (n > 100000) fail("format spec: width or precision too large");
  }
  return n;
}

Spec parse_spec(const std::string& s) {
  Spec sp;
  size_t i = 0;
  const std::vector<std::string_view> cps = code_points(s);
  if (cps.size() >= 2 && cps[1].size() == 1 && is_align(cps[1][0])) {
    sp.fill = std::string(cps[0]);
    sp.align = cps[1][0];
    i = cps[0].size() + 1;
  } else if (!s.empty() && is_align(s[0])) {
    sp.align = s[0];
    i = 1;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) sp.sign = s[i++];
  if (i < s.size() && s[i] == '#') {
    sp.alt = true;
    ++i;
  }
  if (i < s.size() && s[i] == '0') {
    sp.zero = sp.align == 0;
    ++i;
  }
  sp.width = read_number(s, i);
  if (i < s.size() && (s[i] == ',' || s[i] == '_')) sp.group = s[i++];
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) {
      fail("Format specifier missing precision");
    }
    sp.precision = read_number(s, i);
  }
  if (i < s.size()) sp.type = s[i++];
  if (i != s.size()) fail("Invalid format specifier '" + s + "'");
  return sp;
}

// Pads `body` (its sign, if any, already in `sign`) to the spec's width.
std::string pad(const Spec& sp, const std::string& sign, const std::string& body, char dflt) {
  const int64_t n = static_cast<int64_t>(code_point_count(sign) + code_point_count(body));
  const char align = sp.align ? sp.align : dflt;
  if (n >= sp.width) return sign + body;
  std::string fill;
  for (int64_t k = 0; k < sp.width - n; ++k) fill += sp.fill;
  if (align == '<') return sign + body + fill;
  if (align == '=') return sign + fill + body;
  if (align == '^') {
    const int64_t left = (sp.width - n) / 2;
    std::string l;
    std::string r;
    for (int64_t k = 0; k < left; ++k) l += sp.fill;
    for (int64_t k = left; k < sp.width - n; ++k) r += sp.fill;
    return l + sign + body + r;
  }
  return fill + sign + body;
}

std::string format_value(const Value& v, const std::string& spec_text) {
  if (spec_text.empty()) return to_str(v);
  Spec sp = parse_spec(spec_text);
  if (sp.zero) {
    sp.fill = "0";
    sp.align = v.is_string() ? '<' : '=';
  }
  const char type = sp.type;
  if (v.is_string() || v.is_none() || v.is_list() || v.is_dict() || v.is_undefined()) {
    if (!v.is_string()) {
      // Python's object.__format__ refuses a non-empty spec for these.
      fail("unsupported format string passed to " + type_name(v) + ".__format__");
    }
    if (type != 0 && type != 's') {
      fail("Unknown format code '" + std::string(1, type) + "' for object of type 'str'");
    }
    if (sp.sign != '-') fail("Sign not allowed in string format specifier");
    if (sp.align == '=') fail("'=' alignment not allowed in string format specifier");
    std::string body = v.str();
    if (sp.precision >= 0) {
      const auto cps = code_points(body);
      if (static_cast<size_t>(sp.precision) < cps.size()) {
        std::string cut;
        for (int64_t k = 0; k < sp.precision; ++k) cut += cps[static_cast<size_t>(k)];
        body = std::move(cut);
      }
    }
    return pad(sp, "", body, '<');
  }
  const bool is_int = v.is_int_like() && type != 'e' && type != 'E' && type != 'f' && type != 'F' &&
                      type != 'g' && type != 'G' && type != '%';
  std::string body;
  bool negative = false;
  std::string prefix;  // '#': 0x / 0o / 0b, between the sign and the zero padding
  if (is_int) {
    if (type != 0 && type != 'd' && type != 'x' && type != 'X' && type != 'o' && type != 'b' &&
        type != 'c') {
      fail("Unknown format code '" + std::string(1, type) + "' for object of type 'int'");
    }
    if (sp.precision >= 0) fail("Precision not allowed in integer format specifier");
    if (type == 'c') {
      const int64_t cp = v.as_int();
      if (cp < 0 || cp >= 0x110000) fail("%c arg not in range(0x110000)");
      std::string ch;
      core::append_utf8(ch, static_cast<uint32_t>(cp));
      return pad(sp, "", ch, '<');
    }
    if (sp.alt && type != 0 && type != 'd') prefix = std::string("0") + type;
    const int64_t i = v.as_int();
    negative = i < 0;
    uint64_t m = negative ? 0 - static_cast<uint64_t>(i) : static_cast<uint64_t>(i);
    const int base = type == 'x' || type == 'X' ? 16 : type == 'o' ? 8 : type == 'b' ? 2 : 10;
    const char* digits = type == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
      body.insert(body.begin(), digits[m % static_cast<uint64_t>(base)]);
      m /= static_cast<uint64_t>(base);
    } while (m != 0);
  } else {
    if (type != 0 && type != 'e' && type != 'E' && type != 'f' && type != 'F' && type != 'g' &&
        type != 'G' && type != '%') {
      fail("Unknown format code '" + std::string(1, type) + "' for object of type 'float'");
    }
    double x = v.as_float();
    negative = std::signbit(x) && !std::isnan(x);
    x = std::fabs(x);
    if (type == 0 && sp.precision < 0) {
      body = float_repr(x);
    } else if (std::isinf(x) || std::isnan(x)) {
      body = std::isnan(x) ? "nan" : "inf";
      if (type == 'E' || type == 'F' || type == 'G') {
        for (char& c : body) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      if (type == '%') body += '%';
    } else {
      const int prec = static_cast<int>(sp.precision >= 0 ? sp.precision : 6);
      char t = type == 0 ? 'g' : type == '%' ? 'f' : type;
      char fmt[16];
      std::snprintf(fmt, sizeof fmt, "%%%s.%d%c", sp.alt ? "#" : "", prec, t);
      // Sized by a first pass: '{:.600f}' writes more than any fixed buffer would hold.
      const double arg = type == '%' ? x * 100 : x;
      const int n = std::snprintf(nullptr, 0, fmt, arg);
      if (n < 0) fail("format: cannot format " + float_repr(x));
      body.assign(static_cast<size_t>(n) + 1, '\0');
      std::snprintf(body.data(), body.size(), fmt, arg);
      body.resize(static_cast<size_t>(n));
      if (type == '%') body += '%';
      if (type == 0 && body.find_first_of(".en") == std::string::npos) {
        body += ".0";  // format(1.0, '.3') is '1.0', C's %g gives "1"
      }
    }
  }
  if (sp.group) {
    if (is_int && type != 0 && type != 'd') {
      fail("Cannot specify '" + std::string(1, sp.group) + "' with '" + std::string(1, type) +
           "'.");
    }
    size_t digits = 0;
    while (digits < body.size() && std::isdigit(static_cast<unsigned char>(body[digits]))) ++digits;
    std::string grouped;
    for (size_t k = 0; k < digits; ++k) {
      if (k > 0 && (digits - k) % 3 == 0) grouped += sp.group;
      grouped += body[k];
    }
    body = grouped + body.substr(digits);
  }
  const std::string sign = negative ? "-" : sp.sign == '+' ? "+" : sp.sign == ' ' ? " " : "";
  return pad(sp, sign + prefix, body, '>');
}

}  // namespace

namespace {

struct FormatState {
  size_t auto_index = 0;
  bool manual = false;
  bool automatic = false;
};

// The value a field name picks: an argument ("", "0", "name"), then .attr and [key] steps as
// Jinja's sandboxed formatter takes them (getattr / getitem of the environment).
Value field_value(Interp& in, const std::string& name, const CallArgs& a, FormatState& st) {
  size_t end = name.find_first_of(".[");
  if (end == std::string::npos) end = name.size();
  const std::string first = name.substr(0, end);
  Value v;
  if (first.empty() || std::all_of(first.begin(), first.end(), [](char d) {
        return std::isdigit(static_cast<unsigned char>(d));
      })) {
    size_t index = 0;
    if (first.empty()) {
      if (st.manual)
        fail("cannot switch from manual field specification to automatic field numbering");
      st.automatic = true;
      index = st.auto_index++;
    } else {
      if (st.automatic)
        fail("cannot switch from automatic field numbering to manual field specification");
      st.manual = true;
      if (first.size() > 9) fail("Too many decimal digits in format string");
      index = static_cast<size_t>(std::stoul(first));
    }
    if (index >= a.pos.size()) {
      fail("Replacement index " + std::to_string(index) +
           " out of range for positional args tuple");
    }
    v = a.pos[index];
  } else {
    const Value* kw = a.kwarg(first);
    if (!kw) fail("KeyError: '" + first + "'");
    v = *kw;
  }
  for (size_t i = end; i < name.size();) {
    if (name[i] == '.') {
      size_t j = i + 1;
      while (j < name.size() && name[j] != '.' && name[j] != '[') ++j;
      if (j == i + 1) fail("Empty attribute in format string");
      v = in.getattr(v, name.substr(i + 1, j - i - 1));
      i = j;
    } else if (name[i] == '[') {
      const size_t close = name.find(']', i + 1);
      if (close == std::string::npos) fail("Missing ']' in format string");
      const std::string key = name.substr(i + 1, close - i - 1);
      if (key.empty()) fail("Empty attribute in format string");
      const bool digits = std::all_of(key.begin(), key.end(), [](char d) {
        return std::isdigit(static_cast<unsigned char>(d));
      });
      v = in.getitem(
          v, digits && key.size() < 19 ? Value::integer(std::stoll(key)) : Value::string(key));
      i = close + 1;
      if (i < name.size() && name[i] != '.' && name[i] != '[') {
        fail("Only '.' or '[' may follow ']' in format field specifier");
      }
    } else {
      fail("Only '.' or '[' may follow ']' in format field specifier");
    }
  }
  return v;
}

// str.format's loop; a format spec may hold fields of its own, one level down (Python's
// recursion depth of 2).
std::string format_with(Interp& in, const std::string& s, const CallArgs& a, FormatState& st,
                        int depth) {
  if (depth <= 0) fail("Max string recursion exceeded");
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '}') {
      if (i + 1 < s.size() && s[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      fail("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    // The field runs to the '}' that balances its '{' (a spec may nest fields).
    size_t close = i + 1;
    int level = 1;
    for (; close < s.size(); ++close) {
      if (s[close] == '[') {
        const size_t rb = s.find(']', close);
        if (rb != std::string::npos && s.find_first_of(":!}", close) > rb) close = rb;
        continue;
      }
      if (s[close] == '{') ++level;
      if (s[close] == '}' && --level == 0) break;
    }
    if (close >= s.size()) fail("expected '}' before end of string");
    const std::string field = s.substr(i + 1, close - i - 1);
    i = close;
    // name [!conversion] [:spec]; an index [...] in the name may hold ':' or '!'.
    size_t name_end = 0;
    while (name_end < field.size() && field[name_end] != ':' && field[name_end] != '!') {
      if (field[name_end] == '[') {
        const size_t rb = field.find(']', name_end);
        if (rb == std::string::npos) break;
        name_end = rb;
      }
      ++name_end;
    }
    const std::string name = field.substr(0, name_end);
    char conversion = 0;
    std::string spec;
    size_t p = name_end;
    if (p < field.size() && field[p] == '!') {
      if (p + 1 >= field.size()) fail("end of string while looking for conversion specifier");
      conversion = field[p + 1];
      if (conversion != 's' && conversion != 'r' && conversion != 'a') {
        fail(std::string("Unknown conversion specifier ") + conversion);
      }
      p += 2;
      if (p < field.size() && field[p] != ':') fail("expected ':' after conversion specifier");
    }
    if (p < field.size()) spec = field.substr(p + 1);
    const Value v = field_value(in, name, a, st);
    if (spec.find('{') != std::string::npos) spec = format_with(in, spec, a, st, depth - 1);
    const Value shown = conversion == 'r'   ? Value::string(repr(v))
                        : conversion == 's' ? Value::string(to_str(v))
                        : conversion == 'a'
                            ? Value::string(py_percent_format(in, "%a", Value::list({v}, true)))
                            : v;
    out += format_value(shown, spec);
    in.check_size(out.size());
  }
  return out;
}

}  // namespace

std::string py_format(Interp& in, const std::string& s, const CallArgs& a) {
  FormatState st;
  return format_with(in, s, a, st, 2);
}

}  // namespace qkv::chat
