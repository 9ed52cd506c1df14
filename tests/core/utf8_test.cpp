#include <gtest/gtest.h>

#include <string>

#include "core/utf8.h"

namespace {

using qkv::core::find_invalid_utf8;

TEST(Utf8, FindsTheFirstInvalidSequence) {
  const auto npos = std::string_view::npos;
  EXPECT_EQ(find_invalid_utf8("plain ascii"), npos);
  EXPECT_EQ(find_invalid_utf8("\xe6\x88\x91 \xf0\x9f\x98\x81"), npos);  // CJK, emoji
  EXPECT_EQ(find_invalid_utf8("ab\xc0\x80"), 2u);                       // overlong NUL
  EXPECT_EQ(find_invalid_utf8("a\xed\xa0\x80"), 1u);                    // surrogate U+D800
  EXPECT_EQ(find_invalid_utf8("\xf4\x90\x80\x80"), 0u);                 // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("ok\xe6\x88"), 2u);                       // truncated
  EXPECT_EQ(find_invalid_utf8("x\x80"), 1u);                            // stray continuation
  EXPECT_TRUE(qkv::core::valid_utf8("\xc3\xa9"));
  EXPECT_FALSE(qkv::core::valid_utf8("\xff"));
}

}  // namespace
