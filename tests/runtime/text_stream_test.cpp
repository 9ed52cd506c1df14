// Stop strings in streamed text: held back while they may still match, cut when they do.
#include <gtest/gtest.h>

#include "qkv/error.h"
#include "runtime/text_stream.h"

namespace qkv::runtime {
namespace {

// Feeds pieces, collecting what is released after each one.
std::string feed(TextStream& s, const std::vector<std::string>& pieces,
                 std::vector<std::string>* released = nullptr) {
  std::string out;
  for (const auto& p : pieces) {
    const bool stop = s.append(p);
    const std::string r(s.take_ready());
    if (released) released->push_back(r);
    out += r;
    if (stop) return out;
  }
  out += std::string(s.take_all());
  return out;
}

TEST(TextStream, NoStopStringsPassesEverythingAtOnce) {
  TextStream s({});
  std::vector<std::string> rel;
  EXPECT_EQ(feed(s, {"Once", " upon", " a"}, &rel), "Once upon a");
  EXPECT_EQ(rel, (std::vector<std::string>{"Once", " upon", " a"}));
}

TEST(TextStream, HoldsBackAPossibleStartAndCutsAtTheStop) {
  TextStream s({"\nUser:"});
  std::vector<std::string> rel;
  EXPECT_EQ(feed(s, {"Hi", " there\n", "Us", "er:", " more"}, &rel), "Hi there");
  EXPECT_EQ(rel, (std::vector<std::string>{"Hi", " there", "", ""}));
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.text(), "Hi there");
}

TEST(TextStream, ReleasesAHeldTailThatDidNotMatch) {
  TextStream s({"END"});
  std::vector<std::string> rel;
  EXPECT_EQ(feed(s, {"the E", "N", "d"}, &rel), "the ENd");
  EXPECT_EQ(rel, (std::vector<std::string>{"the ", "", "ENd"}));
  TextStream t({"END"});
  EXPECT_EQ(feed(t, {"the E"}), "the E");  // the end of generation releases the tail
  EXPECT_FALSE(t.stopped());
}

TEST(TextStream, EarliestOfSeveralStopsWins) {
  TextStream s({"cd", "b"});
  EXPECT_EQ(feed(s, {"abcd"}), "a");
  TextStream t({"xyz", "yq"});
  EXPECT_EQ(feed(t, {"ax", "yq"}), "ax");
}

TEST(TextStream, StopInsideOnePiece) {
  TextStream s({"."});
  EXPECT_EQ(feed(s, {"One. Two."}), "One");
}

TEST(TextStream, InvalidStopStrings) {
  EXPECT_THROW(TextStream({""}), InvalidArgument);
  EXPECT_THROW(TextStream({"\x80"
                           "a"}),
               InvalidArgument);
}

}  // namespace
}  // namespace qkv::runtime
