#include "qkv_bench/buffer.h"

#include "core/large_buffer.h"

namespace qkv::bench {

Buffer::Buffer(std::size_t bytes) : size_(bytes) {
  auto b = std::make_shared<core::LargeBuffer>(bytes);
  data_ = b->data();
  owner_ = std::move(b);
}

}  // namespace qkv::bench
