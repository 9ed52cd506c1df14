// Helpers shared by the explain tests: loading stories260K with its tokenizer, temporary paths,
// and numpy's own check of an exported [layers, heads, T, T] map file.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "qkv/model.h"

namespace qkv::test {

// llama2.c models in ../shared keep their tokenizer, tok512.bin, beside the weights.
inline LoadOptions tokenizer_beside(const std::filesystem::path& bin) {
  LoadOptions o;
  o.tokenizer_path = (bin.parent_path() / "tok512.bin").string();
  return o;
}

inline std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::path(::testing::TempDir()) / name;
}

// Whether Debian's /usr/bin/python3 has numpy (python3-numpy); the tests below skip without it.
inline bool have_numpy() {
  return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}
constexpr const char* kNoNumpy =
    "/usr/bin/python3 with numpy is not installed (Debian python3-numpy)";

// numpy itself loads `path` and checks: float32, shape (layers, heads, t, t), every row sums to 1,
// nothing above the diagonal (causal maps).
inline void expect_numpy_loads_causal_maps(const std::filesystem::path& path, int64_t layers,
                                           int64_t heads, int64_t t) {
  const std::string cmd = "/usr/bin/python3 -c \"import numpy as np; a = np.load('" +
                          path.string() + "'); assert a.dtype == np.float32; assert a.shape == (" +
                          std::to_string(layers) + ", " + std::to_string(heads) + ", " +
                          std::to_string(t) + ", " + std::to_string(t) +
                          "), a.shape; assert np.allclose(a.sum(-1), 1, atol=1e-5); "
                          "assert np.all(np.triu(a, 1) == 0)\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace qkv::test
