// AttentionCapture: maps equal transformers' eager attention (../shared/fixtures/hf, <= 1e-5
// absolute: fp32 on both sides, the difference is summation order), equal the probabilities of the
// reference attention backend (a run on Backend::reference, and the reference kernel on the same
// q and k) for prefill and every decode step, and respect the float budget.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>

#include "common/shared_data.h"
#include "explain_test_util.h"
#include "qkv/explain.h"
#include "qkv/model_file.h"
#include "qkv/session.h"

namespace qkv {
namespace {

using test::tokenizer_beside;

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
      const std::vector<float> want = tensor_to_f32(
          ref.tensor(std::string("p") + std::to_string(p) + ".attn.l" + std::to_string(l)));
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

// Exact probabilities of every row of an attention event, [n_head, n_q, n_kv], from the
// reference kernel (Backend::reference: double accumulation, materialised): attention() with V =
// the identity ([n_kv, n_head_kv, n_kv], v[j, hk, j] = 1) returns out[i, h, j] = p[h, i, j], the
// kernel's own probabilities rounded once to fp32. Its lse goes to *lse ([n_head, n_q]).
std::vector<float> reference_probs(const AttentionEvent& e, std::vector<float>* lse) {
  const int64_t n_q = e.q.shape[1], n_head = e.q.shape[2];
  const int64_t n_kv = e.k.shape[1], n_head_kv = e.k.shape[2];
  std::vector<float> eye(static_cast<size_t>(n_kv * n_head_kv * n_kv), 0.f);
  for (int64_t j = 0; j < n_kv; ++j) {
    for (int64_t hk = 0; hk < n_head_kv; ++hk)
      eye[static_cast<size_t>((j * n_head_kv + hk) * n_kv + j)] = 1.f;
  }
  std::vector<float> out(static_cast<size_t>(n_q * n_head * n_kv));  // [n_q, n_head, n_kv]
  lse->assign(static_cast<size_t>(n_head * n_q), 0.f);
  AttentionOptions opt = *e.options;
  opt.backend = Backend::reference;
  attention(e.q, e.k, View4::dense(eye.data(), DType::f32, {1, n_kv, n_head_kv, n_kv}),
            MutView4::dense(out.data(), {1, n_q, n_head, n_kv}), *lse, opt);
  std::vector<float> p(out.size());
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < n_q; ++i) {
      std::copy_n(out.begin() + (i * n_head + h) * n_kv, n_kv, p.begin() + (h * n_q + i) * n_kv);
    }
  }
  return p;
}

using RefRows = std::map<std::pair<int, int64_t>, std::map<int64_t, std::vector<float>>>;

// Forwards events to a capture and keeps the reference kernel's probabilities of every row of
// the same q and k, by (layer, head) and position.
class ReferenceObserver : public Observer {
 public:
  ReferenceObserver(AttentionCapture& cap, bool reference_run)
      : cap_(cap), reference_run_(reference_run) {}
  bool wants_attention(int layer) override { return cap_.wants_attention(layer); }
  void on_attention(const AttentionEvent& e) override {
    cap_.on_attention(e);
    ASSERT_EQ(e.k.dtype, DType::f32);
    const int64_t n_q = e.q.shape[1], n_head = e.q.shape[2], n_kv = e.k.shape[1];
    std::vector<float> lse;
    const std::vector<float> p = reference_probs(e, &lse);
    for (int64_t h = 0; h < n_head; ++h) {
      for (int64_t i = 0; i < n_q; ++i) {
        const auto row = p.begin() + (h * n_q + i) * n_kv;
        rows[{e.layer, h}][e.first_position + i].assign(row, row + n_kv);
        // A session on Backend::reference ran the reference kernel: its lse is the one the
        // reference gives for the same q and k, bit for bit.
        if (reference_run_) {
          EXPECT_EQ(e.lse[h * n_q + i], lse[static_cast<size_t>(h * n_q + i)])
              << "layer " << e.layer << " head " << h << " row " << i;
        }
      }
    }
  }
  RefRows rows;

 private:
  AttentionCapture& cap_;
  bool reference_run_;
};

// One greedy run on one attention backend: the tokens run, the captured maps
// ([layer * n_head + head], dense [t, t]) and the reference kernel's rows of the run's own q, k.
struct ParityRun {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> maps;
  RefRows reference;
};

ParityRun parity_run(const Model& model, const std::vector<int32_t>& prompt, int64_t n_new,
                     Backend backend) {
  AttentionCapture cap(model);
  ReferenceObserver obs(cap, backend == Backend::reference);
  Session session(model,
                  {.n_ctx = 64, .n_threads = 1, .observer = &obs, .attention_backend = backend});
  GenerateOptions g;
  g.max_new_tokens = n_new;
  g.sampling.temperature = 0;
  g.stop_at_eos = false;
  const GenerateResult r = session.generate(std::span<const int32_t>(prompt), g);
  ParityRun out;
  out.ids = prompt;
  out.ids.insert(out.ids.end(), r.ids.begin(), r.ids.end());
  out.ids.resize(static_cast<size_t>(session.n_past()));  // the last sampled token is not run
  EXPECT_EQ(session.n_past(), static_cast<int64_t>(prompt.size()) + n_new - 1);
  EXPECT_EQ(cap.n_tokens(), session.n_past());
  for (size_t li = 0; li < cap.layers().size(); ++li) {
    for (size_t hi = 0; hi < cap.heads().size(); ++hi) out.maps.push_back(cap.map(li, hi));
  }
  out.reference = std::move(obs.rows);
  return out;
}

// Every row (prefill and generated) of every (layer, head) against the reference rows.
void expect_maps_equal(const std::vector<std::vector<float>>& maps, const RefRows& want,
                       int64_t n_head, int64_t t, double tol, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(static_cast<int64_t>(maps.size()), static_cast<int64_t>(want.size()));
  for (const auto& [lh, by_pos] : want) {
    const std::vector<float>& got = maps[static_cast<size_t>(lh.first * n_head + lh.second)];
    ASSERT_EQ(static_cast<int64_t>(by_pos.size()), t);
    double err = 0;
    for (const auto& [pos, row] : by_pos) {
      for (int64_t j = 0; j < t; ++j) {
        const double w = j < static_cast<int64_t>(row.size()) ? row[static_cast<size_t>(j)] : 0;
        err = std::max(err, std::abs(got[static_cast<size_t>(pos * t + j)] - w));
      }
    }
    EXPECT_LE(err, tol) << "layer " << lh.first << " head " << lh.second;
  }
}

// The same greedy generation on the fast kernel and on Backend::reference. The fast run's maps
// must equal the reference run's probabilities (the reference kernel's own, see
// reference_probs) for the prefill and every generated step. Tolerance 1e-5 absolute: rows are
// recomputed in fp32 from an fp32 lse against double accumulation, and the two runs' hidden
// states differ by the fp32 rounding of each attention output (measured max 3.8e-6 on these
// models, the same with or without the second effect).
void expect_reference_parity(const Model& model, const std::vector<int32_t>& prompt,
                             int64_t n_new) {
  const ParityRun fast = parity_run(model, prompt, n_new, Backend::automatic);
  const ParityRun ref = parity_run(model, prompt, n_new, Backend::reference);
  ASSERT_EQ(fast.ids, ref.ids);  // same tokens, so the same rows
  const int64_t n_head = model.config().n_head, t = static_cast<int64_t>(fast.ids.size());
  expect_maps_equal(fast.maps, ref.reference, n_head, t, 1e-5,
                    "fast run's maps vs the reference run's probabilities");
  expect_maps_equal(fast.maps, fast.reference, n_head, t, 1e-5,
                    "fast run's maps vs the reference kernel on the same q and k");
  expect_maps_equal(ref.maps, ref.reference, n_head, t, 1e-5,
                    "reference run's maps (recomputed from its lse) vs its probabilities");
}

TEST(Capture, PrefillAndDecodeMatchReferenceBackendLlamaTiny) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/llama-tiny");
  const Model model = Model::load(dir.string());
  expect_reference_parity(model, {10, 20, 30, 40, 50, 60}, 6);  // GQA: 4 heads on 2 KV heads
}

TEST(Capture, PrefillAndDecodeMatchReferenceBackendStories260K) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = Model::load(bin.string(), tokenizer_beside(bin));
  expect_reference_parity(model, model.tokenizer().encode("Once upon a time"), 10);
}

// Gemma 2 (attention soft-cap 50, final soft-cap 30, a 16-key window on layer 0) and Qwen 3
// (per-head QK-norm): the maps stay exact with each. 30 tokens run, so layer 0's window drops keys;
// its rows must put zero on every key more than 15 positions back, and layer 1 (global) must not.
std::vector<int32_t> family_prompt(const std::filesystem::path& dir, size_t n) {
  std::ifstream in(dir / "ids.txt");
  std::vector<int32_t> ids;
  for (std::string tok; std::getline(in, tok, ',') && ids.size() < n;)
    ids.push_back(std::stoi(tok));
  return ids;
}

TEST(Capture, PrefillAndDecodeMatchReferenceBackendGemma2SoftCapAndWindow) {
  QKV_REQUIRE_SHARED(dir, "fixtures/gguf-families/gemma2");
  const Model model = Model::load((dir / "model-f32.gguf").string());
  ASSERT_EQ(model.config().sliding_window, 16);
  ASSERT_EQ(model.config().attn_softcap, 50.0);
  // The explain report's model line says which layers are local and which global.
  EXPECT_NE(model.describe().find("local layers (window 16) 0, global layers 1"), std::string::npos)
      << model.describe();
  const std::vector<int32_t> prompt = family_prompt(dir, 24);
  expect_reference_parity(model, prompt, 7);
  const ParityRun fast = parity_run(model, prompt, 7, Backend::automatic);
  const int64_t n_head = model.config().n_head, t = static_cast<int64_t>(fast.ids.size());
  ASSERT_GT(t, 16);
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (int64_t h = 0; h < n_head; ++h) {
      const std::vector<float>& m = fast.maps[static_cast<size_t>(layer * n_head + h)];
      double outside = 0;  // probability mass on keys more than 15 positions back
      for (int64_t i = 0; i < t; ++i) {
        for (int64_t j = 0; j + 16 <= i; ++j) outside += m[static_cast<size_t>(i * t + j)];
      }
      if (layer == 0) {
        EXPECT_EQ(outside, 0.0) << "sliding layer 0 head " << h;
      } else {
        EXPECT_GT(outside, 0.0) << "global layer 1 head " << h;
      }
    }
  }
}

TEST(Capture, PrefillAndDecodeMatchReferenceBackendQwen3QkNorm) {
  QKV_REQUIRE_SHARED(dir, "fixtures/gguf-families/qwen3");
  const Model model = Model::load((dir / "model-f32.gguf").string());
  expect_reference_parity(model, family_prompt(dir, 12), 6);
}

Model stories() {
  const auto bin = test::shared_file("models/stories260K/stories260K.bin");
  return Model::load(bin.string(), tokenizer_beside(bin));
}

// A text or a generation past the model's context (stories260K: 512 tokens) is refused with the
// counts, before anything runs; one that fits exactly runs to the end (-n was cut short without a
// word before).
TEST(Capture, ExplainRefusesTextsAndGenerationsPastTheContext) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories();
  ASSERT_EQ(model.config().n_ctx, 512);
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += " cat";  // BOS + 600 tokens
  const auto message = [&](std::string_view text, int64_t n_new) {
    try {
      explain(model, text, {.max_new_tokens = n_new, .n_threads = 1});
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message(long_text, 0).find("past the model's context of 512 tokens"), std::string::npos)
      << message(long_text, 0);
  const std::string n = message("Once upon a time", 600);
  EXPECT_NE(n.find("max_new_tokens = 600"), std::string::npos) << n;
  const std::string huge = message("Once upon a time", std::numeric_limits<int64_t>::max());
  EXPECT_NE(huge.find("max_new_tokens = 9223372036854775807"), std::string::npos) << huge;
  const int64_t n_prompt = explain(model, "Once upon a time", {.n_threads = 1}).n_prompt;
  EXPECT_NE(n.find("at most " + std::to_string(512 - n_prompt) + " fit"), std::string::npos) << n;
  ExplainOptions o;
  o.n_threads = 1;
  o.max_new_tokens = 512 - n_prompt;
  o.stop_at_eos = false;
  o.capture.layers = {0};
  o.capture.heads = {0};
  EXPECT_EQ(explain(model, "Once upon a time", o).ids.size(), 512u);
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

// Rows are kept by absolute position: a shorter prompt after Session::reset() replaces the rows
// of its positions (in the space the old rows held) and leaves the later ones.
TEST(Capture, ANewPromptAfterResetReplacesTheRowsOfItsPositions) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = stories();
  const std::vector<int32_t> a = model.tokenizer().encode("Once upon a time there was a cat");
  const std::vector<int32_t> b = model.tokenizer().encode("The dog ran");
  const int64_t ta = static_cast<int64_t>(a.size()), tb = static_cast<int64_t>(b.size());
  ASSERT_LT(tb, ta);
  AttentionCapture cap(model), only_a(model), only_b(model);
  const auto run = [&](AttentionCapture& c, const std::vector<int32_t>& ids, Session* s) {
    Session own(model, {.n_ctx = 32, .n_threads = 1, .observer = &c});
    (s ? *s : own).eval(ids);
  };
  Session session(model, {.n_ctx = 32, .n_threads = 1, .observer = &cap});
  run(cap, a, &session);
  const int64_t stored_a = cap.stored_floats();
  session.reset();
  run(cap, b, &session);
  run(only_a, a, nullptr);
  run(only_b, b, nullptr);
  EXPECT_EQ(cap.stored_floats(), stored_a);  // b's rows are shorter: they reuse a's space
  EXPECT_EQ(cap.n_tokens(), ta);
  for (size_t li = 0; li < cap.layers().size(); ++li) {
    for (size_t hi = 0; hi < cap.heads().size(); ++hi) {
      const std::vector<float> got = cap.map(li, hi, ta), wa = only_a.map(li, hi, ta);
      const std::vector<float> wb = only_b.map(li, hi, tb);
      for (int64_t i = 0; i < ta; ++i) {
        for (int64_t j = 0; j < ta; ++j) {
          const float want = i >= tb  ? wa[static_cast<size_t>(i * ta + j)]
                             : j < tb ? wb[static_cast<size_t>(i * tb + j)]
                                      : 0.f;
          ASSERT_EQ(got[static_cast<size_t>(i * ta + j)], want) << "row " << i << " key " << j;
        }
      }
    }
  }
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
