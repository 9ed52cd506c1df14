// Globals (range, namespace, dict, raise_exception, strftime_now) and the Python str and dict
// methods templates call (.strip(), .split(), .startswith(), .get(), .items(), ...).
#include <algorithm>
#include <cctype>
#include <ctime>

#include "chat/builtins.h"
#include "chat/interp.h"

namespace qkv::chat {
namespace {

const char* const kMonths[] = {"January",   "February", "March",    "April",
                               "May",       "June",     "July",     "August",
                               "September", "October",  "November", "December"};
const char* const kDays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                             "Friday", "Saturday", "Sunday"};

}  // namespace

Value Interp::global(std::string_view name) {
  if (name == "range") {
    return Value::callable("range", [](Interp& in, CallArgs& a) {
      int64_t start = 0;
      int64_t stop = 0;
      int64_t step = 1;
      auto get = [](const Value& v) {
        v.require_defined();
        if (!v.is_int_like())
          fail("'" + type_name(v) + "' object cannot be interpreted as an integer");
        return v.as_int();
      };
      if (a.pos.size() == 1) {
        stop = get(a.pos[0]);
      } else if (a.pos.size() == 2 || a.pos.size() == 3) {
        start = get(a.pos[0]);
        stop = get(a.pos[1]);
        if (a.pos.size() == 3) step = get(a.pos[2]);
      } else {
        fail("range expected 1 to 3 arguments, got " + std::to_string(a.pos.size()));
      }
      if (step == 0) fail("range() arg 3 must not be zero");
      const __int128 span =
          step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
      const __int128 n =
          span <= 0 ? 0 : (span + (step > 0 ? step : -step) - 1) / (step > 0 ? step : -step);
      // The sandbox's limit (jinja2.sandbox.MAX_RANGE).
      if (n > 100000)
        fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      std::vector<Value> out;
      for (int64_t i = 0; i < static_cast<int64_t>(n); ++i)
        out.push_back(Value::integer(start + i * step));
      (void)in;
      return Value::list(std::move(out));
    });
  }
  if (name == "namespace" || name == "dict") {
    const bool ns = name == "namespace";
    return Value::callable(std::string(name), [ns](Interp&, CallArgs& a) {
      auto d = std::make_shared<Dict>();
      for (const Value& p : a.pos) {
        if (!p.is_dict()) fail(std::string(ns ? "namespace" : "dict") + "() takes a mapping");
        for (const auto& [k, v] : p.dict_ref().items) d->set(k, v);
      }
      for (const auto& [k, v] : a.kw) d->set(k, v);
      return ns ? Value::ns(d) : Value::dict(d);
    });
  }
  if (name == "cycler") {
    // cycler(*items): next() returns the current item and moves on; current; reset().
    return Value::callable("cycler", [](Interp&, CallArgs& a) {
      if (a.pos.empty()) fail("at least one item has to be provided");
      struct State {
        std::vector<Value> items;
        size_t pos = 0;
      };
      auto st = std::make_shared<State>(State{a.pos, 0});
      auto d = std::make_shared<Dict>();
      // The dict holds the callables; they see it weakly, so that neither keeps the other alive.
      std::weak_ptr<Dict> weak = d;
      d->set("current", st->items[0]);
      d->set("next", Value::callable("cycler.next", [st, weak](Interp&, CallArgs&) {
               const Value v = st->items[st->pos];
               st->pos = (st->pos + 1) % st->items.size();
               if (auto self = weak.lock()) self->set("current", st->items[st->pos]);
               return v;
             }));
      d->set("reset", Value::callable("cycler.reset", [st, weak](Interp&, CallArgs&) {
               st->pos = 0;
               if (auto self = weak.lock()) self->set("current", st->items[0]);
               return Value::none();
             }));
      return Value::ns(d);
    });
  }
  if (name == "joiner") {
    // joiner(sep=", "): "" the first time it is called, then sep.
    return Value::callable("joiner", [](Interp&, CallArgs& a) {
      const std::string sep = arg_str(a, 0, "sep", ", ");
      auto used = std::make_shared<bool>(false);
      return Value::callable("joiner", [sep, used](Interp&, CallArgs&) {
        const bool first = !*used;
        *used = true;
        return Value::string(first ? "" : sep);
      });
    });
  }
  if (name == "raise_exception") {
    return Value::callable("raise_exception", [](Interp&, CallArgs& a) -> Value {
      const Value* m = arg(a, 0, "message");
      throw EvalError{m ? to_str(*m) : std::string(), true};
    });
  }
  if (name == "strftime_now") {
    return Value::callable("strftime_now", [](Interp& in, CallArgs& a) {
      const Value* f = arg(a, 0, "format");
      if (!f || !f->is_string()) fail("strftime_now needs a format string");
      return Value::string(in.strftime(f->str()));
    });
  }
  return Value::undefined("'" + std::string(name) + "' is undefined");
}

std::string Interp::strftime(const std::string& format) const {
  int64_t t = 0;
  if (now_) {
    t = *now_;
  } else {
    const std::time_t raw = std::time(nullptr);
    std::tm local{};
    localtime_r(&raw, &local);
    t = static_cast<int64_t>(timegm(&local));
  }
  // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
  int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
  const int64_t secs = t - days * 86400;
  const int64_t weekday = ((days % 7) + 7 + 3) % 7;  // 1970-01-01 was a Thursday (Monday = 0)
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy_mar + 2) / 153;
  const int64_t day = doy_mar - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2);
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  static const int cum[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  const int64_t yday = cum[month - 1] + day + (leap && month > 2 ? 1 : 0);
  const int64_t hour = secs / 3600;
  const int64_t minute = secs / 60 % 60;
  const int64_t second = secs % 60;

  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 >= format.size()) {
      out += format[i];
      continue;
    }
    bool no_pad = false;
    char c = format[++i];
    if (c == '-' && i + 1 < format.size()) {
      no_pad = true;
      c = format[++i];
    }
    auto num = [&](int64_t v, int width) {
      std::string s = std::to_string(v);
      if (!no_pad && static_cast<int>(s.size()) < width)
        s.insert(0, static_cast<size_t>(width) - s.size(), '0');
      out += s;
    };
    switch (c) {
      case 'Y':
        out += std::to_string(year);
        break;
      case 'y':
        num(year % 100, 2);
        break;
      case 'm':
        num(month, 2);
        break;
      case 'd':
        num(day, 2);
        break;
      case 'e': {
        std::string s = std::to_string(day);
        out += (s.size() < 2 && !no_pad ? " " : "") + s;
        break;
      }
      case 'j':
        num(yday, 3);
        break;
      case 'H':
        num(hour, 2);
        break;
      case 'I':
        num(hour % 12 == 0 ? 12 : hour % 12, 2);
        break;
      case 'M':
        num(minute, 2);
        break;
      case 'S':
        num(second, 2);
        break;
      case 'p':
        out += hour < 12 ? "AM" : "PM";
        break;
      case 'B':
        out += kMonths[month - 1];
        break;
      case 'b':
      case 'h':
        out += std::string(kMonths[month - 1]).substr(0, 3);
        break;
      case 'A':
        out += kDays[weekday];
        break;
      case 'a':
        out += std::string(kDays[weekday]).substr(0, 3);
        break;
      case 'u':
        out += std::to_string(weekday + 1);
        break;
      case 'w':
        out += std::to_string((weekday + 1) % 7);
        break;
      case 'F':
        out += std::to_string(year) + "-";
        num(month, 2);
        out += "-";
        num(day, 2);
        break;
      case '%':
        out += '%';
        break;
      default:
        fail(std::string("strftime_now: unsupported directive %") + c);
    }
  }
  return out;
}

Value Interp::method(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    const std::string s = obj.str();
    auto bind = [&](auto fn) {
      return Value::callable("str." + name,
                             [s, fn](Interp& in, CallArgs& a) { return fn(in, s, a); });
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const bool l = name != "rstrip";
      const bool r = name != "lstrip";
      return Value::callable("str." + name, [s, l, r](Interp&, CallArgs& a) {
        return Value::string(py_strip(s, arg(a, 0, "chars"), l, r));
      });
    }
    if (name == "split") {
      return bind([](Interp&, const std::string& s, CallArgs& a) {
        return Value::list(py_split(s, arg(a, 0, "sep"), arg_int(a, 1, "maxsplit", -1)));
      });
    }
    if (name == "rsplit") {
      return bind([](Interp&, const std::string& s, CallArgs& a) {
        return Value::list(py_rsplit(s, arg(a, 0, "sep"), arg_int(a, 1, "maxsplit", -1)));
      });
    }
    if (name == "splitlines") {
      return bind([](Interp&, const std::string& s, CallArgs& a) {
        return Value::list(py_splitlines(s, arg_bool(a, 0, "keepends", false)));
      });
    }
    if (name == "center" || name == "ljust" || name == "rjust") {
      const std::string which = name;
      return Value::callable("str." + name, [s, which](Interp& in, CallArgs& a) {
        const Value* w = arg(a, 0, "width");
        if (!w) fail(which + "() takes at least 1 argument (0 given)");
        if (!w->is_int_like()) {
          fail("'" + type_name(*w) + "' object cannot be interpreted as an integer");
        }
        const Value* f = arg(a, 1, "fillchar");
        std::string fill = " ";
        if (f) {
          if (!f->is_string() || code_point_count(f->str()) != 1) {
            fail("The fill character must be exactly one character long");
          }
          fill = f->str();
        }
        const int64_t len = static_cast<int64_t>(code_point_count(s));
        const int64_t margin = w->as_int() - len;
        if (margin <= 0) return Value::string(s);
        in.check_size(s.size() + static_cast<size_t>(margin) * fill.size());
        // str.center: the odd fill character goes left when both width and margin are odd.
        const int64_t left = which == "ljust"   ? 0
                             : which == "rjust" ? margin
                                                : margin / 2 + (margin & w->as_int() & 1);
        std::string out;
        for (int64_t k = 0; k < left; ++k) out += fill;
        out += s;
        for (int64_t k = left; k < margin; ++k) out += fill;
        return Value::string(std::move(out));
      });
    }
    if (name == "zfill") {
      return bind([](Interp& in, const std::string& s, CallArgs& a) {
        const Value* w = arg(a, 0, "width");
        if (!w || !w->is_int_like()) fail("zfill() takes an integer width");
        const int64_t margin = w->as_int() - static_cast<int64_t>(code_point_count(s));
        if (margin <= 0) return Value::string(s);
        in.check_size(s.size() + static_cast<size_t>(margin));
        const size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
        return Value::string(s.substr(0, sign) + std::string(static_cast<size_t>(margin), '0') +
                             s.substr(sign));
      });
    }
    if (name == "partition" || name == "rpartition") {
      const bool right = name == "rpartition";
      return Value::callable("str." + name, [s, right](Interp&, CallArgs& a) {
        if (a.pos.size() != 1) fail("partition() takes exactly one argument");
        const std::string& sep = need_str(a.pos[0], "partition");
        if (sep.empty()) fail("empty separator");
        const size_t p = right ? s.rfind(sep) : s.find(sep);
        std::vector<Value> parts;
        if (p == std::string::npos) {
          parts = {Value::string(right ? "" : s), Value::string(""), Value::string(right ? s : "")};
        } else {
          parts = {Value::string(s.substr(0, p)), Value::string(sep),
                   Value::string(s.substr(p + sep.size()))};
        }
        return Value::list(std::move(parts), true);
      });
    }
    if (name == "startswith" || name == "endswith") {
      const bool suffix = name == "endswith";
      return Value::callable("str." + name, [s, suffix](Interp&, CallArgs& a) {
        if (a.pos.empty())
          fail(std::string(suffix ? "endswith" : "startswith") + " needs an argument");
        return Value::boolean(prefix_match(s, a.pos[0], suffix));
      });
    }
    if (name == "upper") {
      return bind(
          [](Interp&, const std::string& s, CallArgs&) { return Value::string(py_upper(s)); });
    }
    if (name == "lower") {
      return bind(
          [](Interp&, const std::string& s, CallArgs&) { return Value::string(py_lower(s)); });
    }
    if (name == "swapcase") {
      return bind(
          [](Interp&, const std::string& s, CallArgs&) { return Value::string(py_swapcase(s)); });
    }
    if (name == "islower" || name == "isupper") {
      const bool lower = name == "islower";
      return Value::callable("str." + name, [s, lower](Interp&, CallArgs&) {
        return Value::boolean(lower ? py_islower(s) : py_isupper(s));
      });
    }
    if (name == "title") {
      return bind(
          [](Interp&, const std::string& s, CallArgs&) { return Value::string(py_title(s)); });
    }
    if (name == "capitalize") {
      return bind(
          [](Interp&, const std::string& s, CallArgs&) { return Value::string(py_capitalize(s)); });
    }
    if (name == "replace") {
      return bind([](Interp& in, const std::string& s, CallArgs& a) {
        if (a.pos.size() < 2) fail("replace needs two arguments");
        return Value::string(py_replace(s, need_str(a.pos[0], "replace"),
                                        need_str(a.pos[1], "replace"), arg_int(a, 2, "count", -1),
                                        in));
      });
    }
    if (name == "find" || name == "rfind" || name == "count") {
      const std::string which = name;
      return Value::callable("str." + name, [s, which](Interp&, CallArgs& a) {
        if (a.pos.empty()) fail(which + " needs an argument");
        const std::string& sub = need_str(a.pos[0], which.c_str());
        if (which == "count") {
          if (sub.empty()) return Value::integer(static_cast<int64_t>(code_point_count(s)) + 1);
          int64_t n = 0;
          for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
          return Value::integer(n);
        }
        const size_t p = which == "find" ? s.find(sub) : s.rfind(sub);
        if (p == std::string::npos) return Value::integer(-1);
        return Value::integer(
            static_cast<int64_t>(code_point_count(std::string_view(s).substr(0, p))));
      });
    }
    if (name == "format") {
      return bind([](Interp& in, const std::string& s, CallArgs& a) {
        return Value::string(py_format(in, s, a));
      });
    }
    if (name == "join") {
      return bind([](Interp& in, const std::string& s, CallArgs& a) {
        if (a.pos.empty()) fail("join needs an argument");
        std::string out;
        bool first = true;
        for (const Value& x : in.iterate(a.pos[0])) {
          if (!first) out += s;
          first = false;
          out += need_str(x, "join");
          in.check_size(out.size());
        }
        return Value::string(std::move(out));
      });
    }
    if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum" ||
        name == "isnumeric" || name == "isdecimal") {
      const std::string which = name;
      // Python's, over all of Unicode ('é'.isalpha(), '٣'.isdigit(), '\u3000'.isspace()).
      return Value::callable("str." + name, [s, which](Interp&, CallArgs&) {
        if (s.empty()) return Value::boolean(false);
        for (std::string_view ch : code_points(s)) {
          const uint32_t c = decode_cp(ch);
          const bool ok = which == "isdigit"     ? py_isdigit(c)
                          : which == "isalpha"   ? py_isalpha(c)
                          : which == "isspace"   ? is_py_space(c)
                          : which == "isnumeric" ? py_isnumeric(c)
                          : which == "isdecimal" ? py_is_decimal(c)
                                                 : py_is_word_char(c) && c != '_';
          if (!ok) return Value::boolean(false);
        }
        return Value::boolean(true);
      });
    }
    return {};
  }
  if (obj.is_dict()) {
    const std::shared_ptr<Dict> d = obj.dict_ptr();
    if (name == "get") {
      return Value::callable("dict.get", [d](Interp&, CallArgs& a) {
        if (a.pos.empty()) fail("get expected at least 1 argument, got 0");
        if (a.pos[0].is_string() || a.pos[0].is(Value::Kind::Int)) {
          if (const Value* v = d->find(dict_key(a.pos[0]))) return *v;
        }
        return a.pos.size() > 1 ? a.pos[1] : Value::none();
      });
    }
    if (name == "items") {
      return Value::callable("dict.items", [d](Interp&, CallArgs&) { return pairs(*d); });
    }
    if (name == "keys" || name == "values") {
      const bool keys = name == "keys";
      return Value::callable("dict." + name, [d, keys](Interp&, CallArgs&) {
        std::vector<Value> out;
        for (const auto& [k, v] : d->items) out.push_back(keys ? dict_key_value(k) : v);
        return Value::list(std::move(out));
      });
    }
  }
  if (obj.is_list()) {
    const Value list = obj;
    if (name == "index" || name == "count") {
      const bool count = name == "count";
      return Value::callable(
          (list.list().tuple ? "tuple." : "list.") + name, [list, count](Interp& in, CallArgs& a) {
            if (a.pos.size() != 1) {
              fail(std::string(count ? "count" : "index") + "() takes exactly one argument");
            }
            const std::vector<Value>& items = list.list().items;
            in.work(items.size());
            int64_t n = 0;
            for (size_t i = 0; i < items.size(); ++i) {
              if (!equal(items[i], a.pos[0])) continue;
              if (!count) return Value::integer(static_cast<int64_t>(i));
              ++n;
            }
            if (!count) {
              fail(repr(a.pos[0]) + " is not in " + (list.list().tuple ? "tuple" : "list"));
            }
            return Value::integer(n);
          });
    }
  }
  // The methods that change a list or dict: Jinja's immutable sandbox gives an undefined that
  // says so (even where a dict has a key of that name).
  static const char* const kListMutators[] = {"append", "clear",  "extend",  "insert",
                                              "pop",    "remove", "reverse", "sort"};
  static const char* const kDictMutators[] = {"clear", "pop", "popitem", "setdefault", "update"};
  const auto unsafe = [&](const char* type) {
    return Value::undefined("access to attribute '" + name + "' of '" + type +
                            "' object is unsafe.");
  };
  if (obj.is_list() && !obj.list().tuple) {
    for (const char* m : kListMutators) {
      if (name == m) return unsafe("list");
    }
  }
  if (obj.is_dict()) {
    for (const char* m : kDictMutators) {
      if (name == m) return unsafe("dict");
    }
  }
  return {};
}

}  // namespace qkv::chat
