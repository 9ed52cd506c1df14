// Access to ../shared (reference models, fixtures, tokenizers) from tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace qkv::test {

// ../shared as configured at build time (QKV_SHARED_DIR); the environment variable of the same
// name overrides it (the tests of QKV_REQUIRE_SHARED point it at an empty directory).
inline std::filesystem::path shared_dir() {
  const char* env = std::getenv("QKV_SHARED_DIR");
  return std::filesystem::path(env && *env ? env : QKV_SHARED_DIR);
}

// Path of a file under ../shared, or an empty path when it is absent.
inline std::filesystem::path shared_file(const std::string& rel) {
  auto p = shared_dir() / rel;
  return std::filesystem::exists(p) ? p : std::filesystem::path();
}

// True when QKV_REQUIRE_SHARED is set (to anything but "" or "0"): CI sets it, so that a test
// that needs ../shared fails instead of skipping when the data is missing.
inline bool shared_required() {
  const char* env = std::getenv("QKV_REQUIRE_SHARED");
  return env && *env && std::strcmp(env, "0") != 0;
}

}  // namespace qkv::test

// Skips the current test, naming the missing file, when ../shared does not have it; fails it
// instead when QKV_REQUIRE_SHARED is set.
#define QKV_REQUIRE_SHARED(var, rel)                                                  \
  const std::filesystem::path var = ::qkv::test::shared_file(rel);                    \
  if (var.empty()) {                                                                  \
    if (::qkv::test::shared_required()) {                                             \
      FAIL() << "reference data " << (::qkv::test::shared_dir() / (rel)).string()     \
             << " is absent and QKV_REQUIRE_SHARED is set";                           \
    }                                                                                 \
    GTEST_SKIP() << "reference data " << (::qkv::test::shared_dir() / (rel)).string() \
                 << " is absent (../shared is not checked out beside the project)";   \
  }
