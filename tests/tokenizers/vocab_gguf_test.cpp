// llama.cpp's tokenizer golden pairs (../shared/vocab-gguf), for every tokenizer family there: each
// .inp holds test strings separated by "\n__ggml_vocab_test__\n" (the last one may lack the
// separator); line i of .out holds the ids of string i, made by llama.cpp's
// convert_hf_to_gguf_update.py with the Hugging Face tokenizer and no special tokens added. Each
// pair must match exactly, and decode(encode(x)) must give x back where the vocabulary can
// represent x (everywhere but WordPiece, which lowercases and strips accents).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
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

qkv::Tokenizer load(const std::filesystem::path& gguf, std::vector<std::string> drop_keys = {}) {
  qkv::ModelFile m = qkv::read_gguf(gguf.string());
  qkv::Metadata md;
  for (const auto& [key, value] : m.metadata.entries()) {
    if (std::find(drop_keys.begin(), drop_keys.end(), key) == drop_keys.end()) md.set(key, value);
  }
  m.metadata = std::move(md);
  return qkv::Tokenizer(qkv::tokenizer_spec_from_gguf(m));
}

// BOS/EOS/[CLS]/[SEP] where the file has no add_*_token keys, as llama.cpp and the models' Hugging
// Face post-processors add them: WordPiece [CLS] ... [SEP], SentencePiece and Gemma 4 BOS, Llama 3
// <|begin_of_text|>, GPT-2 and Qwen2 nothing.
TEST(VocabGgufDefaults, SpecialTokensAddedByVocabularyType) {
  QKV_REQUIRE_SHARED(dir, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  const std::filesystem::path d = dir.parent_path();
  const std::vector<std::string> no_add = {"tokenizer.ggml.add_bos_token",
                                           "tokenizer.ggml.add_eos_token",
                                           "tokenizer.ggml.add_sep_token"};
  struct Want {
    const char* name;
    std::vector<int32_t> first, last;  // ids expected before and after the text's own
  };
  for (const Want& w :
       {Want{"bert-bge", {101}, {102}}, Want{"llama-spm", {1}, {}}, Want{"phi-3", {1}, {}},
        Want{"gemma-4", {2}, {}}, Want{"llama-bpe", {128000}, {}}, Want{"gpt-2", {}, {}},
        Want{"qwen2", {}, {}}, Want{"starcoder", {}, {}}}) {
    const auto path = d / (std::string("ggml-vocab-") + w.name + ".gguf");
    const qkv::Tokenizer tok = load(path, no_add);
    const std::string text = "Hello world";
    const std::vector<int32_t> plain = tok.encode(text, {.add_special = false});
    std::vector<int32_t> want = w.first;
    want.insert(want.end(), plain.begin(), plain.end());
    want.insert(want.end(), w.last.begin(), w.last.end());
    EXPECT_EQ(tok.encode(text), want) << w.name << " without add_*_token keys";
  }
  // A BERT GGUF that names neither [CLS] nor [SEP] by id still gets them.
  const qkv::Tokenizer bert =
      load(d / "ggml-vocab-bert-bge.gguf",
           {"tokenizer.ggml.cls_token_id", "tokenizer.ggml.seperator_token_id",
            "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_sep_token"});
  EXPECT_EQ(bert.encode("Hello world"), (std::vector<int32_t>{101, 7592, 2088, 102}));
}

// Special tokens written in the text are single tokens by default (parse_special), plain text
// with parse_special = false; user-defined tokens are matched either way.
TEST(VocabGgufDefaults, SpecialTokensInTextAreParsedByDefault) {
  QKV_REQUIRE_SHARED(dir, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  const std::filesystem::path d = dir.parent_path();
  struct Case {
    const char* name;
    const char* special;
  };
  for (const Case& c : {Case{"gpt-2", "<|endoftext|>"}, Case{"qwen2", "<|im_start|>"},
                        Case{"llama-bpe", "<|begin_of_text|>"}, Case{"llama-spm", "</s>"},
                        Case{"gemma-4", "<bos>"}, Case{"bert-bge", "[SEP]"}}) {
    const qkv::Tokenizer tok = load(d / (std::string("ggml-vocab-") + c.name + ".gguf"));
    const int32_t id = tok.find(c.special);
    ASSERT_GE(id, 0) << c.name << " has no " << c.special;
    const std::string text = std::string(c.special) + " is special";
    const std::vector<int32_t> parsed = tok.encode(text, {.add_special = false});
    ASSERT_FALSE(parsed.empty());
    EXPECT_EQ(parsed[0], id) << c.name;
    const std::vector<int32_t> rest = tok.encode(" is special", {.add_special = false});
    if (tok.spec().model != qkv::TokenizerSpec::Model::spm_bpe) {
      // (SentencePiece puts its dummy prefix after a special token as at the start.)
      EXPECT_EQ(std::vector<int32_t>(parsed.begin() + 1, parsed.end()), rest) << c.name;
    }
    const std::vector<int32_t> plain =
        tok.encode(text, {.add_special = false, .parse_special = false});
    EXPECT_EQ(std::count(plain.begin(), plain.end(), id), 0) << c.name;
    EXPECT_GT(plain.size(), parsed.size()) << c.name;
  }
}

// Phi-3's control and added tokens take the whitespace after them (Hugging Face's rstrip, which
// llama.cpp sets by model name since GGUF has no key for it): its chat template's "\n" after
// <|user|> and <|end|> is not a token. Expected ids are llama.cpp's (llama-tokenize, v0.5.0).
TEST(VocabGgufDefaults, Phi3SpecialTokensTakeTheWhitespaceAfterThem) {
  QKV_REQUIRE_SHARED(gguf, "vocab-gguf/ggml-vocab-phi-3.gguf");
  const qkv::Tokenizer tok = load(gguf);
  struct Case {
    const char* text;
    std::vector<int32_t> ids;
  };
  for (const Case& c : {
           Case{"<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n",
                {1, 32006, 887, 526, 1935, 344, 29889, 32007, 32010, 6324, 727, 32007, 32001}},
           Case{"x </s> \n y", {1, 921, 29871, 2, 343}},
           Case{"a <|end|>  \t b", {1, 263, 29871, 32007, 289}},
           Case{" <|end|>\n", {1, 259, 32007}},
           // <unk>, <s> and <|endoftext|> keep the whitespace after them.
           Case{"<unk> a<s> b<|endoftext|>\nc",
                {1, 0, 29871, 263, 1, 29871, 289, 32000, 29871, 13, 29883}},
       }) {
    EXPECT_EQ(tok.encode(c.text), c.ids) << c.text;
  }
  // Plain text is untouched: special tokens there are not parsed, so nothing strips.
  const std::string text = "<|end|>\n";
  EXPECT_EQ(tok.decode(tok.encode(text, {.add_special = false, .parse_special = false})), text);
}

// A text full of special tokens, or a long run of what a user-defined token matches (MPT's runs of
// spaces), is split in one pass: the splitting searched the rest of the text for every special
// token at every match, which took minutes on texts of a few hundred kilobytes. The ids are those
// of one unit repeated (each unit begins and ends with a special token), and the time is bounded
// far above the linear cost (about 0.1 s) and far below the quadratic one.
TEST(VocabGgufDefaults, TextsFullOfSpecialTokensSplitInLinearTime) {
  QKV_REQUIRE_SHARED(dir, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  const std::filesystem::path d = dir.parent_path();
  struct Case {
    const char* name;
    std::string unit;
  };
  for (const Case& c : {Case{"qwen2", "<|im_start|>user\nhi<|im_end|>"},
                        Case{"phi-3", "<|user|>hi<|end|>"}, Case{"gemma-4", "<bos>hi<eos>"}}) {
    const qkv::Tokenizer tok = load(d / (std::string("ggml-vocab-") + c.name + ".gguf"));
    const std::vector<int32_t> one = tok.encode(c.unit, {.add_special = false});
    std::string text;
    std::vector<int32_t> want;
    for (int i = 0; i < 20000; ++i) {
      text += c.unit;
      want.insert(want.end(), one.begin(), one.end());
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tok.encode(text, {.add_special = false});
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(ids, want) << c.name;
    EXPECT_LT(seconds, 10.0) << c.name << ": " << text.size() << " bytes";
  }
  const qkv::Tokenizer mpt = load(d / "ggml-vocab-mpt.gguf");
  const std::string spaces(400000, ' ');
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = mpt.encode(spaces, {.add_special = false});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  EXPECT_EQ(mpt.decode(ids), spaces);
}

}  // namespace
