// resolve_target and target_score: the token the forward and gradient explanations score, on the
// built-in model (GPT-2, byte-level BPE) and stories260K (llama, SentencePiece).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/shared_data.h"
#include "explain_test_util.h"
#include "intervene_test_util.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {
namespace {

TEST(ExplainTarget, WordAfterAWordTakesTheLeadingSpace) {
  QKV_REQUIRE_BUILTIN();
  const Model model = Model::load(test::kBuiltInModel);
  const Tokenizer& tok = model.tokenizer();
  const std::vector<int32_t> prompt = tok.encode(test::kWinograd);
  const ExplainTarget t = resolve_target(model, prompt, "animal", "street");
  EXPECT_EQ(t.position, static_cast<int64_t>(prompt.size()) - 1);
  EXPECT_EQ(t.text, " animal");
  EXPECT_EQ(t.id, tok.encode(" animal", {.add_special = false})[0]);
  EXPECT_EQ(t.contrast_text, " street");
  EXPECT_TRUE(t.has_contrast());
  EXPECT_NE(t.note.find("as \" animal\""), std::string::npos) << t.note;
  // Written with its space, or as an id: the same token.
  EXPECT_EQ(resolve_target(model, prompt, " animal").id, t.id);
  EXPECT_EQ(resolve_target(model, prompt, "#" + std::to_string(t.id)).id, t.id);
  EXPECT_FALSE(resolve_target(model, prompt, "#" + std::to_string(t.id)).has_contrast());
}

// The note names the tokens on one line: a newline token as \n, part of a UTF-8 character (a
// byte-level token) as the byte's escape, a space as itself between the quotes.
TEST(ExplainTarget, NoteDrawsControlAndPartialTokensOnOneLine) {
  QKV_REQUIRE_BUILTIN();
  const Model model = Model::load(test::kBuiltInModel);
  const Tokenizer& tok = model.tokenizer();
  const std::vector<int32_t> prompt = tok.encode(test::kWinograd);
  const std::vector<int32_t> newline = tok.encode("\n", {.add_special = false});
  const std::vector<int32_t> cat = tok.encode("\u732b", {.add_special = false});  // e7 8c ab
  ASSERT_EQ(newline.size(), 1u);
  ASSERT_EQ(cat.size(), 3u);  // one token per byte in the built-in vocabulary
  const ExplainTarget t =
      resolve_target(model, prompt, "#" + std::to_string(newline[0]), "#" + std::to_string(cat[0]));
  EXPECT_EQ(t.note.find('\n'), std::string::npos) << t.note;
  EXPECT_NE(t.note.find("target \"\\n\" (id " + std::to_string(newline[0]) + ")"),
            std::string::npos)
      << t.note;
  EXPECT_NE(t.note.find("contrast \"\\xe7\""), std::string::npos) << t.note;
  const ExplainTarget space = resolve_target(model, prompt, "#" + std::to_string(cat[0]), " ");
  EXPECT_NE(space.note.find("contrast \" \" (id"), std::string::npos) << space.note;
}

TEST(ExplainTarget, DefaultIsTheGreedyNextToken) {
  QKV_REQUIRE_BUILTIN();
  const Model model = Model::load(test::kBuiltInModel);
  const std::vector<int32_t> prompt = model.tokenizer().encode(test::kWinograd);
  Session s(model, {.n_ctx = 64});
  const std::span<const float> l = s.eval(prompt);
  const std::vector<float> logits(l.begin(), l.end());
  int32_t best = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  EXPECT_EQ(resolve_target(model, prompt, "").id, best);              // runs the prompt itself
  EXPECT_EQ(resolve_target(model, prompt, "", {}, logits).id, best);  // from the given logits
  EXPECT_NE(resolve_target(model, prompt, "").note.find("greedy"), std::string::npos);
}

TEST(ExplainTarget, ErrorsNameTheText) {
  QKV_REQUIRE_BUILTIN();
  const Model model = Model::load(test::kBuiltInModel);
  const std::vector<int32_t> prompt = model.tokenizer().encode(test::kWinograd);
  const auto message = [&](std::string_view target, std::string_view contrast) {
    try {
      resolve_target(model, prompt, target, contrast);
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // A word the 512-token vocabulary splits.
  const std::string split = message("xylophone", "");
  EXPECT_NE(split.find("target \"xylophone\" is not one token"), std::string::npos) << split;
  EXPECT_NE(split.find("\" xylophone\" is "), std::string::npos) << split;
  const std::string contrast = message("animal", "xylophone");
  EXPECT_NE(contrast.find("contrast \"xylophone\""), std::string::npos) << contrast;
  EXPECT_NE(message("#999999", "").find("outside [0, "), std::string::npos);
  EXPECT_NE(message("animal", " animal").find("is the target token"), std::string::npos);
}

TEST(ExplainTarget, SentencePieceTokenizer) {
  QKV_REQUIRE_SHARED(bin, "models/stories260K/stories260K.bin");
  const Model model = Model::load(bin.string(), test::tokenizer_beside(bin));
  const Tokenizer& tok = model.tokenizer();
  const std::vector<int32_t> prompt = tok.encode("Once upon a time, there was a");
  // SentencePiece writes the space itself ("little" is "▁little"), so " little" is the space's
  // own token and then the word: the text as written is the one token.
  const ExplainTarget t = resolve_target(model, prompt, "little");
  EXPECT_EQ(t.text, " little");
  EXPECT_EQ(t.id, tok.encode("little", {.add_special = false})[0]);
}

TEST(ExplainTarget, ScoreIsLogProbabilityOrLogitDifference) {
  const std::vector<float> logits{1.0f, 2.0f, 0.5f, -3.0f};
  ExplainTarget t;
  t.id = 1;
  double lse = 0;
  for (float z : logits) lse += std::exp(static_cast<double>(z));
  EXPECT_NEAR(target_score(t, logits), 2.0 - std::log(lse), 1e-12);
  t.contrast_id = 2;
  EXPECT_DOUBLE_EQ(target_score(t, logits), 1.5);
  t.id = 4;
  EXPECT_THROW(target_score(t, logits), InvalidArgument);
}

TEST(ExplainTarget, EncodersAreRefused) {
  QKV_REQUIRE_SHARED(dir, "fixtures/hf/bert-tiny");
  const Model model = Model::load(dir.string());
  try {
    resolve_target(model, std::vector<int32_t>{1, 2, 3}, "");
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("encoder"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qkv
