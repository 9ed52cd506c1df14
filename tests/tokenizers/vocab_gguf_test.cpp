// llama.cpp's tokenizer golden pairs (../shared/vocab-gguf), for every tokenizer family there: each
// .inp holds test strings separated by "\n__ggml_vocab_test__\n" (the last one may lack the
// separator); line i of .out holds the ids of string i, made by llama.cpp's
// convert_hf_to_gguf_update.py with the Hugging Face tokenizer and no special tokens added. Each
// pair must match exactly, and decode(encode(x)) must give x back where the vocabulary can
// represent x (everywhere but WordPiece, which lowercases and strips accents).
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
  if (pos < inp.size()) texts.push_back(inp.substr(pos));  // gemma-4's file ends without one
  std::vector<Case> cases;
  std::istringstream lines(out);
  std::string line;
  for (const std::string& t : texts) {
    if (!std::getline(lines, line)) break;
    Case c{t, {}};
    std::istringstream nums(line);
    for (int32_t id; nums >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size()) << gguf << ": fewer .out lines than .inp strings";
  return cases;
}

struct Family {
  const char* name;  // ggml-vocab-NAME.gguf
  bool round_trip;
};

void PrintTo(const Family& f, std::ostream* os) {
  *os << f.name;
}

class VocabGguf : public testing::TestWithParam<Family> {};

TEST_P(VocabGguf, EveryPairExactAndRoundTrips) {
  const Family& fam = GetParam();
  QKV_REQUIRE_SHARED(gguf, std::string("vocab-gguf/ggml-vocab-") + fam.name + ".gguf");
  const qkv::Tokenizer tok(qkv::tokenizer_spec_from_gguf(qkv::read_gguf(gguf.string())));
  const std::vector<Case> cases = load_cases(gguf);
  ASSERT_GE(cases.size(), 40u) << gguf;
  int passed = 0;
  for (const Case& c : cases) {
    // As llama.cpp's test-tokenizer-0: no BOS/EOS, special tokens in the text stay text.
    const std::vector<int32_t> ids =
        tok.encode(c.text, {.add_special = false, .parse_special = false});
    EXPECT_EQ(ids, c.ids) << fam.name << ": text \"" << c.text << "\"";
    passed += ids == c.ids;
    if (fam.round_trip) {
      EXPECT_EQ(tok.decode(ids), c.text) << fam.name << ": round trip of \"" << c.text << "\"";
    }
  }
  RecordProperty("pairs_passed", passed);
  std::cout << "[ vocab    ] " << fam.name << ": " << passed << "/" << cases.size()
            << " pairs exact\n";
  EXPECT_EQ(passed, static_cast<int>(cases.size()));
}

INSTANTIATE_TEST_SUITE_P(Shared, VocabGguf,
                         testing::Values(Family{"gpt-2", true}, Family{"llama-bpe", true},
                                         Family{"qwen2", true}, Family{"qwen35", true},
                                         Family{"deepseek-llm", true},
                                         Family{"deepseek-coder", true}, Family{"falcon", true},
                                         Family{"mpt", true}, Family{"starcoder", true},
                                         Family{"refact", true}, Family{"command-r", true},
                                         Family{"phi-3", true}, Family{"gemma-4", true},
                                         Family{"llama-spm", true}, Family{"bert-bge", false}),
                         [](const testing::TestParamInfo<Family>& info) {
                           std::string n = info.param.name;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

}  // namespace
