// How many randomized cases a test runs: all of them in optimised builds, a quarter under the
// sanitizers (which run the double-precision reference ~30x slower), never fewer than one.
#pragma once

namespace qkv::test {

#ifdef QKV_SANITIZE_BUILD
constexpr int kCaseDivisor = 4;
#else
constexpr int kCaseDivisor = 1;
#endif

constexpr int cases(int n) {
  return n / kCaseDivisor > 0 ? n / kCaseDivisor : 1;
}

}  // namespace qkv::test
