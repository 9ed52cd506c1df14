// The self-contained HTML report: report.html with the data (JSON) and report.js inlined.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <numeric>

#include "core/file_io.h"
#include "explain_internal.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {

namespace explain_detail {
extern const std::string_view kReportHtml;
extern const std::string_view kReportJs;
extern const std::string_view kReportTabsJs;
extern const std::string_view kRenderJs;
}  // namespace explain_detail

using namespace explain_detail;

namespace {

// Block size of the long-context summaries (mean attention between blocks of 64 tokens).
constexpr int64_t kReportBlock = 64;

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

// Index of `x` in a selection, or throws naming what was not captured.
int selected_index(const std::vector<int>& sel, int x, const char* what) {
  const auto it = std::find(sel.begin(), sel.end(), x);
  if (it == sel.end()) {
    throw InvalidArgument("render_html: the report should open on " + std::string(what) + " " +
                          std::to_string(x) + ", which was not captured");
  }
  return static_cast<int>(it - sel.begin());
}

// "open": the view the page starts on, as indices into the selections (-1: last layer / mean of
// heads / no focus); "explicit": the command asked for it (else the page may pick the most
// decisive head of a section).
nlohmann::json open_json(const Explanation& e, const ReportOptions& o) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  if (o.focus < -1 || o.focus >= n) {
    throw InvalidArgument("render_html: focus row " + std::to_string(o.focus) +
                          " is out of range for " + std::to_string(n) + " tokens");
  }
  nlohmann::json j;
  j["layer"] = o.layer < 0 ? -1 : selected_index(e.capture.layers(), o.layer, "layer");
  j["head"] = o.head < 0 ? -1 : selected_index(e.capture.heads(), o.head, "head");
  j["focus"] = o.focus;
  j["explicit"] = o.layer >= 0 || o.head >= 0;
  j["by"] = o.opened_by;
  return j;
}

// Causal maps are stored as their lower triangle: true when no stored row has a key past its
// own position.
bool causal(const AttentionCapture& c, int64_t n) {
  std::vector<int32_t> keys;
  std::vector<float> p;
  for (size_t l = 0; l < c.layers().size(); ++l) {
    for (size_t h = 0; h < c.heads().size(); ++h) {
      for (int64_t i = 0; i < n; ++i) {
        if (!c.row(l, h, i, keys, p)) continue;
        for (size_t t = 0; t < keys.size(); ++t) {
          if (keys[t] > i && p[t] != 0) return false;
        }
      }
    }
  }
  return true;
}

// Dense mode: every map in full (lower triangle when causal), the rollout and the analyses.
void add_dense_maps(nlohmann::json& j, const Explanation& e, bool tri) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  const std::vector<std::vector<float>> maps = all_maps(e);
  nlohmann::json jm = nlohmann::json::array();
  for (const auto& m : maps) jm.push_back(encode_map(m, n, tri));
  j["maps"] = std::move(jm);
  std::vector<float> rollout;
  j["analyses"] = analyses_json(e, maps, &rollout);
  j["rollout"] = encode_map(rollout, n, tri);
}

// The block summary of (l, h): the capture's own (exact, from the full rows) when it kept one,
// else from the stored rows (rows kept as top-k lose their tail).
std::vector<float> block_summary(const AttentionCapture& c, size_t l, size_t h, int64_t n,
                                 int64_t b, bool& exact) {
  if (c.options().block_size == b) {
    exact = true;
    return c.block_map(l, h);
  }
  exact = false;
  const int64_t nb = (n + b - 1) / b;
  std::vector<double> sum(static_cast<size_t>(nb * nb), 0.0);
  std::vector<int64_t> rows(static_cast<size_t>(nb), 0);
  std::vector<int32_t> keys;
  std::vector<float> p;
  for (int64_t i = 0; i < n; ++i) {
    if (!c.row(l, h, i, keys, p)) continue;
    ++rows[static_cast<size_t>(i / b)];
    for (size_t t = 0; t < keys.size(); ++t)
      sum[static_cast<size_t>((i / b) * nb + keys[t] / b)] += p[t];
  }
  std::vector<float> out(sum.size(), 0.f);
  for (int64_t i = 0; i < nb; ++i) {
    for (int64_t jb = 0; jb < nb && rows[static_cast<size_t>(i)] > 0; ++jb) {
      out[static_cast<size_t>(i * nb + jb)] = static_cast<float>(
          sum[static_cast<size_t>(i * nb + jb)] / double(rows[static_cast<size_t>(i)]));
    }
  }
  return out;
}

// Rows mode (long contexts): block summaries in the page, and every row's top-k keys in chunks
// of `rows` rows, loaded by the page on demand (docs/EXPLAIN.md, "Long contexts"). A chunk is
// base64 of uint32 keys [n_maps, rows, k] then uint16 sqrt-coded weights [n_maps, rows, k] (as
// encode_map; padding: key 0xffffffff, weight 0).
void add_rows(nlohmann::json& j, const Explanation& e, const ReportOptions& o, bool tri,
              const std::function<void(int64_t, std::string)>& emit) {
  const AttentionCapture& c = e.capture;
  const int64_t n = static_cast<int64_t>(e.ids.size());
  const size_t nl = c.layers().size(), nh = c.heads().size(), n_maps = nl * nh;
  const int64_t b = kReportBlock;
  const int64_t nb = (n + b - 1) / b;
  bool exact = true;
  nlohmann::json blocks = nlohmann::json::array();
  for (size_t l = 0; l < nl; ++l) {
    for (size_t h = 0; h < nh; ++h) {
      bool ex = true;
      blocks.push_back(encode_map(block_summary(c, l, h, n, b, ex), nb, tri));
      exact = exact && ex;
    }
  }
  j["block"] = b;
  j["blocks"] = std::move(blocks);
  j["blocks_exact"] = exact;
  const int64_t k = std::max(1, o.row_top_k);
  // Chunks of about 2 MiB: one decodes in tens of milliseconds.
  const int64_t row_bytes = static_cast<int64_t>(n_maps) * k * 6;
  const int64_t per = std::clamp<int64_t>((int64_t(2) << 20) / std::max<int64_t>(row_bytes, 1), 1,
                                          std::max<int64_t>(n, 1));
  const int64_t count = (n + per - 1) / per;
  std::vector<int32_t> keys, order;
  std::vector<float> p;
  for (int64_t ci = 0; ci < count; ++ci) {
    const int64_t r0 = ci * per, nr = std::min(per, n - r0);
    std::vector<uint8_t> bytes(static_cast<size_t>(n_maps * nr * k * 6), 0);
    uint8_t* kb = bytes.data();
    uint8_t* wb = bytes.data() + n_maps * nr * k * 4;
    for (size_t m = 0; m < n_maps; ++m) {
      for (int64_t r = 0; r < nr; ++r) {
        const size_t at = (m * static_cast<size_t>(nr) + static_cast<size_t>(r)) * k;
        c.row(m / nh, m % nh, r0 + r, keys, p);
        order.resize(keys.size());
        std::iota(order.begin(), order.end(), 0);
        const auto kk = std::min<size_t>(static_cast<size_t>(k), order.size());
        const auto heavier = [&](int32_t x, int32_t y) {
          return p[x] > p[y] || (p[x] == p[y] && keys[x] < keys[y]);
        };
        if (kk > 0 && kk < order.size())  // linear in the row; then only the kept few sorted
          std::nth_element(order.begin(), order.begin() + (kk - 1), order.end(), heavier);
        std::sort(order.begin(), order.begin() + kk, heavier);
        for (size_t t = 0; t < static_cast<size_t>(k); ++t) {
          const uint32_t key = t < kk ? static_cast<uint32_t>(keys[order[t]]) : 0xffffffffu;
          const double w = t < kk ? std::clamp(double(p[order[t]]), 0.0, 1.0) : 0.0;
          const auto q = static_cast<uint16_t>(std::lround(std::sqrt(w) * 65535));
          for (int by = 0; by < 4; ++by)
            kb[(at + t) * 4 + by] = static_cast<uint8_t>((key >> (8 * by)) & 0xff);
          wb[(at + t) * 2] = static_cast<uint8_t>(q & 0xff);
          wb[(at + t) * 2 + 1] = static_cast<uint8_t>(q >> 8);
        }
      }
    }
    emit(ci, base64(bytes));
  }
  j["chunks"] = {{"rows", per}, {"k", k}, {"count", count}};
  // The look scores need one dense map at a time: up to 4,096 tokens (64 MiB a map).
  if (n <= 4096) {
    nlohmann::json heads = nlohmann::json::array();
    for (size_t l = 0; l < nl; ++l) {
      for (size_t h = 0; h < nh; ++h) {
        const LookScores s = look_scores(c.map(l, h, n), n, e.ids, e.word_ids);
        heads.push_back(head_scores_json(c.layers()[l], c.heads()[h], s));
      }
    }
    j["analyses"] = {{"heads", std::move(heads)}};
  } else {
    j["analyses"] = {{"heads", nlohmann::json::array()},
                     {"note", "look scores are computed up to 4,096 tokens"}};
  }
}

// Position pairs of two token sequences: the common prefix, the common suffix, and the middle
// parts paired in order (the longer one's extra middle tokens pair with nothing: -1).
std::vector<int64_t> align(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t na = a.size(), nb = b.size();
  size_t pre = 0;
  while (pre < na && pre < nb && a[pre] == b[pre]) ++pre;
  size_t suf = 0;
  while (suf < na - pre && suf < nb - pre && a[na - 1 - suf] == b[nb - 1 - suf]) ++suf;
  std::vector<int64_t> out(na, -1);
  for (size_t i = 0; i < na; ++i) {
    if (i < pre) {
      out[i] = static_cast<int64_t>(i);
    } else if (i >= na - suf) {
      out[i] = static_cast<int64_t>(nb - (na - i));
    } else if (i - pre < nb - suf - pre) {
      out[i] = static_cast<int64_t>(i);
    }
  }
  return out;
}

// The compare section: the second prompt's tokens and maps (dense, as the first's), and which of
// its positions each of the first's stands beside.
nlohmann::json compare_json(const Explanation& a, const Explanation& b, bool tri) {
  if (a.capture.layers() != b.capture.layers() || a.capture.heads() != b.capture.heads()) {
    throw InvalidArgument("render_html: compare: both prompts need the same layers and heads");
  }
  const int64_t n = static_cast<int64_t>(b.ids.size());
  nlohmann::json j;
  j["title"] = "Compare";
  j["note"] =
      "The second prompt's attention beside the first's, and their difference (first minus "
      "second) where the tokens stand in the same place: the common beginning, the common end, "
      "and the differing middle paired in order. Grey: no counterpart.";
  j["tokens"] = b.tokens;
  j["ids"] = b.ids;
  j["n_prompt"] = b.n_prompt;
  j["tri"] = tri;
  nlohmann::json maps = nlohmann::json::array();
  for (const auto& m : all_maps(b)) maps.push_back(encode_map(m, n, tri));
  j["maps"] = std::move(maps);
  j["align"] = align(a.ids, b.ids);
  return j;
}

// The sections of the other methods (docs/EXPLAIN.md, "Report data"): one top-level key each.
// Methods computed by the library add theirs here, one line each.
void add_sections(nlohmann::json& j, const Explanation& /*e*/, const ReportOptions& o) {
  for (const auto& [key, text] : o.sections) {
    if (j.contains(key)) {
      throw InvalidArgument("render_html: section \"" + key +
                            "\" would replace the report's own data or an earlier section");
    }
    nlohmann::json v = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded() || !v.is_object()) {
      throw InvalidArgument("render_html: section \"" + key + "\" is not a JSON object");
    }
    j[key] = std::move(v);
  }
}

// The page; rows-mode chunks go to `emit` (chunk index, base64 payload), `chunk_src` is where
// the page finds them ("" : inline elements; else a folder, relative to the page, of .js files).
// *inline_chunks (read once the chunks are emitted) goes into the page before its scripts.
std::string build_page(const Explanation& e, const ReportOptions& o, std::string_view chunk_src,
                       const std::function<void(int64_t, std::string)>& emit,
                       const std::string* inline_chunks) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  const size_t n_maps = e.capture.layers().size() * e.capture.heads().size();
  const bool tri = causal(e.capture, n);
  // Above max_inline_map_bytes of dense maps (2 bytes a weight), rows mode.
  const double dense_bytes = double(n_maps) * double(n) * double(tri ? (n + 1) / 2.0 : n) * 2;
  const bool rows_mode = o.force_rows || dense_bytes > double(o.max_inline_map_bytes);
  nlohmann::json j = tokens_json(e);
  j["tri"] = tri;
  j["mode"] = rows_mode ? "rows" : "dense";
  if (rows_mode) {
    add_rows(j, e, o, tri, emit);
    j["chunks"]["src"] = std::string(chunk_src);
  } else {
    add_dense_maps(j, e, tri);
  }
  j["open"] = open_json(e, o);
  if (o.compare) {
    if (rows_mode) {
      throw InvalidArgument(
          "render_html: compare needs both prompts' maps in full; the first "
          "has " +
          std::to_string(n) + " tokens, past max_inline_map_bytes");
    }
    j["compare"] = compare_json(e, *o.compare, causal(o.compare->capture, n));
  }
  add_sections(j, e, o);
  std::string data = dump(j, -1);
  // Inside <script>, "</" could close the element early.
  for (size_t p = data.find("</"); p != std::string::npos; p = data.find("</", p + 3)) {
    data.replace(p, 2, "<\\/");
  }
  // The data last: the template's placeholders all come before anything the data could hold.
  std::string page(kReportHtml);
  replace_once(page, "/*QKV_RENDER_JS*/", kRenderJs);
  replace_once(page, "/*QKV_TABS_JS*/", kReportTabsJs);
  replace_once(page, "/*QKV_JS*/", kReportJs);
  replace_once(page, "<!--QKV_CHUNKS-->", inline_chunks ? *inline_chunks : std::string());
  replace_once(page, "/*QKV_DATA*/", data);
  return page;
}

}  // namespace

std::string render_html(const Explanation& e, const ReportOptions& options) {
  std::string chunks;
  return build_page(
      e, options, "",
      [&](int64_t c, std::string payload) {
        chunks += "<script type=\"text/plain\" id=\"qkv-rows-" + std::to_string(c) + "\">" +
                  payload + "</script>\n";
      },
      &chunks);
}

std::string report_rows_dir(const std::string& html_path) {
  return html_path + ".rows";
}

void write_html(const std::string& path, const Explanation& e, const ReportOptions& options) {
  namespace fs = std::filesystem;
  const std::string dir = report_rows_dir(path);
  const std::string rel = fs::path(dir).filename().string() + "/";
  bool made = false;
  const std::string page = build_page(
      e, options, rel,
      [&](int64_t c, std::string payload) {
        if (!made) {
          std::error_code ec;
          fs::create_directories(dir, ec);
          if (ec) throw Error("write_html: cannot create " + dir + ": " + ec.message());
          // Chunks of an earlier, longer report would be harmless but stale: remove them.
          for (const auto& f : fs::directory_iterator(dir, ec)) {
            if (f.path().extension() == ".js" &&
                f.path().filename().string().rfind("rows-", 0) == 0)
              fs::remove(f.path(), ec);
          }
          made = true;
        }
        char name[32];
        std::snprintf(name, sizeof name, "rows-%05lld.js", static_cast<long long>(c));
        core::write_output_file((fs::path(dir) / name).string(),
                                "qkvRows(" + std::to_string(c) + ", \"" + payload + "\");\n");
      },
      nullptr);
  core::write_output_file(path, page);
}

}  // namespace qkv
