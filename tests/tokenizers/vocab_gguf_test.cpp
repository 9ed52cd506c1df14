// llama.cpp's tokenizer golden pairs (../shared/vocab-gguf): each .inp holds test strings
// separated by "\n__ggml_vocab_test__\n"; line i of .out holds the ids of string i, made by
// llama.cpp's test-tokenizer-0 script with the HF tokenizer and no special tokens added.
#include <gtest/gtest.h>

#include <sstream>

#include "common/raw_io.h"
#include "common/shared_data.h"
#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

namespace {

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> load_cases(const std::filesystem::path& gguf) {
  const std::string inp = qkv::test::read_file(gguf.string() + ".inp");
  const std::string out = qkv::test::read_file(gguf.string() + ".out");
  std::vector<std::string> texts;
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  for (size_t at; (at = inp.find(sep, pos)) != std::string::npos; pos = at + sep.size()) {
    texts.push_back(inp.substr(pos, at - pos));
  }
  std::vector<Case> cases;
  std::istringstream lines(out);
  std::string line;
  for (const std::string& t : texts) {
    std::getline(lines, line);
    Case c{t, {}};
    std::istringstream nums(line);
    for (int32_t id; nums >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

void check_vocab(const std::filesystem::path& gguf, bool round_trip) {
  const qkv::Tokenizer tok(qkv::tokenizer_spec_from_gguf(qkv::read_gguf(gguf.string())));
  const std::vector<Case> cases = load_cases(gguf);
  ASSERT_GE(cases.size(), 40u) << gguf;
  int passed = 0;
  for (const Case& c : cases) {
    const std::vector<int32_t> ids = tok.encode(c.text, {.add_special = false});
    EXPECT_EQ(ids, c.ids) << "text: \"" << c.text << "\"";
    passed += ids == c.ids;
    if (round_trip) {
      EXPECT_EQ(tok.decode(ids), c.text) << "round trip of \"" << c.text << "\"";
    }
  }
  EXPECT_EQ(passed, static_cast<int>(cases.size()));
}

TEST(VocabGguf, Gpt2AllPairs) {
  QKV_REQUIRE_SHARED(p, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  check_vocab(p, /*round_trip=*/true);
}

TEST(VocabGguf, LlamaSpmAllPairs) {
  QKV_REQUIRE_SHARED(p, "vocab-gguf/ggml-vocab-llama-spm.gguf");
  check_vocab(p, /*round_trip=*/true);
}

TEST(VocabGguf, BertBgeAllPairs) {
  QKV_REQUIRE_SHARED(p, "vocab-gguf/ggml-vocab-bert-bge.gguf");
  check_vocab(p, /*round_trip=*/false);  // lowercasing and accent stripping lose information
}

}  // namespace
