// Python's printf-style string formatting, str % args (and Jinja's format filter, which is
// value % args): conversions %[(key)][flags][width][.precision][length]type with the types
// d i u o x X e E f F g G c r s a, '*' widths, "%%", a tuple of arguments or one argument, a
// mapping for %(key)s, and Python's errors for a count or type that does not fit.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "chat/builtins.h"
#include "chat/interp.h"
#include "core/utf8.h"

namespace qkv::chat {
namespace {

struct Conversion {
  bool left = false;   // '-'
  bool plus = false;   // '+'
  bool space = false;  // ' '
  bool alt = false;    // '#'
  bool zero = false;   // '0'
  int64_t width = -1;
  int64_t precision = -1;
  char type = 0;
};

// The arguments as CPython's PyUnicode_Format walks them: a tuple is the argument list; any
// other value is the one argument, and a dict or list (Python's mapping check) also serves
// %(key)s. A key makes its value the one argument left (so "%(a)s %s" runs out).
class Args {
 public:
  explicit Args(const Value& v) : current_(&v) {
    if (v.is_list() && v.list().tuple) {
      count_ = static_cast<int64_t>(v.list().items.size());
      index_ = 0;
    } else {
      mapping_ = v.is_dict() || v.is_list() ? &v : nullptr;
    }
  }

  const Value& next() {
    if (index_ >= count_) fail("TypeError: not enough arguments for format string");
    const int64_t i = index_++;
    return count_ < 0 ? *current_ : current_->list().items[static_cast<size_t>(i)];
  }

  void select(const std::string& key) {
    if (!mapping_) fail("TypeError: format requires a mapping");
    if (mapping_->is_list()) fail("TypeError: list indices must be integers or slices, not str");
    const Value* v = mapping_->dict_ref().find(string_key(key));
    if (!v) fail("KeyError: '" + key + "'");
    current_ = v;
    count_ = -1;
    index_ = -2;
  }

  // Every argument must be used, unless they came as a mapping.
  void finish() const {
    if (index_ < count_ && !mapping_) {
      fail("TypeError: not all arguments converted during string formatting");
    }
  }

 private:
  const Value* current_;
  const Value* mapping_ = nullptr;
  int64_t count_ = -1;  // -1: one argument, current_ itself
  int64_t index_ = -2;
};

int64_t star_arg(Args& args) {
  const Value& v = args.next();
  if (!v.is_int_like()) fail("TypeError: * wants int");
  return v.as_int();
}

// repr() with non-ASCII code points escaped, as Python's ascii() writes them.
std::string ascii_repr(const Value& v) {
  const std::string text = repr(v);
  std::string out;
  for (std::string_view cp : code_points(text)) {
    if (cp.size() == 1) {
      out += cp;
      continue;
    }
    append_cp_escape(out, decode_cp(cp));
  }
  return out;
}

// int(v) for %d, %i, %u: Python truncates a float.
int64_t integer_arg(const Value& v, char type) {
  if (v.is_int_like()) return v.as_int();
  if (v.is(Value::Kind::Float)) {
    const double f = v.as_float();
    if (std::isnan(f)) fail("ValueError: cannot convert float NaN to integer");
    if (std::isinf(f)) fail("OverflowError: cannot convert float infinity to integer");
    const double t = std::trunc(f);
    // 2^63 is exact as a double; every double below it in magnitude fits.
    if (t >= 9223372036854775808.0 || t < -9223372036854775808.0) {
      fail("integer " + float_repr(t) + " is beyond 64 bits");
    }
    return static_cast<int64_t>(t);
  }
  v.require_defined();
  fail(std::string("TypeError: %") + type + " format: a real number is required, not " +
       type_name(v));
}

// Digits of an integer conversion (d o x X), without the sign and the '#' prefix; the precision's
// leading zeros included.
std::string integer_digits(uint64_t m, const Conversion& c, Interp& in) {
  const int base = c.type == 'o' ? 8 : c.type == 'x' || c.type == 'X' ? 16 : 10;
  const char* digits = c.type == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string body;
  do {
    body.insert(body.begin(), digits[m % static_cast<uint64_t>(base)]);
    m /= static_cast<uint64_t>(base);
  } while (m != 0);
  if (c.precision > static_cast<int64_t>(body.size())) {
    in.check_size(static_cast<size_t>(c.precision));  // before the zeros are allocated
    body.insert(0, static_cast<size_t>(c.precision) - body.size(), '0');
  }
  return body;
}

// The C library's %e / %f / %g of |x| (correctly rounded from the binary value, as Python's own
// formatter is); Python writes non-finite values as "inf" / "nan" (upper case for E F G).
std::string float_digits(double x, const Conversion& c, Interp& in) {
  if (std::isinf(x) || std::isnan(x)) {
    const bool upper = c.type == 'E' || c.type == 'F' || c.type == 'G';
    return std::isnan(x) ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf");
  }
  int64_t prec = c.precision >= 0 ? c.precision : 6;
  if (c.type == 'g' || c.type == 'G') {
    // Without '#' no more than a double's exact decimal digits (at most 767 significant) are
    // written, and every precision past 1100 writes the same; the C library would still work
    // through the whole precision (a precision of 10^9 took 22 s and 4 GB).
    if (!c.alt) prec = std::min<int64_t>(prec, 1100);
  }
  // %e / %f (and %#g) write at least the precision's digits: refused before the C library
  // allocates them.
  in.check_size(static_cast<size_t>(prec));
  char fmt[32];
  std::snprintf(fmt, sizeof fmt, "%%%s.%d%c", c.alt ? "#" : "", static_cast<int>(prec), c.type);
  const int n = std::snprintf(nullptr, 0, fmt, x);
  if (n < 0) fail("format: cannot format " + float_repr(x));
  in.check_size(static_cast<size_t>(n));
  std::string body(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(body.data(), body.size(), fmt, x);
  body.resize(static_cast<size_t>(n));
  return body;
}

// Pads sign + body to the width: left-aligned with '-', zeros between sign and body with '0'
// (numbers only), spaces on the left otherwise.
void append_padded(std::string& out, const Conversion& c, const std::string& sign,
                   const std::string& body, bool numeric, Interp& in) {
  const size_t n = code_point_count(sign) + code_point_count(body);
  const size_t fill = c.width > static_cast<int64_t>(n) ? static_cast<size_t>(c.width) - n : 0;
  in.check_size(out.size() + sign.size() + body.size() + fill);
  if (c.left) {
    out += sign;
    out += body;
    out.append(fill, ' ');
  } else if (c.zero && numeric) {
    out += sign;
    out.append(fill, '0');
    out += body;
  } else {
    out.append(fill, ' ');
    out += sign;
    out += body;
  }
}

void convert(std::string& out, const Conversion& c, const Value& v, Interp& in) {
  switch (c.type) {
    case 's':
    case 'r':
    case 'a': {
      std::string body = c.type == 's'   ? to_str(v)
                         : c.type == 'r' ? (v.is_undefined() ? "Undefined" : repr(v))
                                         : (v.is_undefined() ? "Undefined" : ascii_repr(v));
      if (c.precision >= 0) {
        const auto cps = code_points(body);
        if (static_cast<size_t>(c.precision) < cps.size()) {
          body.resize(
              static_cast<size_t>(cps[static_cast<size_t>(c.precision)].data() - body.data()));
        }
      }
      append_padded(out, c, "", body, false, in);
      return;
    }
    case 'c': {
      std::string body;
      if (v.is_string() && code_point_count(v.str()) == 1) {
        body = v.str();
      } else if (v.is_int_like()) {
        const int64_t cp = v.as_int();
        if (cp < 0 || cp >= 0x110000) fail("OverflowError: %c arg not in range(0x110000)");
        core::append_utf8(body, static_cast<uint32_t>(cp));
      } else {
        fail("TypeError: %c requires int or char");
      }
      append_padded(out, c, "", body, false, in);
      return;
    }
    case 'd':
    case 'i':
    case 'u':
    case 'o':
    case 'x':
    case 'X': {
      int64_t i = 0;
      if (c.type == 'o' || c.type == 'x' || c.type == 'X') {
        if (!v.is_int_like()) {
          fail(std::string("TypeError: %") + c.type + " format: an integer is required, not " +
               type_name(v));
        }
        i = v.as_int();
      } else {
        i = integer_arg(v, c.type);
      }
      const uint64_t m = i < 0 ? 0 - static_cast<uint64_t>(i) : static_cast<uint64_t>(i);
      std::string sign = i < 0 ? "-" : c.plus ? "+" : c.space ? " " : "";
      // The '#' prefix goes before the zero padding: '%#05x' % 255 is 0x0ff.
      if (c.alt && c.type != 'd' && c.type != 'i' && c.type != 'u') {
        sign += c.type == 'o' ? "0o" : c.type == 'x' ? "0x" : "0X";
      }
      append_padded(out, c, sign, integer_digits(m, c, in), true, in);
      return;
    }
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G': {
      if (!v.is_number()) {
        v.require_defined();
        fail("TypeError: must be real number, not " + type_name(v));
      }
      const double x = v.as_float();
      const bool negative = std::signbit(x) && !std::isnan(x);
      const std::string sign = negative ? "-" : c.plus ? "+" : c.space ? " " : "";
      append_padded(out, c, sign, float_digits(std::fabs(x), c, in), true, in);
      return;
    }
    default:
      break;
  }
}

}  // namespace

std::string py_percent_format(Interp& in, const std::string& fmt, const Value& operand) {
  Args args(operand);
  std::string out;
  const auto is_digit = [](char ch) { return ch >= '0' && ch <= '9'; };
  for (size_t i = 0; i < fmt.size();) {
    const size_t pct = fmt.find('%', i);
    out.append(fmt, i, pct == std::string::npos ? std::string::npos : pct - i);
    if (pct == std::string::npos) break;
    size_t p = pct + 1;
    if (p < fmt.size() && fmt[p] == '%') {
      out += '%';
      i = p + 1;
      continue;
    }
    if (p < fmt.size() && fmt[p] == '(') {
      // The key runs to the matching ')', nested parentheses included.
      int depth = 1;
      const size_t start = ++p;
      while (p < fmt.size() && depth > 0) {
        if (fmt[p] == '(') ++depth;
        if (fmt[p] == ')') --depth;
        ++p;
      }
      if (depth > 0) fail("ValueError: incomplete format key");
      args.select(fmt.substr(start, p - 1 - start));
    }
    Conversion c;
    for (; p < fmt.size(); ++p) {
      const char f = fmt[p];
      if (f == '-') {
        c.left = true;
      } else if (f == '+') {
        c.plus = true;
      } else if (f == ' ') {
        c.space = true;
      } else if (f == '#') {
        c.alt = true;
      } else if (f == '0') {
        c.zero = true;
      } else {
        break;
      }
    }
    // A number or '*' (the next argument; a negative '*' width left-aligns).
    const auto number = [&](int64_t& into) {
      if (p < fmt.size() && fmt[p] == '*') {
        into = star_arg(args);
        ++p;
        if (into < 0 && &into == &c.width) {
          c.left = true;
          into = -into;
        }
        return;
      }
      if (p < fmt.size() && is_digit(fmt[p])) {
        into = 0;
        while (p < fmt.size() && is_digit(fmt[p])) {
          into = into * 10 + (fmt[p++] - '0');
          if (into > static_cast<int64_t>(std::numeric_limits<int32_t>::max())) {
            fail("ValueError: width too big");
          }
        }
      }
    };
    number(c.width);
    if (p < fmt.size() && fmt[p] == '.') {
      ++p;
      c.precision = 0;
      number(c.precision);
      if (c.precision < 0) c.precision = 0;
    }
    while (p < fmt.size() && (fmt[p] == 'h' || fmt[p] == 'l' || fmt[p] == 'L')) ++p;
    if (p >= fmt.size()) fail("ValueError: incomplete format");
    c.type = fmt[p];
    if (c.left) c.zero = false;
    const Value& v = args.next();
    static const std::string kTypes = "diuoxXeEfFgGcrsa";
    if (kTypes.find(c.type) == std::string::npos) {
      // Python shows a character outside printable ASCII as '?', with its code point.
      const uint32_t ch = decode_cp(code_points(std::string_view(fmt).substr(p, 4))[0]);
      char buf[96];
      std::snprintf(buf, sizeof buf,
                    "ValueError: unsupported format character '%c' (0x%x) at index %zu",
                    ch >= 32 && ch < 127 ? static_cast<char>(ch) : '?', ch,
                    code_point_count(std::string_view(fmt).substr(0, p)));
      fail(buf);
    }
    convert(out, c, v, in);
    in.check_size(out.size());
    i = p + 1;
  }
  args.finish();
  return out;
}

}  // namespace qkv::chat
