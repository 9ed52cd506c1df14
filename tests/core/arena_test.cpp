#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>

#include "core/arena.h"

namespace {

TEST(Arena, ReturnsAlignedMemoryAndReusesIt) {
  qkv::core::Arena arena;
  void* a = arena.get(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  std::memset(a, 1, 1000);
  EXPECT_EQ(arena.get(500), a) << "a smaller request must reuse the block";
  void* b = arena.get(5u << 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 64, 0u);
  std::memset(b, 2, 5u << 20);
  EXPECT_GE(arena.capacity(), 5u << 20);
}

TEST(Arena, ThreadArenasAreDistinctPerSlotAndPerThread) {
  EXPECT_NE(&qkv::core::thread_arena(0), &qkv::core::thread_arena(1));
  EXPECT_EQ(&qkv::core::thread_arena(1), &qkv::core::thread_arena(1));
  qkv::core::Arena* other = nullptr;
  std::thread t([&] { other = &qkv::core::thread_arena(0); });
  t.join();
  EXPECT_NE(other, &qkv::core::thread_arena(0));
}

}  // namespace
