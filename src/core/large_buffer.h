// Owning, zero-filled storage for large arrays that are streamed from memory (KV caches, benchmark
// tensors).
//
// Blocks of 2 MiB or more are 2 MiB aligned and advised to use transparent huge pages: a decode
// reads the whole KV cache once per token, and on 4 KiB pages that stream crosses a page (a TLB
// entry, and a boundary the hardware prefetchers stop at) every 4 KiB. Measured on dev: decode of
// 32k f16 keys, 12 heads, d 64, 2 threads, 14-19% faster (docs/PERFORMANCE.md). Smaller blocks
// are 64-byte aligned.
#pragma once

#include <cstddef>

namespace qkv::core {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t bytes);  // zero-filled; throws std::bad_alloc
  LargeBuffer(LargeBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr, o.size_ = 0;
  }
  LargeBuffer& operator=(LargeBuffer&& o) noexcept;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  ~LargeBuffer();

  std::byte* data() { return static_cast<std::byte*>(data_); }
  const std::byte* data() const { return static_cast<const std::byte*>(data_); }
  template <typename T>
  T* as() {
    return static_cast<T*>(data_);
  }
  size_t size() const { return size_; }  // bytes asked for

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qkv::core
