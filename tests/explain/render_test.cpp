// Renderers: the PNG decoded again with libpng (size, colours follow the weights), the SVG's
// cells and labels, terminal heatmaps in ASCII and colour.
#include <png.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>

#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {
namespace {

// A causal map: row i splits its mass between key 0 (0.75) and itself (0.25); row 0 all on 0.
std::vector<float> sample_map(int64_t n) {
  std::vector<float> m(static_cast<size_t>(n * n), 0.f);
  m[0] = 1.f;
  for (int64_t i = 1; i < n; ++i) {
    m[static_cast<size_t>(i * n)] = 0.75f;
    m[static_cast<size_t>(i * n + i)] = 0.25f;
  }
  return m;
}

TEST(Render, PngDecodesToTheRightSizeWithColoursFollowingWeights) {
  const int64_t n = 5;
  const int cell = 3;
  const std::string path = (std::filesystem::path(::testing::TempDir()) / "explain.png").string();
  write_png(path, sample_map(n), n, cell);
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  ASSERT_NE(png_image_begin_read_from_file(&img, path.c_str()), 0) << img.message;
  img.format = PNG_FORMAT_RGB;
  EXPECT_EQ(img.width, static_cast<png_uint_32>(n * cell));
  EXPECT_EQ(img.height, static_cast<png_uint_32>(n * cell));
  std::vector<png_byte> px(PNG_IMAGE_SIZE(img));
  ASSERT_NE(png_image_finish_read(&img, nullptr, px.data(), 0, nullptr), 0) << img.message;
  const auto at = [&](int64_t i, int64_t j) {  // the red channel at the centre of cell (i, j)
    return px[static_cast<size_t>(3 * ((i * cell + cell / 2) * n * cell + j * cell + cell / 2))];
  };
  std::set<int> distinct;
  for (size_t i = 0; i < px.size(); i += 3) distinct.insert(px[i]);
  EXPECT_GE(distinct.size(), 3u);  // white, the 0.25 shade and the 0.75/1.0 shades
  EXPECT_EQ(at(0, 4), 255);        // zero weight: white
  EXPECT_LT(at(0, 0), at(2, 0));   // 1.0 darker than 0.75
  EXPECT_LT(at(2, 0), at(2, 2));   // 0.75 darker than 0.25
  EXPECT_LT(at(2, 2), 255);
  EXPECT_THROW(write_png(path, sample_map(n), n + 1, cell), InvalidArgument);
  EXPECT_THROW(write_png("/nonexistent-dir/x.png", sample_map(n), n, cell), Error);
}

TEST(Render, SvgHasOneCellPerNonZeroWeightAndEscapedLabels) {
  const int64_t n = 4;
  const std::string svg = render_svg(sample_map(n), n, {"<s>", "a", "b&c", "d"});
  size_t cells = 0;
  for (size_t p = svg.find("<rect x="); p != std::string::npos; p = svg.find("<rect x=", p + 1)) {
    ++cells;
  }
  EXPECT_EQ(cells, 1u + 2 * (n - 1));
  EXPECT_NE(svg.find("&lt;s&gt;"), std::string::npos);
  EXPECT_NE(svg.find("b&amp;c"), std::string::npos);
  EXPECT_EQ(svg.find("<s>"), std::string::npos);
}

TEST(Render, HeatmapAsciiShadesAndColourEscapes) {
  const int64_t n = 3;
  const std::vector<std::string> tokens = {"first", "a\nb", "third-token-long"};
  const std::string ascii = render_heatmap(sample_map(n), n, tokens, {.label_width = 6});
  // One line per row: label (6 columns), " |", n cells, "|".
  const std::string want_row0 = "first  |@  |";
  EXPECT_EQ(ascii.substr(0, want_row0.size()), want_row0);
  EXPECT_NE(ascii.find("\na\u21b5b    |"), std::string::npos);  // newline drawn as ↵
  EXPECT_EQ(std::count(ascii.begin(), ascii.end(), '\n'), 3);
  EXPECT_EQ(ascii.find("\x1b["), std::string::npos);
  const std::string color =
      render_heatmap(sample_map(n), n, tokens, {.color = HeatmapOptions::Color::truecolor});
  EXPECT_NE(color.find("\x1b[48;2;8;48;107m"), std::string::npos);  // the maximum, darkest
  EXPECT_NE(color.find("\x1b[48;2;255;255;255m"), std::string::npos);
  const std::string c256 =
      render_heatmap(sample_map(n), n, tokens, {.color = HeatmapOptions::Color::ansi256});
  EXPECT_NE(c256.find("\x1b[48;5;"), std::string::npos);
  // More tokens than max_tokens: the last ones, said so.
  const std::string tail =
      render_heatmap(sample_map(n), n, tokens, {.label_width = 4, .max_tokens = 2});
  EXPECT_EQ(tail.rfind("(last 2 of 3 tokens)", 0), 0u);
}

// Row labels are padded to terminal columns, not characters: a CJK character or an emoji takes
// two columns, a combining mark none (Unicode's EastAsianWidth W and category Mn), so the map's
// "|" lines up under every label.
TEST(Render, HeatmapLabelsCountTerminalColumns) {
  const int64_t n = 6;
  const std::vector<std::string> tokens = {
      "ab",                                    // 2 columns
      "\u732b",                                // 猫: 2
      "\U0001f431",                            // 🐱: 2
      "e\u0301",                               // e + combining acute: 1
      "\u732b\u732b\u732b\u732b\u732b\u732b",  // 12 columns, cut to 5 characters (10)
      "a\u732b\u732b\u732b\u732b\u732b",       // 11 columns: a and 4 characters (9), then a space
  };
  const std::string map = render_heatmap(sample_map(n), n, tokens, {.label_width = 10});
  const std::vector<std::string> labels = {
      "ab        ",
      "\u732b        ",
      "\U0001f431        ",
      "e\u0301         ",
      "\u732b\u732b\u732b\u732b\u732b",
      "a\u732b\u732b\u732b\u732b ",
  };
  std::istringstream lines(map);
  std::string line;
  for (const std::string& want : labels) {
    ASSERT_TRUE(std::getline(lines, line));
    EXPECT_EQ(line.substr(0, want.size() + 2), want + " |") << line;
  }
}

// Whitespace and control tokens are drawn visibly, never as blank labels; the report's script
// (report.js, visible()) follows the same rules, checked in tests/explain/report_test.py.
TEST(Render, VisibleTokenDrawsWhitespaceAndControls) {
  EXPECT_EQ(visible_token("cat"), "cat");
  EXPECT_EQ(visible_token(" cat"), "\u00b7cat");
  EXPECT_EQ(visible_token("  "), "\u00b7\u00b7");
  EXPECT_EQ(visible_token("a b"), "a b");  // inner spaces stay spaces
  EXPECT_EQ(visible_token("end "), "end\u00b7");
  EXPECT_EQ(visible_token("\n"), "\u21b5");
  EXPECT_EQ(visible_token("\n\n"), "\u21b5\u21b5");
  EXPECT_EQ(visible_token("\t"), "\u2192");
  EXPECT_EQ(visible_token("\r\n"), "\\r\u21b5");
  EXPECT_EQ(visible_token(std::string("\x1b\x00\x7f", 3)), "\\x1b\\x00\\x7f");
  EXPECT_EQ(visible_token(""), "\u2205");
  EXPECT_EQ(visible_token("\u00e9t\u00e9"), "\u00e9t\u00e9");  // UTF-8 untouched
  // Characters that draw nothing, or reorder what follows, are escaped: no-break space, zero-width
  // space, ideographic space, a C1 control, the byte-order mark, a right-to-left override.
  EXPECT_EQ(visible_token("\u00a0"), "\\u00a0");
  EXPECT_EQ(visible_token("a\u200bb"), "a\\u200bb");
  EXPECT_EQ(visible_token("\u3000"), "\\u3000");
  EXPECT_EQ(visible_token("\u0085"), "\\u0085");
  EXPECT_EQ(visible_token("\ufeffx"), "\\ufeffx");
  EXPECT_EQ(visible_token("a\u202eb"), "a\\u202eb");
  // Emoji keep their joiners and variation selectors; CJK is drawn as itself.
  EXPECT_EQ(visible_token("\U0001f468\u200d\U0001f469"), "\U0001f468\u200d\U0001f469");
  EXPECT_EQ(visible_token("\u2764\ufe0f"), "\u2764\ufe0f");
  EXPECT_EQ(visible_token("\u732b"), "\u732b");
  // A byte-level token holding part of a character (\u732b is e7 8c ab) shows its bytes, and the
  // terminal gets valid UTF-8.
  EXPECT_EQ(visible_token("\xe7"), "\\xe7");
  EXPECT_EQ(visible_token("\xe7\x8c"), "\\xe7\\x8c");
  EXPECT_EQ(visible_token(std::string("a\xab") + "b"), "a\\xabb");
  // The terminal heatmap: no row label of a whitespace token is blank.
  const int64_t n = 3;
  const std::string map = render_heatmap(sample_map(n), n, {" ", "\n", "\t"}, {.label_width = 4});
  EXPECT_NE(map.find("\u00b7    |"), std::string::npos);
  EXPECT_NE(map.find("\u21b5    |"), std::string::npos);
  EXPECT_NE(map.find("\u2192    |"), std::string::npos);
  // The SVG labels too.
  const std::string svg = render_svg(sample_map(n), n, {" ", "\n", "\t"});
  EXPECT_NE(svg.find(">\u21b5</text>"), std::string::npos);
}

// Token labels of partial characters: each byte outside a complete, valid UTF-8 character is
// written \xNN (lowercase), everything else as it is, and the result is always valid UTF-8. The
// bytes are UTF-8's own (U+732B is e7 8c ab, U+1F431 is f0 9f 90 b1), not the code's.
TEST(Render, TokenTextShowsTheBytesOfPartialCharacters) {
  EXPECT_EQ(token_label("cat"), "cat");
  EXPECT_EQ(token_label("\u732b"), "\u732b");
  EXPECT_EQ(token_label("\U0001f431"), "\U0001f431");
  EXPECT_EQ(token_label("\xe7"), "\\xe7");                    // a byte-fallback token <0xE7>
  EXPECT_EQ(token_label("\xe7\x8c"), "\\xe7\\x8c");           // a BPE token: 2 of 3 bytes
  EXPECT_EQ(token_label("\x8c\xab"), "\\x8c\\xab");           // the other end
  EXPECT_EQ(token_label("\xf0\x9f\x90"), "\\xf0\\x9f\\x90");  // 3 of an emoji's 4
  EXPECT_EQ(token_label(" \xe7\x8c\xab!"), " \u732b!");       // the three together: the character
  EXPECT_EQ(token_label("a\xab"), "a\\xab");
  // Byte sequences that look like UTF-8 but are not: overlong forms, surrogates, past U+10FFFF.
  EXPECT_EQ(token_label("\xc0\x80"), "\\xc0\\x80");
  EXPECT_EQ(token_label("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  EXPECT_EQ(token_label("\xf5\x80\x80\x80"), "\\xf5\\x80\\x80\\x80");
  EXPECT_EQ(token_label("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
  // The renderers' labels agree with it and never carry invalid UTF-8 either.
  EXPECT_EQ(visible_token("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  EXPECT_EQ(visible_token("\xc0\x80"), "\\xc0\\x80");
  EXPECT_EQ(visible_token(token_label("\xe7")), "\\xe7");  // drawing a label again keeps it
}

}  // namespace
}  // namespace qkv
