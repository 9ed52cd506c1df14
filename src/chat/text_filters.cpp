// Jinja's filters that rewrite text: format (printf-style), wordwrap (Python's textwrap),
// striptags (markupsafe's, with html.unescape), pprint (pprint.pformat) and random, with
// Jinja 3.1's behaviour on CPython 3.11 (tests/chat/filters_oracle_test.py compares them with
// Python Jinja2).
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "chat/builtins.h"
#include "chat/interp.h"
#include "core/utf8.h"

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

// A string as code points, for the filters that index and measure text as Python does.
// Its index takes ~20 bytes per character, charged to the template's memory budget first.
struct Text {
  std::vector<std::string_view> cps;
  std::vector<uint32_t> values;
  Text(Interp& in, std::string_view s) : cps((charge(in, s), code_points(s))) {
    values.reserve(cps.size());
    for (std::string_view cp : cps) values.push_back(decode_cp(cp));
  }
  static void charge(Interp& in, std::string_view s) {
    in.check_memory(s.size() * (sizeof(std::string_view) + sizeof(uint32_t)));
  }
  size_t size() const { return cps.size(); }
  uint32_t at(size_t i) const { return i < values.size() ? values[i] : 0; }
  std::string slice(size_t begin, size_t end) const {
    std::string out;
    for (size_t i = begin; i < end && i < cps.size(); ++i) out += cps[i];
    return out;
  }
};

// str.splitlines(): the lines of s without their ends (\n, \r, \r\n, \v, \f, \x1c-\x1e, U+0085,
// U+2028, U+2029), as [begin, end) code-point ranges; `ends` gets each line's end (keepends).
std::vector<std::pair<size_t, size_t>> split_lines(const Text& t, std::vector<size_t>* ends) {
  std::vector<std::pair<size_t, size_t>> lines;
  size_t begin = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const uint32_t c = t.values[i];
    const bool brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d ||
                     c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    size_t end = i + 1;
    if (c == '\r' && t.at(i + 1) == '\n' && i + 1 < t.size()) end = i + 2;
    lines.emplace_back(begin, i);
    if (ends) ends->push_back(end);
    begin = end;
    i = end - 1;
  }
  if (begin < t.size()) {
    lines.emplace_back(begin, t.size());
    if (ends) ends->push_back(t.size());
  }
  return lines;
}

bool all_space(const Text& t, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    if (!is_py_space(t.values[i])) return false;
  }
  return true;
}

// ---- wordwrap: textwrap.wrap(line, width, expand_tabs=False, replace_whitespace=False,
// break_long_words, break_on_hyphens) for each line.

bool wrap_space(uint32_t c) {  // textwrap's whitespace: ASCII only
  return c == ' ' || c == '\t' || c == '\n' || c == 0x0b || c == 0x0c || c == '\r';
}
bool word_punct(uint32_t c) {  // [\w!"'&.,?]
  return py_is_word_char(c) || c == '!' || c == '"' || c == '\'' || c == '&' || c == '.' ||
         c == ',' || c == '?';
}
bool letter(uint32_t c) {  // [^\d\W]
  return py_is_word_char(c) && !py_is_decimal(c);
}

// TextWrapper.wordsep_re.split (break_on_hyphens) or wordsep_simple_re.split: the chunks of
// [begin, end) as code-point ranges. The regular expression, position by position: a run of
// whitespace; an em-dash (two or more '-' after a word character or punctuation, before a word
// character); or the shortest run of non-space that ends a hyphenated part ("-" after two
// letters or letter-letter, before letter[-]letter), the word, or before an em-dash.
std::vector<std::pair<size_t, size_t>> wrap_chunks(const Text& t, size_t begin, size_t end,
                                                   bool hyphens) {
  std::vector<std::pair<size_t, size_t>> chunks;
  const auto at = [&](size_t i) -> uint32_t { return i < end ? t.values[i] : 0; };
  const auto dash_run_to_word = [&](size_t i) -> size_t {  // end of -{2,} before \w, or 0
    size_t k = i;
    while (k < end && t.values[k] == '-') ++k;
    return k - i >= 2 && k < end && py_is_word_char(t.values[k]) ? k : 0;
  };
  for (size_t i = begin; i < end;) {
    size_t j = i;
    if (wrap_space(t.values[i])) {
      while (j < end && wrap_space(t.values[j])) ++j;
    } else if (!hyphens) {
      while (j < end && !wrap_space(t.values[j])) ++j;
    } else if (size_t k = 0;
               i > 0 && word_punct(t.values[i - 1]) && (k = dash_run_to_word(i)) != 0) {
      j = k;
    } else {
      for (j = i + 1;; ++j) {
        if (at(j) == '-' &&
            ((j >= 2 && letter(t.values[j - 2]) && letter(t.values[j - 1])) ||
             (j >= 3 && letter(t.values[j - 3]) && t.values[j - 2] == '-' &&
              letter(t.values[j - 1]))) &&
            letter(at(j + 1)) && (letter(at(j + 2)) || (at(j + 2) == '-' && letter(at(j + 3))))) {
          ++j;  // the hyphen ends the chunk
          break;
        }
        if (j == end || wrap_space(t.values[j])) break;
        if (word_punct(t.values[j - 1]) && dash_run_to_word(j) != 0) break;
      }
    }
    chunks.emplace_back(i, j);
    i = j;
  }
  return chunks;
}

// TextWrapper._wrap_chunks with drop_whitespace and no indents; lines are appended to `out`,
// joined by `sep`.
void wrap_line(const Text& t, size_t begin, size_t end, int64_t width, bool break_long,
               bool hyphens, const std::string& sep, bool& first, std::string& out, Interp& in) {
  // Reversed, as textwrap keeps them: the next chunk is the back.
  std::vector<std::pair<size_t, size_t>> chunks = wrap_chunks(t, begin, end, hyphens);
  std::reverse(chunks.begin(), chunks.end());
  const auto len = [](const std::pair<size_t, size_t>& c) {
    return static_cast<int64_t>(c.second - c.first);
  };
  bool any_line = false;
  while (!chunks.empty()) {
    in.step();
    std::vector<std::pair<size_t, size_t>> line;
    int64_t cur = 0;
    if (any_line && all_space(t, chunks.back().first, chunks.back().second)) chunks.pop_back();
    while (!chunks.empty() && cur + len(chunks.back()) <= width) {
      cur += len(chunks.back());
      line.push_back(chunks.back());
      chunks.pop_back();
    }
    if (!chunks.empty() && len(chunks.back()) > width) {
      // _handle_long_word
      const int64_t space_left = width - cur;
      auto& chunk = chunks.back();
      if (break_long) {
        int64_t cut = space_left;
        if (hyphens && len(chunk) > space_left) {
          // After the last hyphen within space_left, if something other than hyphens precedes it.
          int64_t hyphen = -1;
          for (int64_t k = space_left - 1; k >= 0; --k) {
            if (t.values[chunk.first + static_cast<size_t>(k)] == '-') {
              hyphen = k;
              break;
            }
          }
          bool other = false;
          for (int64_t k = 0; k < hyphen && !other; ++k) {
            other = t.values[chunk.first + static_cast<size_t>(k)] != '-';
          }
          if (hyphen > 0 && other) cut = hyphen + 1;
        }
        line.emplace_back(chunk.first, chunk.first + static_cast<size_t>(cut));
        chunk.first += static_cast<size_t>(cut);
      } else if (line.empty()) {
        line.push_back(chunk);
        chunks.pop_back();
      }
    }
    if (!line.empty() && all_space(t, line.back().first, line.back().second)) line.pop_back();
    if (!line.empty()) {
      if (!first) out += sep;
      first = false;
      for (const auto& c : line) out += t.slice(c.first, c.second);
      in.check_size(out.size());
      any_line = true;
    }
  }
}

Value wordwrap(Interp& in, const Value& v, CallArgs& a) {
  v.require_defined();
  if (!v.is_string()) fail("'" + type_name(v) + "' object has no attribute 'splitlines'");
  const int64_t width = arg_int(a, 0, "width", 79);
  const bool break_long = arg_bool(a, 1, "break_long_words", true);
  const std::string sep = arg_str(a, 2, "wrapstring", "\n");
  const bool hyphens = arg_bool(a, 3, "break_on_hyphens", true);
  const Text t(in, v.str());
  const auto lines = split_lines(t, nullptr);
  if (!lines.empty() && width <= 0) {
    fail("invalid width " + std::to_string(width) + " (must be > 0)");
  }
  std::string out;
  bool first_paragraph = true;
  for (const auto& [begin, end] : lines) {
    // Paragraphs are joined by the wrapstring too; an empty one contributes no line.
    if (!first_paragraph) out += sep;
    first_paragraph = false;
    bool first = true;
    wrap_line(t, begin, end, width, break_long, hyphens, sep, first, out, in);
  }
  return Value::string(std::move(out));
}

// ---- striptags: markupsafe's Markup.striptags (comments, then tags, removed as its loops
// remove them; whitespace collapsed as " ".join(s.split())), then html.unescape.

struct HtmlEntity {
  const char* name;
  const char* text;
};
#include "chat/html_entities.inc"

// Removes every open...close span the way markupsafe's loop does (`while (start :=
// s.find(open)) != -1: end = s.find(close, start); if end == -1: break; s = s[:start] +
// s[end + len(close):]`), in linear time. The text is `out` (kept, searched) followed by
// s[rest:]: what precedes a removal holds no `open`, so the next search starts len(open) - 1
// characters before the join, where a new `open` may have formed.
std::string remove_spans(const std::string& s, std::string_view open, std::string_view close) {
  std::string out;
  size_t rest = 0;
  const auto size = [&] { return out.size() + (s.size() - rest); };
  const auto at = [&](size_t v) { return v < out.size() ? out[v] : s[rest + (v - out.size())]; };
  const auto find = [&](std::string_view pat, size_t from) -> size_t {
    for (size_t v = from; v + pat.size() <= size(); ++v) {
      if (v >= out.size()) {  // wholly in s: the library's search
        const size_t f = s.find(pat, rest + (v - out.size()));
        return f == std::string::npos ? f : out.size() + (f - rest);
      }
      size_t k = 0;
      while (k < pat.size() && at(v + k) == pat[k]) ++k;
      if (k == pat.size()) return v;
    }
    return std::string::npos;
  };
  size_t search = 0;
  while (true) {
    const size_t start = find(open, search);
    if (start == std::string::npos) break;
    const size_t end = find(close, start);
    if (end == std::string::npos) break;
    const size_t stop = end + close.size();  // remove [start, stop)
    if (start > out.size()) {
      const size_t take = start - out.size();
      out.append(s, rest, take);
      rest += take;
    }
    if (stop <= out.size()) {
      out.erase(start, stop - start);
    } else {
      rest += stop - out.size();
      out.resize(start);
    }
    search = start >= open.size() - 1 ? start - (open.size() - 1) : 0;
  }
  out.append(s, rest, std::string::npos);
  return out;
}

// html.unescape: &name; (the HTML5 table, longest prefix without ';'), &#n; and &#xh;.
std::string html_unescape(const std::string& s) {
  if (s.find('&') == std::string::npos) return s;
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t amp = s.find('&', i);
    if (amp == std::string::npos) break;
    out.append(s, i, amp - i);
    size_t p = amp + 1;
    if (p < s.size() && s[p] == '#') {
      const bool hex = p + 1 < s.size() && (s[p + 1] == 'x' || s[p + 1] == 'X');
      size_t q = p + (hex ? 2 : 1);
      const size_t digits_begin = q;
      while (q < s.size() && (hex ? std::isxdigit(static_cast<unsigned char>(s[q]))
                                  : std::isdigit(static_cast<unsigned char>(s[q])))) {
        ++q;
      }
      if (q == digits_begin) {  // "&#" without digits: no reference
        out += '&';
        i = amp + 1;
        continue;
      }
      // The number may be huge; anything past U+10FFFF is U+FFFD.
      uint64_t num = 0;
      for (size_t k = digits_begin; k < q; ++k) {
        const int d = std::isdigit(static_cast<unsigned char>(s[k]))
                          ? s[k] - '0'
                          : std::tolower(static_cast<unsigned char>(s[k])) - 'a' + 10;
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + static_cast<uint64_t>(d), 0x7fffffff);
      }
      if (q < s.size() && s[q] == ';') ++q;
      i = q;
      const auto invalid = std::lower_bound(
          std::begin(kInvalidCharrefs), std::end(kInvalidCharrefs), num,
          [](const std::pair<uint32_t, uint32_t>& e, uint64_t n) { return e.first < n; });
      if (invalid != std::end(kInvalidCharrefs) && invalid->first == num) {
        core::append_utf8(out, invalid->second);
      } else if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) {
        out += "\xef\xbf\xbd";
      } else if (std::binary_search(std::begin(kInvalidCodepoints), std::end(kInvalidCodepoints),
                                    static_cast<uint32_t>(num))) {
        // dropped
      } else {
        core::append_utf8(out, static_cast<uint32_t>(num));
      }
      continue;
    }
    // [^\t\n\f <&#;]{1,32};?
    size_t q = p;
    for (int n = 0; n < 32 && q < s.size() &&
                    std::string_view("\t\n\f <&#;").find(s[q]) == std::string_view::npos;
         ++n) {
      q += core::utf8_step(std::string_view(s).substr(q)).length;  // {1,32} counts characters
    }
    if (q == p) {
      out += '&';
      i = p;
      continue;
    }
    size_t name_end = q;
    if (q < s.size() && s[q] == ';') name_end = q + 1;
    const auto lookup = [](std::string_view name) -> const HtmlEntity* {
      const auto it = std::lower_bound(
          std::begin(kHtmlEntities), std::end(kHtmlEntities), name,
          [](const HtmlEntity& e, std::string_view n) { return std::string_view(e.name) < n; });
      return it != std::end(kHtmlEntities) && it->name == name ? it : nullptr;
    };
    const std::string_view name(s.data() + p, name_end - p);
    if (const HtmlEntity* e = lookup(name)) {
      out += e->text;
    } else {
      // The longest prefix of at least two characters that is a name (those without ';').
      const HtmlEntity* hit = nullptr;
      size_t x = name.size() - 1;
      for (; x > 1; --x) {
        if ((hit = lookup(name.substr(0, x))) != nullptr) break;
      }
      if (hit) {
        out += hit->text;
        out.append(name.substr(x));
      } else {
        out += '&';
        out.append(name);
      }
    }
    i = name_end;
  }
  if (i < s.size()) out.append(s, i, std::string::npos);
  return out;
}

Value striptags(Interp& in, const Value& v, CallArgs&) {
  std::string s = to_str(v);
  in.work(s.size() / 64);
  s = remove_spans(remove_spans(s, "<!--", "-->"), "<", ">");
  std::string collapsed;
  for (const Value& word : py_split(s, nullptr, -1)) {
    if (!collapsed.empty()) collapsed += ' ';
    collapsed += word.str();
  }
  return Value::string(html_unescape(collapsed));
}

// ---- pprint: pprint.pformat(value) (width 80, indent 1, dicts sorted by key).

// repr() with every dict's items sorted: ints before strings (Python's _safe_key falls back to
// the type names), each kind in its own order.
std::vector<std::pair<std::string, Value>> sorted_items(const Dict& d) {
  std::vector<std::pair<std::string, Value>> items = d.items;
  std::stable_sort(items.begin(), items.end(), [](const auto& x, const auto& y) {
    const Value kx = dict_key_value(x.first);
    const Value ky = dict_key_value(y.first);
    if (kx.is_int_like() != ky.is_int_like()) return kx.is_int_like();
    return less(kx, ky);
  });
  return items;
}

std::string sorted_repr(Interp& in, const Value& v) {
  in.step();
  if (v.is_undefined()) return "Undefined";
  if (v.is_dict()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, item] : sorted_items(v.dict_ref())) {
      if (!first) out += ", ";
      first = false;
      out += repr(dict_key_value(k));
      out += ": ";
      out += sorted_repr(in, item);
      in.check_size(out.size());
    }
    return out + "}";
  }
  if (v.is_list()) {
    const List& l = v.list();
    if (!l.fields.empty()) return repr(v);
    std::string out = l.tuple ? "(" : "[";
    for (size_t i = 0; i < l.items.size(); ++i) {
      if (i > 0) out += ", ";
      out += sorted_repr(in, l.items[i]);
      in.check_size(out.size());
    }
    if (l.tuple && l.items.size() == 1) out += ",";
    return out + (l.tuple ? ")" : "]");
  }
  return repr(v);
}

class PrettyPrinter {
 public:
  explicit PrettyPrinter(Interp& in) : in_(in) {}

  // PrettyPrinter._format: the repr if it fits in the width left, else the container laid out.
  void format(const Value& v, int64_t indent, int64_t allowance, int level) {
    const std::string rep = sorted_repr(in_, v);
    in_.work(rep.size() / 64);  // each level writes its subtree again: bounded by the steps
    const int64_t max_width = kWidth - indent - allowance;
    if (static_cast<int64_t>(code_point_count(rep)) > max_width) {
      if (v.is_dict()) return dict(v, indent, allowance, level + 1);
      if (v.is_list() && v.list().fields.empty()) return list(v, indent, allowance, level + 1);
      if (v.is_string()) return str(v.str(), indent, allowance, level + 1);
    }
    write(rep);
  }

  std::string out;

 private:
  static constexpr int64_t kWidth = 80;

  void write(std::string_view s) {
    out += s;
    in_.check_size(out.size());
  }

  void dict(const Value& v, int64_t indent, int64_t allowance, int level) {
    write("{");
    const auto items = sorted_items(v.dict_ref());
    indent += 1;
    for (size_t i = 0; i < items.size(); ++i) {
      const bool last = i + 1 == items.size();
      const std::string rep = repr(dict_key_value(items[i].first));
      write(rep);
      write(": ");
      format(items[i].second, indent + static_cast<int64_t>(code_point_count(rep)) + 2,
             last ? allowance + 1 : 1, level);
      if (!last) write(",\n" + std::string(static_cast<size_t>(indent), ' '));
    }
    write("}");
  }

  void list(const Value& v, int64_t indent, int64_t allowance, int level) {
    const List& l = v.list();
    const std::string end = !l.tuple ? "]" : l.items.size() == 1 ? ",)" : ")";
    write(l.tuple ? "(" : "[");
    indent += 1;
    for (size_t i = 0; i < l.items.size(); ++i) {
      const bool last = i + 1 == l.items.size();
      if (i > 0) write(",\n" + std::string(static_cast<size_t>(indent), ' '));
      format(l.items[i], indent, last ? allowance + static_cast<int64_t>(end.size()) : 1, level);
    }
    write(end);
  }

  // _pprint_str: the lines (ends kept), each cut after whitespace into pieces whose repr fits.
  void str(const std::string& s, int64_t indent, int64_t allowance, int level) {
    const Text t(in_, s);
    std::vector<size_t> ends;
    const auto lines = split_lines(t, &ends);
    if (level == 1) {
      indent += 1;
      allowance += 1;
    }
    int64_t max_width1 = kWidth - indent;
    const int64_t max_width = kWidth - indent;
    std::vector<std::string> chunks;
    std::string rep;
    const auto width_of = [](const std::string& r) {
      return static_cast<int64_t>(code_point_count(r));
    };
    for (size_t i = 0; i < lines.size(); ++i) {
      const size_t begin = lines[i].first;
      const size_t end = ends[i];
      rep = repr(Value::string(t.slice(begin, end)));
      if (i + 1 == lines.size()) max_width1 -= allowance;
      if (width_of(rep) <= max_width1) {
        chunks.push_back(rep);
        continue;
      }
      // re.findall(r'\S*\s*', line): runs of non-space, each with the space after it.
      std::vector<std::pair<size_t, size_t>> parts;
      for (size_t p = begin; p < end;) {
        size_t q = p;
        while (q < end && !is_py_space(t.values[q])) ++q;
        while (q < end && is_py_space(t.values[q])) ++q;
        parts.emplace_back(p, q);
        p = q;
      }
      int64_t max_width2 = max_width;
      size_t current_begin = begin;
      size_t current_end = begin;
      for (size_t j = 0; j < parts.size(); ++j) {
        in_.step();
        if (j + 1 == parts.size() && i + 1 == lines.size()) max_width2 -= allowance;
        const std::string candidate = repr(Value::string(t.slice(current_begin, parts[j].second)));
        if (width_of(candidate) > max_width2) {
          if (current_end > current_begin) {
            chunks.push_back(repr(Value::string(t.slice(current_begin, current_end))));
          }
          current_begin = parts[j].first;
          current_end = parts[j].second;
        } else {
          current_end = parts[j].second;
        }
      }
      if (current_end > current_begin) {
        chunks.push_back(repr(Value::string(t.slice(current_begin, current_end))));
      }
    }
    if (chunks.size() == 1) {
      write(rep);
      return;
    }
    if (level == 1) write("(");
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (i > 0) write("\n" + std::string(static_cast<size_t>(indent), ' '));
      write(chunks[i]);
    }
    if (level == 1) write(")");
  }

  Interp& in_;
};

Value pprint(Interp& in, const Value& v, CallArgs&) {
  PrettyPrinter p(in);
  p.format(v, 0, 0, 0);
  return Value::string(std::move(p.out));
}

// ---- random: random.choice(seq); an empty sequence gives an undefined that says so.

Value random(Interp& in, const Value& v, CallArgs&) {
  // An undefined has length 0, as an empty sequence has.
  if (v.is_undefined()) return Value::undefined("No random item, sequence was empty.");
  if (!v.is_string() && !v.is_list() && !v.is_dict()) {
    fail("object of type '" + type_name(v) + "' has no len()");
  }
  const std::vector<Value> items = v.is_dict() ? std::vector<Value>{} : in.iterate(v);
  const size_t n = v.is_dict() ? v.dict_ref().items.size() : items.size();
  if (n == 0) return Value::undefined("No random item, sequence was empty.");
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const size_t i = std::uniform_int_distribution<size_t>(0, n - 1)(rng);
  if (v.is_dict()) {
    // random.choice(dict) indexes the dict with an int: a KeyError unless that int is a key.
    const Value key = Value::integer(static_cast<int64_t>(i));
    const Value* hit = v.dict_ref().find(dict_key(key));
    if (!hit) fail("KeyError: " + std::to_string(i));
    return *hit;
  }
  return items[i];
}

}  // namespace

const std::unordered_map<std::string, FilterFn>& text_filters() {
  static const std::unordered_map<std::string, FilterFn> table = {
      {"format", format},       {"pprint", pprint}, {"random", random},
      {"striptags", striptags}, {"urlize", urlize}, {"wordwrap", wordwrap},
  };
  return table;
}

}  // namespace qkv::chat
