// Loss curves of a training run: SVG (also inside the HTML page) and PNG, drawn here.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>

#include "qkv/explain.h"
#include "qkv/trainer.h"

namespace qkv {
namespace {

// The plot area and the data ranges, shared by the SVG and PNG renderers.
struct PlotFrame {
  int width, height;
  int left = 56, right = 16, top = 16, bottom = 36;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;

  double px(double step) const {
    return left + (step - x0) / std::max(1e-12, x1 - x0) * (width - left - right);
  }
  double py(double loss) const {
    return top + (y1 - loss) / std::max(1e-12, y1 - y0) * (height - top - bottom);
  }
};

PlotFrame make_frame(const std::vector<LossPoint>& h, int width, int height) {
  PlotFrame f{width, height};
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const LossPoint& p : h) {
    lo = std::min(lo, p.train_loss);
    hi = std::max(hi, p.train_loss);
    if (p.val_loss) {
      lo = std::min(lo, *p.val_loss);
      hi = std::max(hi, *p.val_loss);
    }
  }
  if (h.empty()) lo = 0, hi = 1;
  if (hi - lo < 1e-9) hi = lo + 1;
  f.y0 = std::max(0.0, lo - 0.05 * (hi - lo));
  f.y1 = hi + 0.05 * (hi - lo);
  f.x0 = 0;
  f.x1 = h.empty() ? 1 : static_cast<double>(h.back().step);
  return f;
}

std::string fmt(double v, int digits = 3) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*g", digits, v);
  return b;
}

constexpr const char* kTrainColor = "#1f5fbf";
constexpr const char* kValColor = "#e07020";

}  // namespace

std::string loss_curve_svg(const std::vector<LossPoint>& h, int width, int height) {
  const PlotFrame f = make_frame(h, width, height);
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double y = f.y0 + (f.y1 - f.y0) * i / 4;
    const double x = f.x0 + (f.x1 - f.x0) * i / 4;
    s << "<line x1=\"" << f.left << "\" x2=\"" << width - f.right << "\" y1=\"" << f.py(y)
      << "\" y2=\"" << f.py(y) << "\" stroke=\"#ddd\"/>\n"
      << "<text x=\"" << f.left - 4 << "\" y=\"" << f.py(y) + 4 << "\" text-anchor=\"end\">"
      << fmt(y) << "</text>\n"
      << "<text x=\"" << f.px(x) << "\" y=\"" << height - f.bottom + 14
      << "\" text-anchor=\"middle\">" << static_cast<int64_t>(std::llround(x)) << "</text>\n";
  }
  s << "<text x=\"" << (f.left + width - f.right) / 2 << "\" y=\"" << height - 4
    << "\" text-anchor=\"middle\">step</text>\n"
    << "<text x=\"12\" y=\"" << (f.top + height - f.bottom) / 2 << "\" transform=\"rotate(-90 12 "
    << (f.top + height - f.bottom) / 2 << ")\" text-anchor=\"middle\">loss (nats/token)</text>\n";
  auto polyline = [&](bool val, const char* color) {
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (const LossPoint& p : h) {
      if (val && !p.val_loss) continue;
      const double y = val ? *p.val_loss : p.train_loss;
      s << f.px(static_cast<double>(p.step)) << ',' << f.py(y) << ' ';
    }
    s << "\"/>\n";
  };
  polyline(false, kTrainColor);
  polyline(true, kValColor);
  s << "<text x=\"" << width - f.right - 150 << "\" y=\"" << f.top + 12 << "\" fill=\""
    << kTrainColor << "\">— training</text>\n"
    << "<text x=\"" << width - f.right - 70 << "\" y=\"" << f.top + 12 << "\" fill=\"" << kValColor
    << "\">— validation</text>\n"
    << "</svg>\n";
  return s.str();
}

std::string loss_curve_html(const std::vector<LossPoint>& h,
                            const std::vector<std::pair<std::string, std::string>>& settings) {
  auto escape = [](const std::string& t) {
    std::string o;
    for (char c : t) {
      if (c == '<')
        o += "&lt;";
      else if (c == '>')
        o += "&gt;";
      else if (c == '&')
        o += "&amp;";
      else
        o += c;
    }
    return o;
  };
  std::ostringstream s;
  s << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>qkv train: loss</title>\n"
    << "<style>body{font-family:sans-serif;margin:24px}td{padding:2px 12px 2px 0}"
    << "th{text-align:left}</style></head><body>\n<h1>Training loss</h1>\n"
    << loss_curve_svg(h) << "<h2>Run</h2>\n<table>\n";
  for (const auto& [k, v] : settings) {
    s << "<tr><th>" << escape(k) << "</th><td>" << escape(v) << "</td></tr>\n";
  }
  if (!h.empty()) {
    s << "<tr><th>last step</th><td>" << h.back().step << "</td></tr>\n"
      << "<tr><th>last training loss</th><td>" << fmt(h.back().train_loss, 4) << "</td></tr>\n";
    for (auto it = h.rbegin(); it != h.rend(); ++it) {
      if (it->val_loss) {
        s << "<tr><th>last validation loss</th><td>" << fmt(*it->val_loss, 4) << " (step "
          << it->step << ")</td></tr>\n";
        break;
      }
    }
  }
  s << "</table>\n<h2>Points</h2>\n<table>\n<tr><th>step</th><th>training</th>"
    << "<th>validation</th></tr>\n";
  for (const LossPoint& p : h) {
    if (!p.val_loss) continue;
    s << "<tr><td>" << p.step << "</td><td>" << fmt(p.train_loss, 4) << "</td><td>"
      << fmt(*p.val_loss, 4) << "</td></tr>\n";
  }
  s << "</table>\n</body></html>\n";
  return s.str();
}

namespace {

// 3 x 5 pixel digits (and '.') for the PNG's axis labels, one row per 3 bits.
constexpr uint16_t kDigits[11] = {0b111101101101111, 0b010110010010111, 0b111001111100111,
                                  0b111001111001111, 0b101101111001001, 0b111100111001111,
                                  0b111100111101111, 0b111001001010010, 0b111101111101111,
                                  0b111101111001111, 0b000000000000010};

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;
  Canvas(int width, int height)
      : w(width), h(height), px(size_t(width) * size_t(height) * 3, 255) {}
  void set(int x, int y, uint32_t rgb) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = px.data() + (size_t(y) * size_t(w) + size_t(x)) * 3;
    p[0] = uint8_t(rgb >> 16), p[1] = uint8_t(rgb >> 8), p[2] = uint8_t(rgb);
  }
  void line(double x0, double y0, double x1, double y1, uint32_t rgb, int thick) {
    const int n = std::max(1, int(std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)))));
    for (int i = 0; i <= n; ++i) {
      const double t = double(i) / n;
      const int x = int(std::lround(x0 + (x1 - x0) * t)), y = int(std::lround(y0 + (y1 - y0) * t));
      for (int dy = 0; dy < thick; ++dy)
        for (int dx = 0; dx < thick; ++dx) set(x + dx - thick / 2, y + dy - thick / 2, rgb);
    }
  }
  // Digits and '.', 2 pixels per font pixel, right-aligned at x when right is true.
  void text(const std::string& s, int x, int y, bool right) {
    const int adv = 8;
    if (right) x -= adv * int(s.size());
    for (char c : s) {
      const int g = c == '.' ? 10 : (c >= '0' && c <= '9' ? c - '0' : -1);
      if (g >= 0) {
        for (int r = 0; r < 5; ++r)
          for (int col = 0; col < 3; ++col)
            if (kDigits[g] >> (14 - (r * 3 + col)) & 1)
              for (int k = 0; k < 4; ++k) set(x + col * 2 + k % 2, y + r * 2 + k / 2, 0x404040);
      }
      x += adv;
    }
  }
};

}  // namespace

void write_loss_curve_png(const std::string& path, const std::vector<LossPoint>& h, int width,
                          int height) {
  const PlotFrame f = make_frame(h, width, height);
  Canvas c(width, height);
  for (int i = 0; i <= 4; ++i) {
    const double y = f.y0 + (f.y1 - f.y0) * i / 4;
    const double x = f.x0 + (f.x1 - f.x0) * i / 4;
    c.line(f.left, f.py(y), width - f.right, f.py(y), 0xdddddd, 1);
    c.text(fmt(y), f.left - 6, int(f.py(y)) - 5, true);
    const std::string xs = std::to_string(static_cast<int64_t>(std::llround(x)));
    c.text(xs, int(f.px(x)) - 4 * int(xs.size()), height - f.bottom + 8, false);
  }
  c.line(f.left, f.top, f.left, height - f.bottom, 0x404040, 1);
  c.line(f.left, height - f.bottom, width - f.right, height - f.bottom, 0x404040, 1);
  auto series = [&](bool val, uint32_t rgb) {
    bool have = false;
    double lx = 0, ly = 0;
    for (const LossPoint& p : h) {
      if (val && !p.val_loss) continue;
      const double x = f.px(static_cast<double>(p.step)),
                   y = f.py(val ? *p.val_loss : p.train_loss);
      if (have) c.line(lx, ly, x, y, rgb, 2);
      lx = x, ly = y, have = true;
    }
  };
  series(false, 0x1f5fbf);
  series(true, 0xe07020);
  write_png_rgb(path, width, height, c.px);
}

}  // namespace qkv
