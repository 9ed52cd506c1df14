// The HTML report's data, read back from the page: the opening view, sections added, errors that
// name the problem, and rows mode (block summaries, row chunks in the folder beside the page)
// checked against the capture's dense maps; the capture's block summaries and row accessor.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/raw_io.h"
#include "common/shared_data.h"
#include "explain_test_util.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {
namespace {

using test::temp_path;
using test::tokenizer_beside;

constexpr const char* kReportText =
    "Once upon a time, there was a little cat.\nThe cat liked to play.";

// Capture options with block summaries of `block` positions, a budget and a top-k.
CaptureOptions blocks_of(int block, int64_t max_floats = int64_t(1) << 28, int top_k = 16) {
  CaptureOptions c;
  c.block_size = block;
  c.max_floats = max_floats;
  c.top_k = top_k;
  return c;
}

Explanation report_run(const std::filesystem::path& bin, CaptureOptions c = {}) {
  const Model model = Model::load(bin.string(), tokenizer_beside(bin));
  ExplainOptions o;
  o.n_threads = 1;  // OpenMP barriers spin on a loaded 2-core machine
  o.capture = std::move(c);
  o.capture.layers = {0, 4};
  o.capture.heads = {1, 2, 6};
  return explain(model, kReportText, o);
}

// The JSON object inside <script id="qkv-data">.
nlohmann::json page_data(const std::string& page) {
  const std::string open = "<script type=\"application/json\" id=\"qkv-data\">";
  const size_t a = page.find(open);
  EXPECT_NE(a, std::string::npos);
  const size_t b = page.find("</script>", a);
  return nlohmann::json::parse(page.substr(a + open.size(), b - a - open.size()));
}

std::vector<uint8_t> unbase64(const std::string& s) {
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xff));
    }
  }
  return out;
}

TEST(Report, BlockSummariesAreRowMeansOfBlockMassWhateverTheBudgetKeeps) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const int b = 4;
  const Explanation e = report_run(bin, blocks_of(b));
  // A budget that keeps most rows as their top 2 keys: the summaries come from the full rows.
  const Explanation small = report_run(bin, blocks_of(b, 300, 2));
  ASSERT_GT(small.capture.sparse_rows(), 0);
  const int64_t n = static_cast<int64_t>(e.ids.size()), nb = (n + b - 1) / b;
  for (size_t l = 0; l < 2; ++l) {
    for (size_t h = 0; h < 3; ++h) {
      const std::vector<float> m = e.capture.map(l, h, n);
      const std::vector<float> blocks = e.capture.block_map(l, h);
      ASSERT_EQ(static_cast<int64_t>(blocks.size()), nb * nb);
      EXPECT_EQ(small.capture.block_map(l, h), blocks);
      for (int64_t I = 0; I < nb; ++I) {
        double row_sum = 0;
        for (int64_t J = 0; J < nb; ++J) {
          double want = 0;
          const int64_t rows = std::min(n, (I + 1) * b) - I * b;
          for (int64_t i = I * b; i < std::min(n, (I + 1) * b); ++i) {
            for (int64_t j = J * b; j < std::min(n, (J + 1) * b); ++j) want += m[i * n + j];
          }
          want /= double(rows);
          EXPECT_NEAR(blocks[I * nb + J], want, 1e-5) << l << " " << h << " " << I << " " << J;
          row_sum += blocks[I * nb + J];
        }
        EXPECT_NEAR(row_sum, 1.0, 1e-4);
      }
      // row(): the stored entries, dense rows as keys 0..i.
      std::vector<int32_t> keys;
      std::vector<float> p;
      ASSERT_TRUE(e.capture.row(l, h, n - 1, keys, p));
      ASSERT_EQ(static_cast<int64_t>(keys.size()), n);
      for (int64_t j = 0; j < n; ++j) EXPECT_EQ(p[j], m[(n - 1) * n + j]);
    }
  }
  EXPECT_TRUE(e.capture.block_map(0, 0).size() > 0);
  EXPECT_TRUE(report_run(bin).capture.block_map(0, 0).empty());  // off by default
  std::vector<int32_t> keys{1};
  std::vector<float> p{1.f};
  EXPECT_FALSE(small.capture.row(0, 0, 10'000, keys, p));
  EXPECT_TRUE(keys.empty() && p.empty());
}

TEST(Report, OpensOnTheViewAskedForAndCarriesSections) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Explanation e = report_run(bin);
  ReportOptions o;
  o.layer = 4;
  o.head = 6;
  o.focus = 3;
  o.opened_by = "--map 4:6";
  o.sections = {{"ablation", R"({"title": "Head ablation", "delta": [[1, -2]]})"}};
  const nlohmann::json d = page_data(render_html(e, o));
  EXPECT_EQ(d["open"]["layer"], 1);  // indices into the selections {0, 4} and {1, 2, 6}
  EXPECT_EQ(d["open"]["head"], 2);
  EXPECT_EQ(d["open"]["focus"], 3);
  EXPECT_EQ(d["open"]["explicit"], true);
  EXPECT_EQ(d["mode"], "dense");
  EXPECT_EQ(d["ablation"]["delta"][0][1], -2);
  EXPECT_EQ(page_data(render_html(e))["open"]["explicit"], false);
  // Errors name the problem.
  const auto throws = [&](const ReportOptions& o, const std::string& what) {
    try {
      (void)render_html(e, o);
      ADD_FAILURE() << "no error for " << what;
    } catch (const InvalidArgument& err) {
      EXPECT_NE(std::string(err.what()).find(what), std::string::npos) << err.what();
    }
  };
  const auto with = [](auto set) {
    ReportOptions r;
    set(r);
    return r;
  };
  throws(with([](ReportOptions& r) { r.layer = 2; }), "layer 2, which was not captured");
  throws(with([](ReportOptions& r) { r.head = 0; }), "head 0, which was not captured");
  throws(with([](ReportOptions& r) { r.focus = 1000; }), "focus row 1000");
  throws(with([](ReportOptions& r) {
           r.sections = {{"ablation", "[1, 2"}};
         }),
         "\"ablation\" is not a JSON object");
  throws(with([](ReportOptions& r) {
           r.sections = {{"tokens", "{}"}};
         }),
         "\"tokens\" would replace");
}

TEST(Report, RowsModeWritesBlockSummariesAndRowChunksBesideThePage) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Explanation e = report_run(bin, blocks_of(64));
  const int64_t n = static_cast<int64_t>(e.ids.size());
  const auto path = temp_path("report_rows.html");
  std::filesystem::remove_all(report_rows_dir(path.string()));
  ReportOptions rows;
  rows.force_rows = true;
  rows.row_top_k = 4;
  write_html(path.string(), e, rows);
  const nlohmann::json d = page_data(test::read_file(path));
  EXPECT_EQ(d["mode"], "rows");
  EXPECT_EQ(d["blocks_exact"], true);
  EXPECT_EQ(d["blocks"].size(), 6u);
  EXPECT_EQ(d["chunks"]["k"], 4);
  EXPECT_EQ(d["chunks"]["src"], "report_rows.html.rows/");
  EXPECT_FALSE(d.contains("maps"));
  const int64_t per = d["chunks"]["rows"], count = d["chunks"]["count"];
  ASSERT_EQ(count, (n + per - 1) / per);
  // Every row's top 4 keys, as top_attended gives them from the dense map (weights in 16 bits
  // of sqrt(p): within 3e-5 near 1).
  for (int64_t c = 0; c < count; ++c) {
    char name[32];
    std::snprintf(name, sizeof name, "rows-%05lld.js", static_cast<long long>(c));
    const std::string js =
        test::read_file(std::filesystem::path(report_rows_dir(path.string())) / name);
    const std::string head = "qkvRows(" + std::to_string(c) + ", \"";
    ASSERT_EQ(js.rfind(head, 0), 0u) << js.substr(0, 40);
    const std::vector<uint8_t> bytes = unbase64(js.substr(head.size()));
    const int64_t nr = std::min(per, n - c * per), cells = 6 * nr * 4;
    ASSERT_EQ(static_cast<int64_t>(bytes.size()), cells * 6);
    for (size_t m = 0; m < 6; ++m) {
      const std::vector<float> map = e.capture.map(m / 3, m % 3, n);
      for (int64_t r = 0; r < nr; ++r) {
        const std::vector<Attended> want = top_attended(map, n, c * per + r, 4);
        for (size_t t = 0; t < 4; ++t) {
          const size_t at = (m * static_cast<size_t>(nr) + static_cast<size_t>(r)) * 4 + t;
          uint32_t key = 0;
          for (int by = 0; by < 4; ++by) key |= uint32_t(bytes[at * 4 + by]) << (8 * by);
          const double q =
              (bytes[cells * 4 + at * 2] | (bytes[cells * 4 + at * 2 + 1] << 8)) / 65535.0;
          if (t >= want.size()) {
            EXPECT_EQ(key, 0xffffffffu);
            continue;
          }
          EXPECT_EQ(key, static_cast<uint32_t>(want[t].key)) << m << " " << r << " " << t;
          EXPECT_NEAR(q * q, want[t].weight, 1e-4);
        }
      }
    }
  }
  // render_html embeds the same chunks in the page.
  const std::string page = render_html(e, rows);
  EXPECT_NE(page.find("<script type=\"text/plain\" id=\"qkv-rows-0\">"), std::string::npos);
  EXPECT_EQ(page_data(page)["chunks"]["src"], "");
}

}  // namespace
}  // namespace qkv
