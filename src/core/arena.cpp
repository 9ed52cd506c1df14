#include "core/arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace qkv::core {
namespace {
constexpr size_t kAlign = 64;
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

Arena::~Arena() {
  std::free(data_);
}

void* Arena::get(size_t bytes) {
  if (bytes <= capacity_) return data_;
  std::free(data_);
  data_ = nullptr;
  capacity_ = 0;
  // Grow geometrically so that a slowly growing sequence does not re-fault pages every call.
  size_t want = 0;
  data_ = alloc_large_block(bytes + bytes / 4, &want);
  capacity_ = want;
  return data_;
}

void* alloc_large_block(size_t bytes, size_t* rounded) {
  const size_t align = bytes >= kHugePage ? kHugePage : kAlign;
  const size_t want = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, want);
  if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  // Advice only: where transparent huge pages are off, the block stays on 4 KiB pages.
  if (align == kHugePage) madvise(p, want, MADV_HUGEPAGE);
#endif
  *rounded = want;
  return p;
}

Arena& thread_arena(int slot) {
  constexpr int kSlots = 3;
  thread_local Arena arenas[kSlots];
  if (slot < 0 || slot >= kSlots) throw std::out_of_range("thread_arena: no such slot");
  return arenas[slot];
}

}  // namespace qkv::core
