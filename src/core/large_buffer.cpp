#include "core/large_buffer.h"

#include <cstdlib>
#include <cstring>

#include "core/arena.h"

namespace qkv::core {

LargeBuffer::LargeBuffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  size_t rounded = 0;
  data_ = alloc_large_block(bytes, &rounded);
  std::memset(data_, 0, rounded);
}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = o.data_, size_ = o.size_;
    o.data_ = nullptr, o.size_ = 0;
  }
  return *this;
}

LargeBuffer::~LargeBuffer() {
  std::free(data_);
}

}  // namespace qkv::core
