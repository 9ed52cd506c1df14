// Parity with Hugging Face transformers on the tiny fixtures in ../shared/fixtures/hf: logits at
// every position, every layer's hidden states and attention probabilities (eager attention),
// BERT's pooler. Tolerance: max |ours - theirs| / max |theirs| <= 1e-4 per tensor (fp32 on both
// sides; the difference is summation order), attention probabilities <= 1e-5 absolute.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "common/shared_data.h"
#include "model/forward.h"
#include "model_test_util.h"
#include "qkv/model.h"

namespace qkv {
namespace {

struct Reference {
  ModelFile file;
  std::vector<float> get(const std::string& name) const { return tensor_to_f32(file.tensor(name)); }
  bool has(const std::string& name) const { return file.find_tensor(name) != nullptr; }
  std::vector<int32_t> ids(int p) const {
    std::vector<int32_t> out;
    for (float f : get("p" + std::to_string(p) + ".ids")) out.push_back(static_cast<int32_t>(f));
    return out;
  }
};

void expect_close(const std::vector<float>& ours, const std::vector<float>& ref,
                  const std::string& what, double tol = 1e-4) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  EXPECT_LE(test::rel_error(ours, ref), tol) << what;
}

// Rows' log-sum-exp and the top-50 values, compared with the reference's for every prompt.
void expect_lse_and_top(const std::vector<float>& logits, int64_t n_vocab, const Reference& ref,
                        int p) {
  const std::string pre = "p" + std::to_string(p) + ".";
  const std::vector<float> lse_ref = ref.get(pre + "logsumexp");
  const std::vector<float> top_ref = ref.get(pre + "top50.values");
  const int64_t t = static_cast<int64_t>(lse_ref.size());
  ASSERT_EQ(static_cast<int64_t>(logits.size()), t * n_vocab);
  std::vector<float> lse(static_cast<size_t>(t)), top;
  for (int64_t i = 0; i < t; ++i) {
    const float* row = logits.data() + i * n_vocab;
    const float mx = *std::max_element(row, row + n_vocab);
    double s = 0;
    for (int64_t j = 0; j < n_vocab; ++j) s += std::exp(double(row[j]) - mx);
    lse[static_cast<size_t>(i)] = static_cast<float>(mx + std::log(s));
    std::vector<float> sorted(row, row + n_vocab);
    std::partial_sort(sorted.begin(), sorted.begin() + 50, sorted.end(), std::greater<>());
    top.insert(top.end(), sorted.begin(), sorted.begin() + 50);
  }
  expect_close(lse, lse_ref, pre + "logsumexp");
  expect_close(top, top_ref, pre + "top50.values");
}

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, LogitsHiddenStatesAndAttentionMatchTransformers) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/" + GetParam());
  const Model model = Model::load(dir.string());
  const Reference ref{read_safetensors((dir / "outputs.safetensors").string())};
  const ModelConfig& c = model.config();
  for (int p = 0; p < 3; ++p) {
    SCOPED_TRACE("prompt p" + std::to_string(p));
    const std::string pre = "p" + std::to_string(p) + ".";
    const std::vector<int32_t> ids = ref.ids(p);
    test::Recorder rec;
    std::vector<float> logits, hidden, pooled;
    if (model.is_decoder()) {
      model::KvCache cache(model, c.n_ctx, KvType::f32);
      model::decoder_forward(model, cache, ids, true, logits, {.n_threads = 2, .observer = &rec});
      if (p == 0) expect_close(logits, ref.get(pre + "logits"), pre + "logits");
      expect_lse_and_top(logits, c.n_vocab, ref, p);
    } else {
      model::encoder_forward(model, ids, {}, hidden, &pooled, {.n_threads = 2, .observer = &rec});
      expect_close(pooled, ref.get(pre + "pooler"), pre + "pooler");
    }
    // hidden_states[0] is the embedding output; [k] the output of layer k - 1, except the last
    // of a decoder, which transformers reports after the final norm.
    for (int64_t k = 0; k <= c.n_layer; ++k) {
      const std::string name = pre + "hidden.l" + std::to_string(k);
      std::string ours = k == 0 ? "embed" : "layer_out.l" + std::to_string(k - 1);
      if (k == c.n_layer && model.is_decoder()) ours = "final_norm";
      expect_close(rec.acts.at(ours), ref.get(name), name + " vs " + ours);
    }
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const std::string name = pre + "attn.l" + std::to_string(l);
      const std::vector<float> want = ref.get(name);
      ASSERT_EQ(rec.probs.at(static_cast<int>(l)).size(), want.size()) << name;
      EXPECT_LE(test::abs_error(rec.probs.at(static_cast<int>(l)), want), 1e-5) << name;
    }
  }
}

// Prefill of a prefix then one token at a time through the KV cache gives the logits of a
// single pass over the whole sequence (f32 cache: to 1e-5 of the scale; f16 cache: 1e-2, the
// cache rounding K and V to 11 significant bits).
class HfDecoderParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfDecoderParity, IncrementalDecodeMatchesOnePass) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/" + GetParam());
  const Model model = Model::load(dir.string());
  ASSERT_TRUE(model.is_decoder());
  const Reference ref{read_safetensors((dir / "outputs.safetensors").string())};
  const std::vector<int32_t> ids = ref.ids(2);
  const int64_t nv = model.config().n_vocab;
  std::vector<float> full;
  {
    model::KvCache cache(model, 64, KvType::f32);
    model::decoder_forward(model, cache, ids, true, full, {.n_threads = 1});
  }
  for (KvType kv : {KvType::f32, KvType::f16}) {
    model::KvCache cache(model, 64, kv);
    std::vector<float> step, got;
    const size_t split = 5;
    model::decoder_forward(model, cache, std::span(ids).first(split), true, step, {.n_threads = 2});
    got = step;
    for (size_t i = split; i < ids.size(); ++i) {
      model::decoder_forward(model, cache, std::span(ids).subspan(i, 1), false, step,
                             {.n_threads = 2});
      ASSERT_EQ(static_cast<int64_t>(step.size()), nv);
      got.insert(got.end(), step.begin(), step.end());
    }
    EXPECT_EQ(cache.n_past(), static_cast<int64_t>(ids.size()));
    EXPECT_LE(test::rel_error(got, full), kv == KvType::f32 ? 1e-5 : 1e-2);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity,
                         ::testing::Values("gpt2-tiny", "llama-tiny", "bert-tiny"));
// The KV cache exists for decoders only.
INSTANTIATE_TEST_SUITE_P(Fixtures, HfDecoderParity, ::testing::Values("gpt2-tiny", "llama-tiny"));

}  // namespace
}  // namespace qkv
