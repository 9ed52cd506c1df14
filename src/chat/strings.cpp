// Python str operations and argument access shared by the filters and the str/dict methods.
#include <algorithm>
#include <cctype>

#include "chat/builtins.h"
#include "chat/interp.h"

namespace qkv::chat {
const Value* arg(const CallArgs& a, size_t i, const char* name) {
  if (i < a.pos.size()) return &a.pos[i];
  return a.kwarg(name);
}

bool arg_bool(const CallArgs& a, size_t i, const char* name, bool dflt) {
  const Value* v = arg(a, i, name);
  return v ? v->truthy() : dflt;
}

int64_t arg_int(const CallArgs& a, size_t i, const char* name, int64_t dflt) {
  const Value* v = arg(a, i, name);
  if (!v || v->is_none()) return dflt;
  if (!v->is_int_like()) fail(std::string("argument '") + name + "' must be an integer");
  return v->as_int();
}

std::string arg_str(const CallArgs& a, size_t i, const char* name, const std::string& dflt) {
  const Value* v = arg(a, i, name);
  if (!v || v->is_none()) return dflt;
  if (!v->is_string()) fail(std::string("argument '") + name + "' must be a string");
  return v->str();
}

const std::string& need_str(const Value& v, const char* what) {
  v.require_defined();
  if (!v.is_string()) fail(std::string(what) + " needs a string, not " + type_name(v));
  return v.str();
}

std::vector<Value> py_splitlines(const std::string& s, bool keepends) {
  std::vector<Value> out;
  const auto cps = code_points(s);
  size_t start = 0;  // byte offset of the current line
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t c = decode_cp(cps[i]);
    const bool brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d ||
                     c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    const size_t at = static_cast<size_t>(cps[i].data() - s.data());
    size_t end = at + cps[i].size();
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == "\n") {
      ++end;
      ++i;
    }
    out.push_back(Value::string(s.substr(start, (keepends ? end : at) - start)));
    start = end;
  }
  if (start < s.size()) out.push_back(Value::string(s.substr(start)));
  return out;
}

std::string ascii_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::vector<Value> py_split(const std::string& s, const Value* sep_v, int64_t maxsplit) {
  std::vector<Value> out;
  if (!sep_v || sep_v->is_none()) {
    // Runs of whitespace separate; leading and trailing whitespace give no empty pieces.
    // Python's whitespace, by code point (U+00A0, U+3000 ... too).
    const auto cps = code_points(s);
    const size_t n = cps.size();
    const auto ws = [&](size_t k) { return is_py_space(decode_cp(cps[k])); };
    const auto piece = [&](size_t b, size_t e) {
      const size_t from = static_cast<size_t>(cps[b].data() - s.data());
      const size_t to = static_cast<size_t>(cps[e - 1].data() - s.data()) + cps[e - 1].size();
      return Value::string(s.substr(from, to - from));
    };
    size_t i = 0;
    while (true) {
      while (i < n && ws(i)) ++i;
      if (i >= n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(piece(i, n));  // the rest, trailing whitespace kept (as CPython does)
        break;
      }
      size_t j = i;
      while (j < n && !ws(j)) ++j;
      out.push_back(piece(i, j));
      i = j;
    }
    return out;
  }
  const std::string& sep = need_str(*sep_v, "split");
  if (sep.empty()) fail("empty separator");
  size_t start = 0;
  while (true) {
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) break;
    const size_t p = s.find(sep, start);
    if (p == std::string::npos) break;
    out.push_back(Value::string(s.substr(start, p - start)));
    start = p + sep.size();
  }
  out.push_back(Value::string(s.substr(start)));
  return out;
}

std::vector<Value> py_rsplit(const std::string& s, const Value* sep_v, int64_t maxsplit) {
  if (maxsplit < 0) return py_split(s, sep_v, -1);
  if (!sep_v || sep_v->is_none()) {
    std::vector<Value> out;
    const auto cps = code_points(s);
    const auto ws = [&](size_t k) { return is_py_space(decode_cp(cps[k])); };
    const auto piece = [&](size_t b, size_t e) {
      const size_t from = static_cast<size_t>(cps[b].data() - s.data());
      const size_t to = static_cast<size_t>(cps[e - 1].data() - s.data()) + cps[e - 1].size();
      return Value::string(s.substr(from, to - from));
    };
    size_t e = cps.size();
    while (true) {
      while (e > 0 && ws(e - 1)) --e;
      if (e == 0) break;
      if (static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(piece(0, e));  // the rest, leading whitespace kept
        break;
      }
      size_t b = e;
      while (b > 0 && !ws(b - 1)) --b;
      out.push_back(piece(b, e));
      e = b;
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
  const std::string& sep = need_str(*sep_v, "rsplit");
  if (sep.empty()) fail("empty separator");
  std::vector<Value> out;
  size_t end = s.size();
  while (static_cast<int64_t>(out.size()) < maxsplit) {
    if (end < sep.size()) break;
    const size_t p = s.rfind(sep, end - sep.size());
    if (p == std::string::npos) break;
    out.push_back(Value::string(s.substr(p + sep.size(), end - p - sep.size())));
    end = p;
  }
  out.push_back(Value::string(s.substr(0, end)));
  std::reverse(out.begin(), out.end());
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl,
                       int64_t count, Interp& in) {
  std::string out;
  int64_t done = 0;
  if (old.empty()) {
    for (std::string_view cp : code_points(s)) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      out += cp;
      in.check_size(out.size());
    }
    if (count < 0 || done < count) out += repl;
    return out;
  }
  size_t start = 0;
  while (count < 0 || done < count) {
    const size_t p = s.find(old, start);
    if (p == std::string::npos) break;
    out.append(s, start, p - start);
    out += repl;
    in.check_size(out.size());
    start = p + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

bool prefix_match(const std::string& s, const Value& p, bool suffix) {
  auto one = [&](const Value& x) {
    const std::string& t = need_str(x, suffix ? "endswith" : "startswith");
    if (t.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - t.size(), t.size(), t) == 0
                  : s.compare(0, t.size(), t) == 0;
  };
  if (p.is_list() && p.list().tuple) {
    for (const Value& x : p.list().items) {
      if (one(x)) return true;
    }
    return false;
  }
  return one(p);
}

Value pairs(const Dict& d) {
  std::vector<Value> out;
  for (const auto& [k, v] : d.items) out.push_back(Value::list({dict_key_value(k), v}, true));
  return Value::list(std::move(out));
}

}  // namespace qkv::chat
