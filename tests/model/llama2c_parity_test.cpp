// Parity with llama2.c's run.c on the real stories260K checkpoint (../shared/models/stories260K):
// full logits at positions 0-7 (1e-4 of the row's scale) and the greedy 200-step sequences,
// token for token, computed here with a plain argmax loop over the model layer (the runtime's
// sampler and generate() are tested against the same data in tests/runtime).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/shared_data.h"
#include "model/forward.h"
#include "model_test_util.h"
#include "qkv/model.h"

namespace qkv {
namespace {

TEST(Llama2cParity, LogitsMatchRunC) {
  QKV_REQUIRE_SHARED(dir, "models/stories260K");
  const Model model = Model::load((dir / "stories260K.bin").string());
  EXPECT_EQ(model.rope_style(), RopeStyle::interleaved);
  std::ifstream in(dir / "logits_once_upon_a_time.txt");
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> want;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    int pos, token;
    s >> pos >> token;
    tokens.push_back(token);
    want.emplace_back();
    for (float f; s >> f;) want.back().push_back(f);
  }
  ASSERT_EQ(tokens.size(), 8u);
  model::KvCache cache(model, model.config().n_ctx, KvType::f32);
  std::vector<float> logits;
  model::decoder_forward(model, cache, tokens, true, logits, {.n_threads = 2});
  const int64_t nv = model.config().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    ASSERT_EQ(static_cast<int64_t>(want[i].size()), nv);
    const std::span<const float> row(logits.data() + static_cast<int64_t>(i) * nv,
                                     static_cast<size_t>(nv));
    EXPECT_LE(test::rel_error(row, want[i]), 1e-4) << "position " << i;
  }
}

// run.c's loop: feed the prompt (after BOS) then the argmax, one position at a time, for 200
// steps or until BOS (id 1) comes out.
std::vector<int32_t> greedy_like_run_c(const Model& model, const std::vector<int32_t>& prompt,
                                       int steps, KvType kv) {
  model::KvCache cache(model, model.config().n_ctx, kv);
  std::vector<int32_t> out;
  std::vector<float> logits;
  int32_t token = prompt[0];
  for (int pos = 0; pos < steps; ++pos) {
    const int32_t one[1] = {token};
    model::decoder_forward(model, cache, one, false, logits, {.n_threads = 1});
    int32_t next;
    if (pos + 1 < static_cast<int>(prompt.size())) {
      next = prompt[static_cast<size_t>(pos) + 1];
    } else {
      next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    if (next == 1) break;
    out.push_back(next);
    token = next;
  }
  return out;
}

TEST(Llama2cParity, GreedyGenerationsMatchRunC) {
  QKV_REQUIRE_SHARED(dir, "models/stories260K/reference.json");
  const auto ref = nlohmann::json::parse(std::ifstream(dir));
  const Model model = Model::load((dir.parent_path() / "stories260K.bin").string());
  ASSERT_FALSE(ref["cases"].empty());
  for (const auto& c : ref["cases"]) {
    const auto prompt = c["prompt_ids_with_bos"].get<std::vector<int32_t>>();
    const auto want = c["ids_after_bos"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy_like_run_c(model, prompt, 200, KvType::f32), want) << c["prompt"];
  }
}

}  // namespace
}  // namespace qkv
