#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>

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

// Each case against Python 3's bytes.decode("utf-8", errors="replace") (one U+FFFD per maximal
// ill-formed subpart), which produced the expected column.
const std::pair<std::string, std::string> kReplaceCases[] = {
    {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xe4\xbd\x41", "\xef\xbf\xbd\x41"},
    {"\xf0\x9f\x98", "\xef\xbf\xbd"},
    {"\xf0\x9f\x98\x41", "\xef\xbf\xbd\x41"},
    {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf5\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
    {"\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
    {"\x61\xe2\x82\xac\x62", "\x61\xe2\x82\xac\x62"},
    {"\xe0\xa0\x80", "\xe0\xa0\x80"},
    {"\xf0\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xe1\x80\xe2\x82\xac", "\xef\xbf\xbd\xe2\x82\xac"},
    {"\xff\xfe\x5a", "\xef\xbf\xbd\xef\xbf\xbd\x5a"},
    {"\xed\x9f\xbf", "\xed\x9f\xbf"},
    {"\xe0\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf0\x9f\x98\x81", "\xf0\x9f\x98\x81"},
    {"\xc3", "\xef\xbf\xbd"},
    {"\xef\xbf\xbd\xc3\xa9", "\xef\xbf\xbd\xc3\xa9"},
};

// Decodes a whole text by utf8_step, one U+FFFD per step that is not a valid character.
std::string replace_by_steps(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto st = qkv::core::utf8_step(s.substr(i));
    out += st.valid ? std::string(s.substr(i, st.length)) : std::string("\xef\xbf\xbd");
    i += st.length;
  }
  return out;
}

TEST(Utf8, StepsReplaceMaximalSubpartsAsPython) {
  for (const auto& [in, want] : kReplaceCases) {
    EXPECT_EQ(replace_by_steps(in), want) << ::testing::PrintToString(in);
  }
}

TEST(Utf8, StepMarksTruncatedPrefixes) {
  const auto st = qkv::core::utf8_step("\xf0\x9f\x98");
  EXPECT_FALSE(st.valid);
  EXPECT_TRUE(st.truncated);
  EXPECT_EQ(st.length, 3u);
  const auto bad = qkv::core::utf8_step("\xe0\x80");  // 80 can never follow E0
  EXPECT_FALSE(bad.truncated);
  EXPECT_EQ(bad.length, 1u);
  const auto ok = qkv::core::utf8_step("\xc3\xa9x");
  EXPECT_TRUE(ok.valid);
  EXPECT_EQ(ok.length, 2u);
}

}  // namespace
