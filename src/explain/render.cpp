// Renderers of one map: terminal heatmap (ASCII shades, 256 colours, true colour), PNG, SVG.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

#include "core/file_io.h"
#include "core/utf8.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {

namespace {

void check_map(std::span<const float> map, int64_t n, const char* what) {
  if (n < 0 || static_cast<int64_t>(map.size()) != n * n) {
    throw InvalidArgument(std::string(what) + ": expected a " + std::to_string(n) + " x " +
                          std::to_string(n) + " map (" + std::to_string(n * n) + " floats), got " +
                          std::to_string(map.size()));
  }
}

// Colour scale: white at 0 to dark blue at the map's maximum, with a square-root curve so that
// the small weights of long rows stay visible (probabilities are mostly near 0).
struct Rgb {
  int r, g, b;
};
Rgb shade(float w, float max) {
  const double t = max > 0 ? std::sqrt(std::clamp(double(w) / max, 0.0, 1.0)) : 0.0;
  return {static_cast<int>(std::lround(255 - t * (255 - 8))),
          static_cast<int>(std::lround(255 - t * (255 - 48))),
          static_cast<int>(std::lround(255 - t * (255 - 107)))};
}

float map_max(std::span<const float> map) {
  float m = 0;
  for (float x : map) m = std::max(m, x);
  return m;
}

// The code point of the UTF-8 sequence at s[i] and its length in bytes; a byte that does not start
// a complete, valid sequence (an overlong form, a surrogate, past U+10FFFF) is itself, one byte
// long.
std::pair<char32_t, size_t> decode_utf8(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len <= 1 || i + len > s.size() || !core::valid_utf8(s.substr(i, len))) return {c, 1};
  char32_t cp = c & (0x7f >> len);
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b >> 6) != 2) return {c, 1};
    cp = (cp << 6) | (b & 0x3f);
  }
  return {cp, len};
}

// Terminal columns a code point takes: 2 for the East Asian wide and fullwidth blocks (CJK,
// kana, hangul, fullwidth forms) and emoji, 0 for combining marks, zero-width joiners and
// variation selectors (they draw on the character before), else 1. Unicode's EastAsianWidth W/F
// and categories Mn/Me, reduced to the blocks tokens hold.
int columns(char32_t c) {
  const auto in = [c](char32_t lo, char32_t hi) { return c >= lo && c <= hi; };
  if (in(0x0300, 0x036f) || in(0x1ab0, 0x1aff) || in(0x1dc0, 0x1dff) || in(0x20d0, 0x20ff) ||
      in(0xfe20, 0xfe2f) || in(0xfe00, 0xfe0f) || c == 0x200d) {
    return 0;
  }
  if (in(0x1100, 0x115f) || in(0x2e80, 0x303e) || in(0x3041, 0x33ff) || in(0x3400, 0x4dbf) ||
      in(0x4e00, 0x9fff) || in(0xa000, 0xa4cf) || in(0xa960, 0xa97f) || in(0xac00, 0xd7a3) ||
      in(0xf900, 0xfaff) || in(0xfe30, 0xfe4f) || in(0xff00, 0xff60) || in(0xffe0, 0xffe6) ||
      in(0x1f300, 0x1f64f) || in(0x1f900, 0x1f9ff) || in(0x1f680, 0x1f6ff) ||
      in(0x20000, 0x3fffd)) {
    return 2;
  }
  return 1;
}

// A label cut or padded to `width` terminal columns (a CJK character or an emoji takes two, a
// combining mark none), the token drawn by visible_token() so that whitespace and control tokens
// are never blank rows.
std::string label(const std::string& token, int width) {
  const std::string s = visible_token(token);
  std::string out;
  int cols = 0;
  for (size_t i = 0; i < s.size();) {
    const auto [cp, len] = decode_utf8(s, i);
    const int w = columns(cp);
    if (cols + w > width) break;
    out.append(s, i, len);
    i += len;
    cols += w;
  }
  out.append(static_cast<size_t>(width - cols), ' ');
  return out;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20) out += c;
    }
  }
  return out;
}

// Characters that draw nothing or only blank space (C1 controls, the Unicode spaces other than
// U+0020, zero-width and bidirectional format characters, the byte-order mark): a token of them
// would be a blank label, and a bidi control would reorder the label's text. The zero-width
// joiner and the variation selectors stay, as they shape the emoji before them.
bool invisible(char32_t c) {
  const auto in = [c](char32_t lo, char32_t hi) { return c >= lo && c <= hi; };
  return in(0x80, 0x9f) || c == 0xa0 || c == 0xad || c == 0x34f || c == 0x61c ||
         in(0x115f, 0x1160) || c == 0x1680 || c == 0x180e || in(0x2000, 0x200c) ||
         in(0x200e, 0x200f) || in(0x2028, 0x202f) || in(0x205f, 0x2064) || in(0x2066, 0x206f) ||
         c == 0x3000 || c == 0x3164 || c == 0xfeff || c == 0xffa0;
}

}  // namespace

std::string token_label(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    const size_t len = decode_utf8(bytes, i).second;
    if (c >= 0x80 && len == 1) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    } else {
      out.append(bytes, i, len);
    }
    i += len;
  }
  return out;
}

std::string visible_token(std::string_view text) {
  if (text.empty()) return "\u2205";  // the empty set: a token with no text
  // Spaces count as leading (or trailing) up to the first (from the last) other character.
  const size_t lead = std::min(text.find_first_not_of(' '), text.size());
  const size_t last = text.find_last_not_of(' ');
  const size_t trail = last == std::string_view::npos ? text.size() : last + 1;
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == ' ') {
      out += i < lead || i >= trail ? "\u00b7" : " ";  // middle dot
    } else if (c == '\n') {
      out += "\u21b5";  // downwards arrow with corner leftwards
    } else if (c == '\t') {
      out += "\u2192";  // rightwards arrow
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    } else if (const auto [cp, len] = decode_utf8(text, i); len > 1 && invisible(cp)) {
      char esc[12];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(cp));
      out += esc;
      i += len - 1;
    } else if (c >= 0x80 && len == 1) {  // not part of a complete character (a byte-level token)
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    } else {
      out.append(text, i, len);
      i += len - 1;
    }
  }
  return out;
}

std::string render_heatmap(std::span<const float> map, int64_t n,
                           const std::vector<std::string>& tokens, const HeatmapOptions& o) {
  check_map(map, n, "render_heatmap");
  const int64_t first = std::max<int64_t>(0, n - std::max<int64_t>(o.max_tokens, 1));
  const float mx = map_max(map);
  // Ten ASCII shades from light to dark, chosen by the same square-root curve as the colours.
  static const char kShades[] = " .:-=+*#%@";
  std::ostringstream s;
  if (first > 0) s << "(last " << n - first << " of " << n << " tokens)\n";
  for (int64_t i = first; i < n; ++i) {
    const std::string name = i < static_cast<int64_t>(tokens.size()) ? tokens[i] : "";
    s << label(name, o.label_width) << " |";
    for (int64_t j = first; j < n; ++j) {
      const float w = map[static_cast<size_t>(i * n + j)];
      const double t = mx > 0 ? std::sqrt(std::clamp(double(w) / mx, 0.0, 1.0)) : 0.0;
      if (o.color == HeatmapOptions::Color::ascii) {
        s << kShades[std::min(9, static_cast<int>(t * 9.999))];
        continue;
      }
      const Rgb c = shade(w, mx);
      if (o.color == HeatmapOptions::Color::truecolor) {
        s << "\x1b[48;2;" << c.r << ';' << c.g << ';' << c.b << "m  ";
      } else {  // the 6x6x6 cube of the 256-colour palette
        const auto q = [](int v) { return std::clamp((v - 35) / 40, 0, 5); };
        s << "\x1b[48;5;" << 16 + 36 * q(c.r) + 6 * q(c.g) + q(c.b) << "m  ";
      }
    }
    if (o.color != HeatmapOptions::Color::ascii) s << "\x1b[0m";
    s << "|\n";
  }
  return s.str();
}

void write_png_rgb(const std::string& path, int64_t width, int64_t height,
                   std::span<const uint8_t> rgb) {
  if (width < 1 || height < 1 || width > 1 << 15 || height > 1 << 15) {
    throw InvalidArgument("write_png_rgb: image of " + std::to_string(width) + " x " +
                          std::to_string(height) + " pixels; each side must be in 1..32768");
  }
  if (rgb.size() != static_cast<size_t>(width * height * 3)) {
    throw InvalidArgument("write_png_rgb: " + std::to_string(rgb.size()) + " bytes for a " +
                          std::to_string(width) + " x " + std::to_string(height) +
                          " RGB image, expected " + std::to_string(width * height * 3));
  }
  // Encoded in memory, then written with every write checked (libpng's stdio path would lose a
  // full disk in fclose, which nothing checks).
  std::string encoded;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    throw Error("write_png: libpng could not start (out of memory?)");
  }
  // libpng reports errors by longjmp; nothing with a destructor is created below this point.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error("write_png: libpng failed writing " + path);
  }
  png_set_write_fn(
      png, &encoded,
      [](png_structp p, png_bytep data, size_t n) {
        static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<char*>(data), n);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(rgb.data() + y * width * 3));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  core::write_output_file(path, encoded);
}

void write_png(const std::string& path, std::span<const float> map, int64_t n, int cell) {
  check_map(map, n, "write_png");
  if (cell < 1 || n < 1 || n * cell > 1 << 15) {
    throw InvalidArgument("write_png: " + std::to_string(n) + " tokens x " + std::to_string(cell) +
                          " pixels per cell gives an image side outside " +
                          "1..32768; pass a smaller cell");
  }
  const int64_t side = n * cell;
  std::vector<uint8_t> image(static_cast<size_t>(side * side * 3));
  const float mx = map_max(map);
  for (int64_t y = 0; y < side; ++y) {
    for (int64_t x = 0; x < side; ++x) {
      const Rgb c = shade(map[static_cast<size_t>((y / cell) * n + x / cell)], mx);
      uint8_t* px = image.data() + (y * side + x) * 3;
      px[0] = static_cast<uint8_t>(c.r);
      px[1] = static_cast<uint8_t>(c.g);
      px[2] = static_cast<uint8_t>(c.b);
    }
  }
  write_png_rgb(path, side, side, image);
}

std::string render_svg(std::span<const float> map, int64_t n,
                       const std::vector<std::string>& tokens, int cell) {
  check_map(map, n, "render_svg");
  if (cell < 1) throw InvalidArgument("render_svg: cell must be >= 1");
  const int margin = 8 * cell;  // room for the token labels
  const int64_t side = margin + n * cell;
  const float mx = map_max(map);
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << side << "\" height=\"" << side
    << "\" font-family=\"monospace\" font-size=\"" << cell * 0.8 << "\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (int64_t i = 0; i < n; ++i) {
    const std::string t =
        i < static_cast<int64_t>(tokens.size()) ? xml_escape(visible_token(tokens[i])) : "";
    const double y = margin + (i + 0.75) * cell, x = margin + (i + 0.75) * cell;
    s << "<text x=\"" << margin - 2 << "\" y=\"" << y << "\" text-anchor=\"end\">" << t
      << "</text>\n";
    s << "<text transform=\"translate(" << x << ' ' << margin - 2
      << ") rotate(-90)\" text-anchor=\"start\">" << t << "</text>\n";
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const float w = map[static_cast<size_t>(i * n + j)];
      if (w <= 0) continue;
      const Rgb c = shade(w, mx);
      char fill[8];
      std::snprintf(fill, sizeof fill, "#%02x%02x%02x", c.r, c.g, c.b);
      s << "<rect x=\"" << margin + j * cell << "\" y=\"" << margin + i * cell << "\" width=\""
        << cell << "\" height=\"" << cell << "\" fill=\"" << fill << "\"><title>" << w
        << "</title></rect>\n";
    }
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace qkv
