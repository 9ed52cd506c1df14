// CaptureOptions::stream_npy: the streamed .npy read back equals the in-memory capture of the same
// run, keeps every row whatever the memory budget, loads in numpy, and a path that cannot be
// written is an error naming it before anything runs.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>

#include "common/raw_io.h"
#include "common/shared_data.h"
#include "explain_test_util.h"
#include "qkv/explain.h"

namespace qkv {
namespace {

using test::temp_path;

Model stories(const std::filesystem::path& bin) {
  return Model::load(bin.string(), test::tokenizer_beside(bin));
}

// A float32 C-order .npy: its shape (from the header) and its data.
struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

Npy read_npy(const std::filesystem::path& p) {
  const std::string b = qkv::test::read_file(p);
  Npy out;
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) {
    ADD_FAILURE() << p << " is not a .npy file";
    return out;
  }
  const size_t hlen = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
  const std::string header = b.substr(10, hlen);
  EXPECT_NE(header.find("'descr': '<f4', 'fortran_order': False"), std::string::npos) << header;
  std::smatch m;
  const std::regex shape_re(R"('shape': \(([0-9, ]*)\))");
  EXPECT_TRUE(std::regex_search(header, m, shape_re)) << header;
  std::stringstream dims(m[1].str());
  std::string d;
  while (std::getline(dims, d, ',')) out.shape.push_back(std::stoll(d));
  out.data.resize((b.size() - 10 - hlen) / 4);
  std::memcpy(out.data.data(), b.data() + 10 + hlen, out.data.size() * 4);
  return out;
}

// Every map of the file equals the capture's, bit for bit.
void expect_file_equals_capture(const Npy& f, const AttentionCapture& cap) {
  const int64_t nl = static_cast<int64_t>(cap.layers().size());
  const int64_t nh = static_cast<int64_t>(cap.heads().size()), t = cap.n_tokens();
  ASSERT_EQ(f.shape, (std::vector<int64_t>{nl, nh, t, t}));
  ASSERT_EQ(static_cast<int64_t>(f.data.size()), nl * nh * t * t);
  for (int64_t l = 0; l < nl; ++l) {
    for (int64_t h = 0; h < nh; ++h) {
      const std::vector<float> m = cap.map(static_cast<size_t>(l), static_cast<size_t>(h), t);
      const float* got = f.data.data() + (l * nh + h) * t * t;
      for (int64_t i = 0; i < t * t; ++i) {
        ASSERT_EQ(got[i], m[static_cast<size_t>(i)])
            << "layer " << l << " head " << h << " row " << i / t << " key " << i % t;
      }
    }
  }
}

ExplainOptions streaming(const std::filesystem::path& path) {
  ExplainOptions o;
  o.n_threads = 1;  // one thread: two runs give the same bits
  o.max_new_tokens = 6;
  o.capture.stream_npy = path.string();
  return o;
}

const char* kText = "Once upon a time, there was a little cat";

TEST(Stream, FileEqualsTheInMemoryCaptureOfTheSameRun) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories(bin);
  const auto path = temp_path("stream_same_run.npy");
  ExplainOptions o = streaming(path);
  o.capture.layers = {1, 4};
  const Explanation e = explain(model, kText, o);
  ASSERT_TRUE(e.capture.streamed().has_value());
  EXPECT_EQ(e.capture.dropped_rows(), 0);  // everything is in memory too
  const StreamedMaps& s = *e.capture.streamed();
  const int64_t t = static_cast<int64_t>(e.ids.size());
  EXPECT_EQ(s.path, path.string());
  EXPECT_EQ(s.n_tokens, t);
  EXPECT_EQ(s.rows, 2 * 8 * t);  // every row of 2 layers x 8 heads, prefill and generated
  EXPECT_EQ(s.bytes, static_cast<int64_t>(std::filesystem::file_size(path)));
  EXPECT_NE(s.note().find(path.string()), std::string::npos) << s.note();
  EXPECT_NE(s.note().find("[2, 8, " + std::to_string(t)), std::string::npos) << s.note();
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".part"));
  expect_file_equals_capture(read_npy(path), e.capture);
}

TEST(Stream, KeepsEveryRowWhenTheMemoryBudgetKeepsNone) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories(bin);
  ExplainOptions full;
  full.n_threads = 1;
  full.max_new_tokens = 6;
  const Explanation in_memory = explain(model, kText, full);
  const auto path = temp_path("stream_no_memory.npy");
  ExplainOptions o = streaming(path);
  o.capture.max_floats = 0;
  const Explanation e = explain(model, kText, o);
  EXPECT_EQ(e.capture.stored_floats(), 0);
  EXPECT_GT(e.capture.dropped_rows(), 0);
  ASSERT_EQ(e.ids, in_memory.ids);
  expect_file_equals_capture(read_npy(path), in_memory.capture);
}

TEST(Stream, EncoderRowsAreStreamedWhole) {  // bidirectional: no trailing zeros to trim
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/bert-tiny");
  const Model model = Model::load(dir.string());
  const auto path = temp_path("stream_bert.npy");
  CaptureOptions o;
  o.stream_npy = path.string();
  o.heads = {1};
  AttentionCapture cap(model, o);
  Session session(model, {.n_ctx = 16, .n_threads = 1, .observer = &cap});
  session.encode(std::vector<int32_t>{101, 7, 42, 9, 1000, 102});
  const std::optional<StreamedMaps> s = cap.finish_stream();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->rows, model.config().n_layer * 6);
  const Npy f = read_npy(path);
  expect_file_equals_capture(f, cap);
  for (float x : f.data) EXPECT_GT(x, 0.f);  // every key attended
}

TEST(Stream, NumpyLoadsTheStreamedFile) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  if (!test::have_numpy()) GTEST_SKIP() << test::kNoNumpy;
  const Model model = stories(bin);
  const auto path = temp_path("stream_numpy.npy");
  const Explanation e = explain(model, kText, streaming(path));
  test::expect_numpy_loads_causal_maps(path, 5, 8, static_cast<int64_t>(e.ids.size()));
}

TEST(Stream, UnwritablePathIsAnErrorNamingItBeforeTheRun) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories(bin);
  const std::string path = temp_path("no-such-dir/maps.npy").string();
  CaptureOptions o;
  o.stream_npy = path;
  try {
    AttentionCapture cap(model, o);
    FAIL() << "no error for " << path;
  } catch (const Error& err) {
    const std::string what = err.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("does not exist"), std::string::npos) << what;
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".part"));
}

TEST(Stream, UnfinishedCaptureRemovesItsFiles) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories(bin);
  const auto path = temp_path("stream_unfinished.npy");
  {
    CaptureOptions o;
    o.stream_npy = path.string();
    AttentionCapture cap(model, o);
    Session session(model, {.n_ctx = 16, .n_threads = 1, .observer = &cap});
    session.eval(model.tokenizer().encode("Once upon"));
    EXPECT_TRUE(std::filesystem::exists(path.string() + ".part"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".part"));
}

}  // namespace
}  // namespace qkv
