// Jinja 3.1's urlize filter: the text HTML-escaped, cut at whitespace, and each word that is a
// URL (http://, https://, www., a name under com/net/org/..., an IPv4 or IPv6 address) or an
// e-mail address made a link; leading "(" "<" and trailing ". , ) >" stay outside it unless
// they balance the link's own brackets. Jinja's regular expressions (_http_re, _email_re) are
// written out as the few scans they amount to here: a word has no whitespace, and each part of
// the URL ends at a character its next part cannot contain.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "chat/builtins.h"
#include "chat/interp.h"

namespace qkv::chat {
namespace {

// A word as code points, for the character classes of Python's regular expressions.
struct Chars {
  std::vector<uint32_t> c;
  explicit Chars(std::string_view s) {
    for (std::string_view cp : code_points(s)) c.push_back(decode_cp(cp));
  }
  size_t size() const { return c.size(); }
};

bool word(uint32_t c) {
  return py_is_word_char(c);
}
bool digit(uint32_t c) {
  return py_is_decimal(c);
}
bool ascii_letter(uint32_t c) {  // [a-z] under IGNORECASE (and the two that fold into it)
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == 0x212a || c == 0x17f;
}
bool hex(uint32_t c) {  // [\da-f] under IGNORECASE
  return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == 0x212a;
}
bool domain_char(uint32_t c) {  // [\w%-]
  return word(c) || c == '%' || c == '-';
}

// Case-insensitive ASCII prefix at position i.
bool at(const Chars& w, size_t i, std::string_view lit) {
  if (i + lit.size() > w.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    const uint32_t c = w.c[i + k];
    const auto l = static_cast<uint32_t>(lit[k]);
    if (c != l && !(l >= 'a' && l <= 'z' && c == l - 32)) return false;
  }
  return true;
}

// (?::\d{1,5})?(?:[/?#]\S*)?$ from position i.
bool port_and_path(const Chars& w, size_t i) {
  if (i < w.size() && w.c[i] == ':') {
    size_t k = i + 1;
    while (k < w.size() && digit(w.c[k])) ++k;
    if (k == i + 1 || k - i - 1 > 5) return false;
    i = k;
  }
  return i == w.size() || w.c[i] == '/' || w.c[i] == '?' || w.c[i] == '#';
}

// The run of [\w%-.] from i: the host, which ends where the port or path begins.
size_t host_end(const Chars& w, size_t i) {
  while (i < w.size() && (domain_char(w.c[i]) || w.c[i] == '.')) ++i;
  return i;
}

// The host's labels, split at '.'.
std::vector<std::pair<size_t, size_t>> labels(size_t begin, size_t end, const Chars& w) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t b = begin;
  for (size_t i = begin; i <= end; ++i) {
    if (i == end || w.c[i] == '.') {
      out.emplace_back(b, i);
      b = i + 1;
    }
  }
  return out;
}

// (https?://|www\.)(([\w%-]+\.)+)?([a-z]{2,63}|xn--[\w%]{2,59})
bool scheme_or_www_host(const Chars& w) {
  size_t i = 0;
  if (at(w, 0, "https://")) {
    i = 8;
  } else if (at(w, 0, "http://")) {
    i = 7;
  } else if (at(w, 0, "www.")) {
    i = 4;
  } else {
    return false;
  }
  const size_t end = host_end(w, i);
  const auto parts = labels(i, end, w);
  for (size_t k = 0; k + 1 < parts.size(); ++k) {
    if (parts[k].first == parts[k].second) return false;  // an empty label
  }
  const auto [b, e] = parts.back();
  bool tld = e - b >= 2 && e - b <= 63;
  for (size_t k = b; k < e && tld; ++k) tld = ascii_letter(w.c[k]);
  if (!tld && e - b >= 6 && e - b <= 63 && at(w, b, "xn--")) {
    tld = true;
    for (size_t k = b + 4; k < e && tld; ++k) tld = word(w.c[k]) || w.c[k] == '%';
  }
  return tld && port_and_path(w, end);
}

// ([\w%-]{2,63}\.)+(com|net|int|edu|gov|org|info|mil)
bool common_tld_host(const Chars& w) {
  const size_t end = host_end(w, 0);
  const auto parts = labels(0, end, w);
  if (parts.size() < 2) return false;
  for (size_t k = 0; k + 1 < parts.size(); ++k) {
    const size_t n = parts[k].second - parts[k].first;
    if (n < 2 || n > 63) return false;
    for (size_t j = parts[k].first; j < parts[k].second; ++j) {
      if (w.c[j] == '.') return false;
    }
  }
  const auto [b, e] = parts.back();
  bool tld = false;
  for (std::string_view t : {"com", "net", "int", "edu", "gov", "org", "info", "mil"}) {
    tld = tld || (e - b == t.size() && at(w, b, t));
  }
  return tld && port_and_path(w, end);
}

// https?:// then \d{1,3}(\.\d{1,3}){3} or \[([\da-f]{0,4}:){2}([\da-f]{0,4}:?){1,6}\]
bool address_host(const Chars& w) {
  size_t i = 0;
  if (at(w, 0, "https://")) {
    i = 8;
  } else if (at(w, 0, "http://")) {
    i = 7;
  } else {
    return false;
  }
  if (i < w.size() && w.c[i] == '[') {
    size_t k = i + 1;
    for (int group = 0; group < 2; ++group) {
      const size_t start = k;
      while (k < w.size() && hex(w.c[k]) && k - start < 4) ++k;
      if (k >= w.size() || w.c[k] != ':') return false;
      ++k;
    }
    // At most six pieces of up to four hex digits, each with an optional ':' after it.
    int pieces = 0;
    while (k < w.size() && w.c[k] != ']') {
      const size_t start = k;
      while (k < w.size() && hex(w.c[k]) && k - start < 4) ++k;
      if (k < w.size() && w.c[k] == ':') ++k;
      if (k == start) return false;
      ++pieces;
    }
    if (k >= w.size() || pieces > 6) return false;
    return port_and_path(w, k + 1);
  }
  for (int group = 0; group < 4; ++group) {
    if (group > 0) {
      if (i >= w.size() || w.c[i] != '.') return false;
      ++i;
    }
    const size_t start = i;
    while (i < w.size() && digit(w.c[i])) ++i;
    if (i == start || i - start > 3) return false;
  }
  return port_and_path(w, i);
}

bool http_match(const std::string& s) {
  const Chars w(s);
  return scheme_or_www_host(w) || common_tld_host(w) || address_host(w);
}

// ^\S+@\w[\w.-]*\.\w+$: only the last '@' can start the domain (it has no '@').
bool email_match(const std::string& s) {
  const Chars w(s);
  size_t at_sign = w.size();
  for (size_t i = 0; i < w.size(); ++i) {
    if (w.c[i] == '@') at_sign = i;
  }
  if (at_sign == w.size() || at_sign == 0) return false;
  const size_t b = at_sign + 1;
  if (b >= w.size() || !word(w.c[b])) return false;
  size_t last_dot = 0;
  for (size_t i = b; i < w.size(); ++i) {
    if (!word(w.c[i]) && w.c[i] != '.' && w.c[i] != '-') return false;
    if (w.c[i] == '.') last_dot = i;
  }
  if (last_dot <= b || last_dot + 1 >= w.size()) return false;
  for (size_t i = last_dot + 1; i < w.size(); ++i) {
    if (!word(w.c[i])) return false;
  }
  return true;
}

bool starts(const std::string& s, std::string_view p) {
  return s.compare(0, p.size(), p) == 0;
}

size_t count(const std::string& s, std::string_view p) {
  size_t n = 0;
  for (size_t i = s.find(p); i != std::string::npos; i = s.find(p, i + p.size())) ++n;
  return n;
}

// x[:limit] + "..." when x is longer than limit code points (Python's slice for a negative one).
std::string trim_url(const std::string& x, const Value* limit) {
  if (!limit) return x;
  const auto cps = code_points(x);
  const int64_t n = static_cast<int64_t>(cps.size());
  const int64_t l = limit->as_int();
  if (n <= l) return x;
  const int64_t keep = l >= 0 ? l : std::max<int64_t>(0, n + l);
  std::string out;
  for (int64_t k = 0; k < keep; ++k) out += cps[static_cast<size_t>(k)];
  return out + "...";
}

}  // namespace

Value urlize(Interp& in, const Value& v, CallArgs& a) {
  const Value* limit = arg(a, 0, "trim_url_limit");
  if (limit && limit->is_none()) limit = nullptr;
  if (limit && !limit->is_int_like()) fail("argument 'trim_url_limit' must be an integer");
  const bool nofollow = arg_bool(a, 1, "nofollow", false);
  const Value* target_v = arg(a, 2, "target");
  const Value* rel_v = arg(a, 3, "rel");
  const Value* schemes_v = arg(a, 4, "extra_schemes");

  // rel: the given words, nofollow, and the environment's "noopener", sorted and deduplicated.
  std::vector<std::string> rel_parts;
  if (rel_v && !rel_v->is_none()) {
    for (const Value& word : py_split(to_str(*rel_v), nullptr, -1)) rel_parts.push_back(word.str());
  }
  if (nofollow) rel_parts.emplace_back("nofollow");
  rel_parts.emplace_back("noopener");
  std::sort(rel_parts.begin(), rel_parts.end());
  rel_parts.erase(std::unique(rel_parts.begin(), rel_parts.end()), rel_parts.end());
  std::string rel;
  for (const std::string& p : rel_parts) rel += (rel.empty() ? "" : " ") + p;
  const std::string rel_attr = " rel=\"" + html_escape(rel) + "\"";
  std::string target_attr;
  if (target_v && target_v->truthy())
    target_attr = " target=\"" + html_escape(to_str(*target_v)) + "\"";

  std::vector<std::string> schemes;
  if (schemes_v && !schemes_v->is_none()) {
    for (const Value& s : in.iterate(*schemes_v)) {
      // _uri_scheme_re: [\w.+-]{2,}:(/){0,2}
      const std::string& text = need_str(s, "urlize extra_schemes");
      const Chars w(text);
      size_t k = 0;
      while (k < w.size() && (word(w.c[k]) || w.c[k] == '.' || w.c[k] == '+' || w.c[k] == '-')) ++k;
      bool ok = k >= 2 && k < w.size() && w.c[k] == ':';
      if (ok) {
        size_t slashes = 0;
        for (size_t j = k + 1; j < w.size(); ++j) ok = ok && w.c[j] == '/' && ++slashes <= 2;
      }
      if (!ok) fail(repr(s) + " is not a valid URI scheme prefix.");
      schemes.push_back(text);
    }
  }

  const std::string text = html_escape(to_str(v));
  in.check_memory(text.size() * sizeof(std::string_view));  // the code-point index below
  const auto cps = code_points(text);
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    in.step();
    const bool space = is_py_space(decode_cp(cps[i]));
    size_t j = i;
    while (j < cps.size() && is_py_space(decode_cp(cps[j])) == space) ++j;
    const size_t from = static_cast<size_t>(cps[i].data() - text.data());
    const size_t to =
        j < cps.size() ? static_cast<size_t>(cps[j].data() - text.data()) : text.size();
    std::string middle = text.substr(from, to - from);
    in.check_memory(middle.size() * sizeof(uint32_t) * 2);  // the matchers' code points
    i = j;
    if (space) {
      out += middle;
      continue;
    }
    // Leading ( < &lt; and trailing ) > . , &gt; stay outside the link.
    std::string head;
    while (true) {
      if (!middle.empty() && (middle[0] == '(' || middle[0] == '<')) {
        head += middle[0];
        middle.erase(0, 1);
      } else if (starts(middle, "&lt;")) {
        head += "&lt;";
        middle.erase(0, 4);
      } else {
        break;
      }
    }
    size_t keep = middle.size();
    while (true) {
      if (keep > 0 && std::string_view(")>.,\n").find(middle[keep - 1]) != std::string_view::npos) {
        --keep;
      } else if (keep >= 4 && middle.compare(keep - 4, 4, "&gt;") == 0) {
        keep -= 4;
      } else {
        break;
      }
    }
    std::string tail = middle.substr(keep);
    middle.resize(keep);
    // Brackets the link opens take their closing ones back from the tail.
    for (const auto& [open, close] :
         {std::pair<std::string_view, std::string_view>{"(", ")"}, {"<", ">"}, {"&lt;", "&gt;"}}) {
      const size_t opens = count(middle, open);
      if (opens <= count(middle, close)) continue;
      const size_t moves = std::min(opens, count(tail, close));
      for (size_t k = 0; k < moves; ++k) {
        const size_t end = tail.find(close) + close.size();
        middle += tail.substr(0, end);
        tail.erase(0, end);
      }
    }
    if (http_match(middle)) {
      const std::string href =
          starts(middle, "https://") || starts(middle, "http://") ? middle : "https://" + middle;
      middle = "<a href=\"" + href + "\"" + rel_attr + target_attr + ">" + trim_url(middle, limit) +
               "</a>";
    } else if (starts(middle, "mailto:") && email_match(middle.substr(7))) {
      middle = "<a href=\"" + middle + "\">" + middle.substr(7) + "</a>";
    } else if (middle.find('@') != std::string::npos && !starts(middle, "www.") &&
               !starts(middle, "@") && middle.find(':') == std::string::npos &&
               email_match(middle)) {
      middle = "<a href=\"mailto:" + middle + "\">" + middle + "</a>";
    } else {
      for (const std::string& scheme : schemes) {
        if (middle != scheme && starts(middle, scheme)) {
          middle = "<a href=\"" + middle + "\"" + rel_attr + target_attr + ">" + middle + "</a>";
        }
      }
    }
    out += head;
    out += middle;
    out += tail;
    in.check_size(out.size());
  }
  return Value::string(std::move(out));
}

}  // namespace qkv::chat
