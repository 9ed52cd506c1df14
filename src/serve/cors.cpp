// Which origins may call the server from a browser (cors.h).
#include "serve/cors.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace qkv::serve {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// An origin as browsers send it: scheme "://" host [":" port], nothing after.
bool is_origin(const std::string& s) {
  const size_t sep = s.find("://");
  if (sep == std::string::npos || sep == 0) return false;
  const bool scheme_ok =
      std::all_of(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(sep), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
      });
  const std::string rest = s.substr(sep + 3);
  return scheme_ok && !rest.empty() && rest.find_first_of("/?# ") == std::string::npos;
}

}  // namespace

CorsPolicy::CorsPolicy(const std::string& spec) {
  const std::string s = trim(spec);
  if (s == "*") {
    any_ = true;
    return;
  }
  if (s == "none") return;
  if (s.empty()) {
    core::throw_invalid("--cors is empty: give \"*\" (any origin), \"none\", or origins such as ",
                        "\"https://app.example,http://localhost:3000\"");
  }
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = std::min(s.find(',', start), s.size());
    const std::string entry = trim(s.substr(start, comma - start));
    if (!is_origin(entry)) {
      core::throw_invalid("--cors: '", entry, "' is not an origin: expected scheme://host[:port] ",
                          "with no path or trailing slash, e.g. \"http://localhost:3000\"");
    }
    origins_.push_back(lower(entry));
    start = comma + 1;
  }
}

std::optional<std::string> CorsPolicy::allow_origin(const std::string& origin,
                                                    const std::string& host) const {
  if (any_) return std::string("*");
  if (origin.empty()) return std::string();
  const std::string o = lower(origin);
  if (std::find(origins_.begin(), origins_.end(), o) != origins_.end()) return origin;
  // The server's own page (GET /) calls the API from the origin it was loaded from.
  const std::string h = lower(host);
  if (!h.empty() && (o == "http://" + h || o == "https://" + h)) return std::string();
  return std::nullopt;
}

}  // namespace qkv::serve
