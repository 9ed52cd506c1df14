// Reusable, 64-byte aligned scratch memory.
//
// A fresh 4 KiB page costs 11-15 us to fault in on our VMs (docs/PERFORMANCE.md), more than the
// attention work on it for short sequences, so kernels keep their working buffers in an Arena
// that lives across calls and only grows. Large blocks ask for transparent huge pages.
#pragma once

#include <cstddef>
#include <memory>

namespace qkv::core {

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();

  // Returns at least `bytes` bytes, 64-byte aligned. Invalidates earlier pointers from this arena
  // only when it has to grow.
  void* get(size_t bytes);
  template <typename T>
  T* get_as(size_t count) {
    return static_cast<T*>(get(count * sizeof(T)));
  }
  size_t capacity() const { return capacity_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// Allocates `bytes` (rounded up into *rounded) for std::free: 64-byte aligned, and from 2 MiB up
// 2 MiB aligned and advised to use transparent huge pages. Throws std::bad_alloc.
void* alloc_large_block(size_t bytes, size_t* rounded);

// Arenas owned by the calling OS thread (thread_local, so concurrent callers never share one).
// Slot 0 is for a kernel's per-item working set, slots 1 and 2 for what a call's dispatcher keeps
// for the whole call; no two alias.
Arena& thread_arena(int slot);

}  // namespace qkv::core
