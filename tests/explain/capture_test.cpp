// AttentionCapture: maps equal transformers' eager attention (../shared/fixtures/hf, <= 1e-5
// absolute: fp32 on both sides, the difference is summation order), equal a naive double-precision
// softmax of the same q and k for prefill and every decode step, and respect the float budget.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "common/shared_data.h"
#include "qkv/explain.h"
#include "qkv/model_file.h"
#include "qkv/session.h"

namespace qkv {
namespace {

LoadOptions tokenizer_beside(const std::filesystem::path& bin) {
  LoadOptions o;
  o.tokenizer_path = (bin.parent_path() / "tok512.bin").string();
  return o;
}

std::vector<int32_t> fixture_ids(const ModelFile& ref, int p) {
  std::vector<int32_t> out;
  for (float f : tensor_to_f32(ref.tensor("p" + std::to_string(p) + ".ids"))) {
    out.push_back(static_cast<int32_t>(f));
  }
  return out;
}

class HfMaps : public ::testing::TestWithParam<std::string> {};

TEST_P(HfMaps, CapturedMapsMatchTransformersEagerAttention) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/" + GetParam());
  const Model model = Model::load(dir.string());
  const ModelFile ref = read_safetensors((dir / "outputs.safetensors").string());
  const int64_t n_layer = model.config().n_layer, n_head = model.config().n_head;
  for (int p = 0; p < 3; ++p) {
    SCOPED_TRACE("prompt p" + std::to_string(p));
    const std::vector<int32_t> ids = fixture_ids(ref, p);
    const int64_t t = static_cast<int64_t>(ids.size());
    AttentionCapture cap(model);
    Session session(model, {.n_ctx = 64, .n_threads = 1, .observer = &cap});
    if (model.is_decoder()) {
      session.eval(ids);
    } else {
      session.encode(ids);
    }
    ASSERT_EQ(cap.n_tokens(), t);
    ASSERT_EQ(cap.layers().size(), static_cast<size_t>(n_layer));
    ASSERT_EQ(cap.heads().size(), static_cast<size_t>(n_head));
    for (int64_t l = 0; l < n_layer; ++l) {
      const std::vector<float> want =
          tensor_to_f32(ref.tensor("p" + std::to_string(p) + ".attn.l" + std::to_string(l)));
      ASSERT_EQ(static_cast<int64_t>(want.size()), n_head * t * t);
      for (int64_t h = 0; h < n_head; ++h) {
        const std::vector<float> got = cap.map(static_cast<size_t>(l), static_cast<size_t>(h));
        double err = 0;
        for (int64_t i = 0; i < t * t; ++i) {
          err = std::max(err, std::abs(double(got[static_cast<size_t>(i)]) -
                                       want[static_cast<size_t>(h * t * t + i)]));
        }
        EXPECT_LE(err, 1e-5) << "layer " << l << " head " << h;
      }
    }
    EXPECT_EQ(cap.dropped_rows(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfMaps,
                         ::testing::Values("gpt2-tiny", "llama-tiny", "bert-tiny"));

// Forwards events to a capture and computes every row again as a naive softmax in double
// precision (causal or full mask, as the event's options say; these models use no other rule).
class ReferenceObserver : public Observer {
 public:
  explicit ReferenceObserver(AttentionCapture& cap) : cap_(cap) {}
  bool wants_attention(int layer) override { return cap_.wants_attention(layer); }
  void on_attention(const AttentionEvent& e) override {
    cap_.on_attention(e);
    const int64_t n_q = e.q.shape[1], n_head = e.q.shape[2], hd = e.q.shape[3];
    const int64_t n_kv = e.k.shape[1], group = n_head / e.k.shape[2];
    const double scale = e.options->scale > 0 ? e.options->scale : 1.0 / std::sqrt(double(hd));
    ASSERT_EQ(e.k.dtype, DType::f32);
    const auto* q = static_cast<const float*>(e.q.data);
    const auto* k = static_cast<const float*>(e.k.data);
    for (int64_t h = 0; h < n_head; ++h) {
      for (int64_t i = 0; i < n_q; ++i) {
        const int64_t pos = e.first_position + i;
        const int64_t last = e.options->causal ? pos : n_kv - 1;
        std::vector<double> s(static_cast<size_t>(last + 1));
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= last; ++j) {
          double d = 0;
          for (int64_t c = 0; c < hd; ++c) {
            d += double(q[i * e.q.stride[1] + h * e.q.stride[2] + c * e.q.stride[3]]) *
                 k[j * e.k.stride[1] + (h / group) * e.k.stride[2] + c * e.k.stride[3]];
          }
          s[static_cast<size_t>(j)] = d * scale;
          mx = std::max(mx, d * scale);
        }
        for (double& x : s) sum += (x = std::exp(x - mx));
        for (double& x : s) x /= sum;
        rows[{e.layer, h}][pos] = s;
      }
    }
  }
  std::map<std::pair<int, int64_t>, std::map<int64_t, std::vector<double>>> rows;

 private:
  AttentionCapture& cap_;
};

// Prefill and every generated step (rows appended by position) against the naive softmax;
// fp32 kernel vs double reference: <= 1e-5 absolute on probabilities.
void expect_reference_parity(const Model& model, const std::vector<int32_t>& prompt,
                             int64_t n_new) {
  AttentionCapture cap(model);
  ReferenceObserver obs(cap);
  Session session(model, {.n_ctx = 64, .n_threads = 1, .observer = &obs});
  GenerateOptions g;
  g.max_new_tokens = n_new;
  g.sampling.temperature = 0;
  g.stop_at_eos = false;
  const GenerateResult r = session.generate(std::span<const int32_t>(prompt), g);
  const int64_t t = session.n_past();
  EXPECT_EQ(t, static_cast<int64_t>(prompt.size() + r.ids.size()) - 1);
  ASSERT_EQ(cap.n_tokens(), t);
  for (size_t li = 0; li < cap.layers().size(); ++li) {
    for (size_t hi = 0; hi < cap.heads().size(); ++hi) {
      const std::vector<float> got = cap.map(li, hi);
      const auto& want = obs.rows.at({cap.layers()[li], cap.heads()[hi]});
      ASSERT_EQ(static_cast<int64_t>(want.size()), t);
      double err = 0;
      for (const auto& [pos, row] : want) {
        for (int64_t j = 0; j < t; ++j) {
          const double w = j < static_cast<int64_t>(row.size()) ? row[static_cast<size_t>(j)] : 0;
          err = std::max(err, std::abs(got[static_cast<size_t>(pos * t + j)] - w));
        }
      }
      EXPECT_LE(err, 1e-5) << "layer " << cap.layers()[li] << " head " << cap.heads()[hi];
    }
  }
}

TEST(Capture, PrefillAndDecodeMatchNaiveSoftmaxLlamaTiny) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/llama-tiny");
  const Model model = Model::load(dir.string());
  expect_reference_parity(model, {10, 20, 30, 40, 50, 60}, 6);  // GQA: 4 heads on 2 KV heads
}

TEST(Capture, PrefillAndDecodeMatchNaiveSoftmaxStories260K) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = Model::load(bin.string(), tokenizer_beside(bin));
  expect_reference_parity(model, model.tokenizer().encode("Once upon a time"), 10);
}

Model stories() {
  const auto bin = test::shared_file("models/stories260K/stories260K.bin");
  return Model::load(bin.string(), tokenizer_beside(bin));
}

TEST(Capture, ExplainRunsGeneratedTokensAndSelectsLayersAndHeads) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories();
  ExplainOptions o;
  o.n_threads = 1;  // OpenMP barriers spin on a loaded 2-core machine
  o.capture.layers = {3, 1};
  o.capture.heads = {0, 7};
  o.max_new_tokens = 5;
  const Explanation e = explain(model, "Once upon a time", o);
  EXPECT_EQ(e.capture.layers(), (std::vector<int>{1, 3}));
  EXPECT_EQ(e.capture.heads(), (std::vector<int>{0, 7}));
  const int64_t t = static_cast<int64_t>(e.ids.size());
  EXPECT_EQ(t, e.n_prompt + 5);  // the last generated token was run too
  EXPECT_EQ(e.capture.n_tokens(), t);
  ASSERT_EQ(e.tokens.size(), e.ids.size());
  for (size_t li = 0; li < 2; ++li) {
    for (size_t hi = 0; hi < 2; ++hi) {
      const std::vector<float> m = e.capture.map(li, hi);
      for (int64_t i = 0; i < t; ++i) {
        double s = 0;
        for (int64_t j = 0; j < t; ++j) {
          if (j > i) {
            EXPECT_EQ(m[static_cast<size_t>(i * t + j)], 0.f);  // causal
          }
          s += m[static_cast<size_t>(i * t + j)];
        }
        EXPECT_NEAR(s, 1.0, 1e-5) << "row " << i;
      }
    }
  }
  CaptureOptions bad_layer, bad_head;
  bad_layer.layers = {5};
  bad_head.heads = {-1};
  EXPECT_THROW(AttentionCapture(model, bad_layer), InvalidArgument);
  EXPECT_THROW(AttentionCapture(model, bad_head), InvalidArgument);
}

TEST(Capture, BudgetIsNeverExceededAndOverflowIsStated) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories();
  const std::string text = "Once upon a time there was a little girl who liked to play";
  ExplainOptions one_thread;
  one_thread.n_threads = 1;
  const Explanation full = explain(model, text, one_thread);
  const int64_t t = full.capture.n_tokens();
  const int64_t budget = full.capture.stored_floats() / 3;
  for (OverflowKeep keep : {OverflowKeep::rows, OverflowKeep::heads, OverflowKeep::top_k}) {
    SCOPED_TRACE(std::string(overflow_keep_name(keep)));
    ExplainOptions o;
    o.n_threads = 1;  // OpenMP barriers spin on a loaded 2-core machine
    o.capture.max_floats = budget;
    o.capture.overflow = keep;
    o.capture.top_k = 3;
    const Explanation e = explain(model, text, o);
    EXPECT_LE(e.capture.stored_floats(), budget);
    EXPECT_NE(e.capture.memory_note().find("budget reached"), std::string::npos)
        << e.capture.memory_note();
    // What is kept is exact: dense rows equal the full capture's, sparse rows hold its top-k.
    for (size_t li = 0; li < e.capture.layers().size(); ++li) {
      for (size_t hi = 0; hi < e.capture.heads().size(); ++hi) {
        const std::vector<float> a = e.capture.map(li, hi, t), b = full.capture.map(li, hi, t);
        for (int64_t i = 0; i < t; ++i) {
          if (!e.capture.has_row(li, hi, i)) continue;
          const bool dense = e.capture.row_is_dense(li, hi, i);
          int kept = 0;
          for (int64_t j = 0; j < t; ++j) {
            const size_t x = static_cast<size_t>(i * t + j);
            if (dense || a[x] != 0) {
              EXPECT_EQ(a[x], b[x]);
            }
            kept += a[x] != 0;
          }
          if (!dense) {
            EXPECT_LE(kept, 3);
          }
        }
      }
    }
    if (keep == OverflowKeep::top_k) {
      EXPECT_GT(e.capture.sparse_rows(), 0);
    } else {
      EXPECT_GT(e.capture.dropped_rows(), 0);
    }
    if (keep == OverflowKeep::heads) {  // past the budget only head 0 keeps rows
      EXPECT_TRUE(e.capture.has_row(e.capture.layers().size() - 1, 0, t - 1) ||
                  e.capture.dropped_rows() > 0);
      EXPECT_FALSE(e.capture.has_row(e.capture.layers().size() - 1, 7, t - 1));
    }
  }
}

TEST(Capture, HeadDetailHoldsQkvAndOutputConsistentWithTheMap) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories();
  ExplainOptions o;
  o.n_threads = 1;  // OpenMP barriers spin on a loaded 2-core machine
  o.capture.layers = {2};
  o.capture.heads = {5};
  o.capture.detail_layer = 2;
  o.capture.detail_head = 5;
  o.max_new_tokens = 3;
  const Explanation e = explain(model, "Once upon a time", o);
  ASSERT_TRUE(e.capture.detail().has_value());
  const HeadDetail& d = *e.capture.detail();
  const int64_t t = e.capture.n_tokens(), dv = d.head_dim_v;
  ASSERT_EQ(static_cast<int64_t>(d.out.size()), t * dv);
  ASSERT_EQ(static_cast<int64_t>(d.q.size()), t * d.head_dim);
  // out[i] = sum_j p[i, j] v[j]: fp32 sums of a few terms, 1e-5 of the values' scale.
  const std::vector<float> p = e.capture.map(0, 0);
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t c = 0; c < dv; ++c) {
      double s = 0;
      for (int64_t j = 0; j <= i; ++j) s += double(p[i * t + j]) * d.v[j * dv + c];
      EXPECT_NEAR(d.out[i * dv + c], s, 1e-5) << "row " << i << " dim " << c;
    }
  }
}

}  // namespace
}  // namespace qkv
