// Cross-origin requests (CORS, the Fetch standard): which web pages from other origins may call
// the server from a browser. `--cors` takes "*" (any origin, the default, as llama-server and vLLM
// answer), "none", or a comma-separated list of origins ("https://app.example,
// http://localhost:3000"). The server's own page (an Origin naming the Host it was sent to) is
// always allowed; a request without an Origin (curl, the SDKs) is not a browser's and is served.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace qkv::serve {

class CorsPolicy {
 public:
  // Throws qkv::InvalidArgument naming the entry that is not an origin (scheme://host[:port]).
  explicit CorsPolicy(const std::string& spec);

  // What a request from `origin` (its Origin header; empty: none) sent to `host` (its Host
  // header) may see. nullopt: refuse it (403). An empty string: serve it without CORS headers.
  // Otherwise the value of Access-Control-Allow-Origin.
  std::optional<std::string> allow_origin(const std::string& origin, const std::string& host) const;
  // Whether the answer depends on the Origin (then responses say `Vary: Origin`, so that a cache
  // does not hand one origin's answer to another).
  bool varies() const { return !any_; }

 private:
  bool any_ = false;
  std::vector<std::string> origins_;  // lower-case
};

}  // namespace qkv::serve
