// Benchmark tensors in the storage the runtime's KV cache uses (core::LargeBuffer: zero-filled,
// blocks of 2 MiB or more on transparent huge pages), for programs that see only the public
// headers (`qkv bench`): a decode streams K and V once, and the bandwidth it is compared with is
// measured on huge pages too.
#pragma once

#include <cstddef>
#include <memory>

namespace qkv::bench {

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t bytes);  // zero-filled; throws std::bad_alloc

  std::byte* data() const { return data_; }
  template <typename T>
  T* as() const {
    return reinterpret_cast<T*>(data_);
  }
  std::size_t size() const { return size_; }  // bytes asked for

 private:
  std::shared_ptr<void> owner_;  // the core::LargeBuffer
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace qkv::bench
