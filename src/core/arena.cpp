#include "core/arena.h"

#include <sys/mman.h>

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
  size_t want = bytes + bytes / 4;
  const size_t align = want >= kHugePage ? kHugePage : kAlign;
  want = (want + align - 1) / align * align;
  void* p = std::aligned_alloc(align, want);
  if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (align == kHugePage) madvise(p, want, MADV_HUGEPAGE);
#endif
  data_ = p;
  capacity_ = want;
  return data_;
}

Arena& thread_arena(int slot) {
  constexpr int kSlots = 3;
  thread_local Arena arenas[kSlots];
  if (slot < 0 || slot >= kSlots) throw std::out_of_range("thread_arena: no such slot");
  return arenas[slot];
}

}  // namespace qkv::core
