#include "core/large_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>

namespace {

using qkv::core::LargeBuffer;

bool all_zero(const LargeBuffer& b) {
  return std::all_of(b.data(), b.data() + b.size(), [](std::byte x) { return x == std::byte{0}; });
}

TEST(LargeBuffer, ZeroFilledAndAlignedBySize) {
  const LargeBuffer small(1000);
  EXPECT_EQ(small.size(), 1000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 64, 0u);
  EXPECT_TRUE(all_zero(small));
  // From 2 MiB on, blocks start on a huge-page boundary (the size need not be a multiple of it).
  const LargeBuffer big((size_t{5} << 20) + 3);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % (size_t{2} << 20), 0u);
  EXPECT_TRUE(all_zero(big));
  const LargeBuffer none(0);
  EXPECT_EQ(none.data(), nullptr);
  EXPECT_EQ(none.size(), 0u);
}

TEST(LargeBuffer, MovesOwnership) {
  LargeBuffer a(4096);
  a.as<float>()[1023] = 2.5f;
  std::byte* p = a.data();
  LargeBuffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.as<float>()[1023], 2.5f);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is empty
  EXPECT_EQ(a.size(), 0u);
  LargeBuffer c(16);
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), 4096u);
}

}  // namespace
