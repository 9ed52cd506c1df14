// Files read and written by the tests: whole files as bytes, and raw little-endian arrays for the
// test drivers that exchange tensors with the PyTorch scripts (tests/kernels/attention_io.cpp,
// attention_backward_io.cpp, tests/train/gpt_io.cpp).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "qkv/error.h"

namespace qkv::test {

// The whole file at `path`; throws naming the file when it cannot be opened.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Exactly n values of X from `path`; throws naming the file when it is shorter.
template <typename X>
std::vector<X> read_raw(const std::string& path, size_t n) {
  std::vector<X> v(n);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(X)));
  if (!f) throw Error("cannot read " + std::to_string(n) + " values from " + path);
  return v;
}

template <typename X>
void write_raw(const std::string& path, const std::vector<X>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()),
          static_cast<std::streamsize>(v.size() * sizeof(X)));
  if (!f) throw Error("cannot write " + path);
}

}  // namespace qkv::test
