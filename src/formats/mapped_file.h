// Read-only memory map of a whole file, and a bounds-checked cursor over bytes that throws
// errors naming the file, the field, and expected vs found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "qkv/model_file.h"

namespace qkv {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  // Bytes held in memory under a display name (in-memory parsing: tests, fuzzers).
  MappedFile(std::string name, std::span<const std::byte> bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const std::byte* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  std::string path_;
  const std::byte* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  std::vector<std::byte> owned_;
};

}  // namespace qkv

namespace qkv::formats {

// Sequential little-endian reader over [data, data + size). Every read checks the bounds first.
class ByteReader {
 public:
  ByteReader(std::string_view file, const std::byte* data, uint64_t size)
      : file_(file), data_(data), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  void seek(uint64_t pos) { pos_ = pos; }

  // Throws "FILE: FIELD at byte P: expected N more bytes, found M (file truncated)".
  void need(uint64_t n, std::string_view field) const {
    if (n > remaining()) {
      core::throw_error(file_, ": ", field, " at byte ", pos_, ": expected ", n,
                        " more bytes, found ", remaining(), " (file truncated or corrupt)");
    }
  }
  template <typename T>
  T read(std::string_view field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view read_bytes(uint64_t n, std::string_view field) {
    need(n, field);
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  const std::byte* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// a * b, throwing when it overflows int64 (sizes come from untrusted files).
int64_t checked_mul(int64_t a, int64_t b, std::string_view file, std::string_view field);

// Validates the tensors of one data region: each [offset, offset + n_bytes) inside
// [region_begin, region_end), aligned to `alignment` (relative to region_begin; 0 = no rule),
// and no two overlapping. Throws naming the tensors.
void validate_tensor_layout(std::string_view file, std::vector<TensorInfo*>& tensors,
                            uint64_t region_begin, uint64_t region_end, uint64_t alignment);

// The kernels read f32 values and fp16 block scales in place, which needs their natural
// alignment (at most 4 bytes). A file may place data anywhere (a GGUF with general.alignment 1
// or 2, a safetensors header of any length): the tensors whose data starts off a 4-byte boundary
// are copied into one owned, aligned buffer appended to `storage`. Well-formed files copy nothing.
void align_tensor_data(const std::vector<TensorInfo*>& tensors,
                       std::vector<std::shared_ptr<const void>>& storage);

// Bytes of a tensor of `type` and row-major `shape`, checking overflow and block divisibility.
uint64_t tensor_bytes(std::string_view file, std::string_view name, TensorType type,
                      const std::vector<int64_t>& shape);

}  // namespace qkv::formats
