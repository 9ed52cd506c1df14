// Tokenizers against independent references in ../shared: llama2.c run.c prompt ids, the ids
// transformers recorded for the HF fixtures, and the vocab-gguf pairs through other file forms
// of the same vocabularies (llama2.c tokenizer.bin, GPT-2 vocab.json + merges.txt, vocab.txt).
#include <gtest/gtest.h>
#include <filesystem>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "common/raw_io.h"
#include "common/shared_data.h"
#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

namespace {

using nlohmann::json;

json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// The vocab-gguf pairs of `gguf`, checked against a tokenizer built from another source.
void check_pairs(const qkv::Tokenizer& tok, const std::filesystem::path& gguf) {
  const std::string inp = qkv::test::read_file(gguf.string() + ".inp");
  std::istringstream out(qkv::test::read_file(gguf.string() + ".out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  int n = 0;
  size_t pos = 0;
  for (size_t at; (at = inp.find(sep, pos)) != std::string::npos; pos = at + sep.size(), ++n) {
    const std::string text = inp.substr(pos, at - pos);
    std::string line;
    std::getline(out, line);
    std::vector<int32_t> want;
    std::istringstream nums(line);
    for (int32_t id; nums >> id;) want.push_back(id);
    EXPECT_EQ(tok.encode(text, {.add_special = false}), want) << "text: \"" << text << "\"";
  }
  EXPECT_GE(n, 40);
}

TEST(Llama2c, Stories260KPromptIdsMatchRunC) {
  QKV_REQUIRE_SHARED(ref, "models/stories260K/reference.json");
  QKV_REQUIRE_SHARED(tok_path, "models/stories260K/tok512.bin");
  const qkv::Tokenizer tok(qkv::read_llama2c_tokenizer(tok_path.string(), 512));
  const json j = read_json(ref);
  ASSERT_FALSE(j["cases"].empty());
  for (const json& c : j["cases"]) {
    const auto want = c["prompt_ids_with_bos"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(c["prompt"].get<std::string>()), want) << c["prompt"];
    // decode drops BOS and the dummy prefix: the prompt comes back.
    EXPECT_EQ(tok.decode(want), c["prompt"].get<std::string>());
  }
}

TEST(Llama2c, ModelAndTokenizerTogether) {
  QKV_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  QKV_REQUIRE_SHARED(tok_path, "models/stories260K/tok512.bin");
  const qkv::ModelFile m = qkv::open_model(model.string());
  const qkv::Tokenizer tok(qkv::tokenizer_spec_for(m, tok_path.string()));
  EXPECT_EQ(tok.n_vocab(), m.config.n_vocab);
  // Without a path: the single tok*.bin beside the checkpoint, which is tok512.bin here.
  EXPECT_EQ(qkv::tokenizer_spec_for(m).tokens, qkv::read_tokenizer_file(tok_path.string()).tokens);
  // Alone in a folder: no tokenizer inside a .bin, and the error says what to pass.
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "llama2c_alone";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(model, dir / "model.bin",
                             std::filesystem::copy_options::overwrite_existing);
  const qkv::ModelFile alone = qkv::open_model((dir / "model.bin").string());
  try {
    (void)qkv::tokenizer_spec_for(alone);
    ADD_FAILURE() << "expected qkv::Error";
  } catch (const qkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.bin"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(Llama2c, Llama2TokenizerBinMatchesLlamaSpmPairs) {
  // The LLaMA-2 vocabulary exported by llama2.c reproduces llama.cpp's llama-spm pairs.
  QKV_REQUIRE_SHARED(bin, "tokenizers/llama2/tokenizer.bin");
  QKV_REQUIRE_SHARED(gguf, "vocab-gguf/ggml-vocab-llama-spm.gguf");
  const qkv::Tokenizer tok(qkv::read_llama2c_tokenizer(bin.string()));
  EXPECT_EQ(tok.n_vocab(), 32000);
  check_pairs(tok, gguf);
}

TEST(HfFiles, Gpt2VocabJsonAndMergesMatchGpt2Pairs) {
  QKV_REQUIRE_SHARED(vocab, "tokenizers/gpt2/vocab.json");
  QKV_REQUIRE_SHARED(merges, "tokenizers/gpt2/merges.txt");
  QKV_REQUIRE_SHARED(gguf, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  const qkv::Tokenizer tok(qkv::read_gpt2_vocab(vocab.string(), merges.string()));
  check_pairs(tok, gguf);
}

TEST(HfFiles, BertVocabTxtMatchesBertPairs) {
  QKV_REQUIRE_SHARED(vocab, "tokenizers/bert/vocab.txt");
  QKV_REQUIRE_SHARED(gguf, "vocab-gguf/ggml-vocab-bert-bge.gguf");
  const qkv::Tokenizer tok(qkv::read_wordpiece_vocab(vocab.string()));
  check_pairs(tok, gguf);
}

// llama2.c run.c's encode(), written out plainly (the slow twin): merge the best-scoring
// adjacent pair, leftmost on ties, rescanning everything after each merge; byte fallback id =
// byte + 3. The fast path (a heap, word-by-word with a cache) must give the same ids.
std::vector<int32_t> runc_encode(const qkv::TokenizerSpec& s, const std::string& raw) {
  std::unordered_map<std::string, int32_t> ids;
  for (size_t i = 0; i < s.tokens.size(); ++i) {
    if (s.kinds[i] == qkv::TokenKind::normal) ids.emplace(s.tokens[i], static_cast<int32_t>(i));
  }
  if (raw.empty()) return {};  // run.c adds the dummy prefix only to non-empty text
  std::string text = "\xe2\x96\x81";
  for (char c : raw) text += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
  std::vector<std::string> sym;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    sym.push_back(text.substr(i, n));
    i += n;
  }
  while (true) {
    float best = -1e30f;
    int best_i = -1;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      auto it = ids.find(sym[i] + sym[i + 1]);
      if (it != ids.end() && s.scores[it->second] > best) {
        best = s.scores[it->second];
        best_i = static_cast<int>(i);
      }
    }
    if (best_i < 0) break;
    sym[best_i] += sym[best_i + 1];
    sym.erase(sym.begin() + best_i + 1);
  }
  std::vector<int32_t> out;
  for (const std::string& p : sym) {
    auto it = ids.find(p);
    if (it != ids.end()) {
      out.push_back(it->second);
    } else {
      for (unsigned char c : p) out.push_back(static_cast<int32_t>(c) + 3);
    }
  }
  return out;
}

TEST(Llama2c, FastSpmMatchesRunCLoopOnLongText) {
  QKV_REQUIRE_SHARED(bin, "tokenizers/llama2/tokenizer.bin");
  QKV_REQUIRE_SHARED(inp, "vocab-gguf/ggml-vocab-llama-spm.gguf.inp");
  const qkv::TokenizerSpec spec = qkv::read_llama2c_tokenizer(bin.string());
  const qkv::Tokenizer tok(spec);
  // All test strings at once (repeated words exercise the cache), then each line alone.
  const std::string all = qkv::test::read_file(inp);
  EXPECT_EQ(tok.encode(all, {.add_special = false}), runc_encode(spec, all));
  std::istringstream lines(all);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(tok.encode(line, {.add_special = false}), runc_encode(spec, line)) << line;
  }
}

class HfFixture : public testing::TestWithParam<const char*> {};

TEST_P(HfFixture, TokenizerJsonReproducesTransformersIds) {
  const std::string dir = std::string("fixtures/hf/") + GetParam();
  QKV_REQUIRE_SHARED(folder, dir);
  QKV_REQUIRE_SHARED(outputs, dir + "/outputs.json");
  const qkv::ModelFile m = qkv::open_model(folder.string());
  const qkv::Tokenizer tok(qkv::tokenizer_spec_for(m));
  const json j = read_json(outputs);
  ASSERT_EQ(j["prompts"].size(), 3u);
  for (const json& p : j["prompts"]) {
    const std::string text = p["prompt"].get<std::string>();
    EXPECT_EQ(tok.encode(text), p["ids"].get<std::vector<int32_t>>()) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, HfFixture,
                         testing::Values("gpt2-tiny", "llama-tiny", "bert-tiny"));

}  // namespace
