// The self-contained HTML report: report.html with the data (JSON) and report.js inlined.
#include <cmath>

#include "explain_internal.h"
#include "qkv/explain.h"

namespace qkv {

namespace explain_detail {
extern const std::string_view kReportHtml;
extern const std::string_view kReportJs;
}  // namespace explain_detail

using namespace explain_detail;

namespace {

std::string base64(const std::vector<uint8_t>& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    const uint32_t b = (uint32_t(in[i]) << 16) |
                       (i + 1 < in.size() ? uint32_t(in[i + 1]) << 8 : 0) |
                       (i + 2 < in.size() ? uint32_t(in[i + 2]) : 0);
    out += k[(b >> 18) & 63];
    out += k[(b >> 12) & 63];
    out += i + 1 < in.size() ? k[(b >> 6) & 63] : '=';
    out += i + 2 < in.size() ? k[b & 63] : '=';
  }
  return out;
}

// uint16 of sqrt(p) * 65535, little-endian: 2 bytes per entry, resolution 2e-10 near 0 and 3e-5
// near 1 (the square root spends the levels where attention weights mostly are).
std::string encode_map(const std::vector<float>& m, int64_t n, bool tri) {
  std::vector<uint8_t> bytes;
  bytes.reserve(static_cast<size_t>(tri ? n * (n + 1) : 2 * n * n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= (tri ? i : n - 1); ++j) {
      const double p = std::clamp(double(m[static_cast<size_t>(i * n + j)]), 0.0, 1.0);
      const auto q = static_cast<uint16_t>(std::lround(std::sqrt(p) * 65535));
      bytes.push_back(static_cast<uint8_t>(q & 0xff));
      bytes.push_back(static_cast<uint8_t>(q >> 8));
    }
  }
  return base64(bytes);
}

void replace_once(std::string& s, std::string_view what, std::string_view with) {
  const size_t p = s.find(what);
  if (p != std::string::npos) s.replace(p, what.size(), with);
}

}  // namespace

std::string render_html(const Explanation& e) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  const std::vector<std::vector<float>> maps = all_maps(e);
  // Causal maps are stored as their lower triangle.
  bool tri = true;
  for (const auto& m : maps) {
    for (int64_t i = 0; i < n && tri; ++i) {
      for (int64_t j = i + 1; j < n; ++j) {
        if (m[static_cast<size_t>(i * n + j)] != 0) {
          tri = false;
          break;
        }
      }
    }
  }
  nlohmann::json j = tokens_json(e);
  j["tri"] = tri;
  nlohmann::json jm = nlohmann::json::array();
  for (const auto& m : maps) jm.push_back(encode_map(m, n, tri));
  j["maps"] = std::move(jm);
  std::vector<float> rollout;
  j["analyses"] = analyses_json(e, maps, &rollout);
  j["rollout"] = encode_map(rollout, n, tri);
  std::string data = dump(j, -1);
  // Inside <script>, "</" could close the element early.
  for (size_t p = data.find("</"); p != std::string::npos; p = data.find("</", p + 3)) {
    data.replace(p, 2, "<\\/");
  }
  std::string page(kReportHtml);
  replace_once(page, "/*QKV_DATA*/", data);
  replace_once(page, "/*QKV_JS*/", kReportJs);
  return page;
}

}  // namespace qkv
