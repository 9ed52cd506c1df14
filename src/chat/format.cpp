// Python's str.format (what Jinja's sandbox runs for '...'.format(...)): replacement fields
// {}, {0}, {name} with an optional !s / !r conversion and a format spec
// [[fill]align][sign][0][width][.precision][type], "{{" and "}}" for braces.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/builtins.h"
#include "chat/interp.h"

namespace qkv::chat {
namespace {

struct Spec {
  std::string fill = " ";
  char align = 0;  // '<', '>', '^', '=' or 0 (the type's default)
  char sign = '-';
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
  if (is_int) {
    if (type != 0 && type != 'd' && type != 'x' && type != 'X' && type != 'o' && type != 'b') {
      fail("Unknown format code '" + std::string(1, type) + "' for object of type 'int'");
    }
    if (sp.precision >= 0) fail("Precision not allowed in integer format specifier");
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
      std::snprintf(fmt, sizeof fmt, "%%.%d%c", prec, t);
      char buf[512];
      std::snprintf(buf, sizeof buf, fmt, type == '%' ? x * 100 : x);
      body = buf;
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
  return pad(sp, sign, body, '>');
}

}  // namespace

std::string py_format(Interp& in, const std::string& s, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  bool manual = false;
  bool automatic = false;
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
    const size_t close = s.find('}', i + 1);
    if (close == std::string::npos) fail("expected '}' before end of string");
    const std::string field = s.substr(i + 1, close - i - 1);
    if (field.find('{') != std::string::npos) {
      fail("format field '" + field + "': nested replacement fields are not supported");
    }
    i = close;
    std::string name = field;
    std::string spec;
    char conversion = 0;
    if (const size_t colon = name.find(':'); colon != std::string::npos) {
      spec = name.substr(colon + 1);
      name.resize(colon);
    }
    if (const size_t bang = name.find('!'); bang != std::string::npos) {
      if (bang + 2 != name.size() || (name[bang + 1] != 's' && name[bang + 1] != 'r')) {
        fail("format field '" + field + "': expected the conversion !s or !r");
      }
      conversion = name[bang + 1];
      name.resize(bang);
    }
    if (name.find_first_of(".[") != std::string::npos) {
      fail("format field '" + field + "': attribute and index lookups are not supported");
    }
    const Value* v = nullptr;
    if (name.empty() || std::all_of(name.begin(), name.end(), [](char d) {
          return std::isdigit(static_cast<unsigned char>(d));
        })) {
      size_t index = 0;
      if (name.empty()) {
        if (manual)
          fail("cannot switch from manual field specification to automatic field numbering");
        automatic = true;
        index = auto_index++;
      } else {
        if (automatic)
          fail("cannot switch from automatic field numbering to manual field specification");
        manual = true;
        if (name.size() > 9) fail("Too many decimal digits in format string");
        index = static_cast<size_t>(std::stoul(name));
      }
      if (index >= a.pos.size()) {
        fail("Replacement index " + std::to_string(index) +
             " out of range for positional args tuple");
      }
      v = &a.pos[index];
    } else {
      v = a.kwarg(name);
      if (!v) fail("KeyError: '" + name + "'");
    }
    const Value shown = conversion == 'r'   ? Value::string(repr(*v))
                        : conversion == 's' ? Value::string(to_str(*v))
                                            : *v;
    out += format_value(shown, spec);
    in.check_size(out.size());
  }
  return out;
}

}  // namespace qkv::chat
