// Access to ../shared (reference models, fixtures, tokenizers) from tests.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace qkv::test {

inline std::filesystem::path shared_dir() {
  return std::filesystem::path(QKV_SHARED_DIR);
}

// Path of a file under ../shared, or an empty path when it is absent.
inline std::filesystem::path shared_file(const std::string& rel) {
  auto p = shared_dir() / rel;
  return std::filesystem::exists(p) ? p : std::filesystem::path();
}

}  // namespace qkv::test

// Skips the current test, naming the missing file, when ../shared does not have it.
#define QKV_REQUIRE_SHARED(var, rel)                                                  \
  const std::filesystem::path var = ::qkv::test::shared_file(rel);                    \
  if (var.empty()) {                                                                  \
    GTEST_SKIP() << "reference data " << (::qkv::test::shared_dir() / (rel)).string() \
                 << " is absent (../shared is not checked out beside the project)";   \
  }
