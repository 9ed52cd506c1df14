// Tokenizer behaviour on small hand-made vocabularies (no ../shared needed) and the streaming
// decoder on real vocabularies.
#include <gtest/gtest.h>

#include <string_view>
#include <utility>

#include "common/shared_data.h"
#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

namespace {

using qkv::TokenizerSpec;
using qkv::TokenKind;

// <unk> <s> </s> <0x00>..<0xFF> ▁ a b ▁a ab ▁ab: a SentencePiece-style vocabulary.
TokenizerSpec tiny_spm() {
  TokenizerSpec s;
  s.model = TokenizerSpec::Model::spm_bpe;
  s.tokens = {"<unk>", "<s>", "</s>"};
  s.kinds = {TokenKind::unknown, TokenKind::control, TokenKind::control};
  static const char hex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    s.tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    s.kinds.push_back(TokenKind::byte);
  }
  for (const char* t : {"\xe2\x96\x81", "a", "b",
                        "\xe2\x96\x81"
                        "a",
                        "ab",
                        "\xe2\x96\x81"
                        "ab"}) {
    s.tokens.push_back(t);
    s.kinds.push_back(TokenKind::normal);
  }
  s.scores.assign(s.tokens.size(), 0.0f);
  s.scores[259 + 3] = -1.0f;  // ▁a
  s.scores[259 + 4] = -2.0f;  // ab
  s.scores[259 + 5] = -0.5f;  // ▁ab
  s.unk = 0, s.bos = 1, s.eos = 2;
  s.add_bos = true;
  return s;
}

TEST(Spm, MergesByScoreAndFallsBackToBytes) {
  const qkv::Tokenizer tok(tiny_spm());
  // "ab" -> ▁ a b: ▁a (score -1) beats ab (-2), then ▁a + b = ▁ab (-0.5).
  EXPECT_EQ(tok.encode("ab"), (std::vector<int32_t>{1, 264}));
  // "ba" -> ▁ b a: no pair is a piece.
  EXPECT_EQ(tok.encode("ba"), (std::vector<int32_t>{1, 259, 261, 260}));
  // "é" is not a piece: its two UTF-8 bytes become <0xC3> <0xA9>.
  EXPECT_EQ(tok.encode("\xc3\xa9", {.add_special = false}),
            (std::vector<int32_t>{259, 3 + 0xc3, 3 + 0xa9}));
  EXPECT_EQ(tok.decode(tok.encode("\xc3\xa9 ab")), "\xc3\xa9 ab");
  EXPECT_TRUE(tok.encode("", {.add_special = false}).empty());
  EXPECT_EQ(tok.encode(""), (std::vector<int32_t>{1}));
}

TEST(Spm, MalformedByteTokensDecodeAsTheirText) {
  // A token typed as a byte whose text is not <0xAB> (a corrupt or hostile vocabulary: the GGUF
  // fuzzer found one) decodes as its text instead of aborting; well-formed ones, either case,
  // stay bytes.
  TokenizerSpec s = tiny_spm();
  s.tokens[3 + 0x41] = "<0xZZ>";
  s.tokens[3 + 0x42] = "<0x4G>";
  s.tokens[3 + 0x43] = "<0x43]";
  s.tokens[3 + 0x44] = "<0x4d>";
  const qkv::Tokenizer tok(s);
  EXPECT_EQ(tok.decode(std::vector<int32_t>{3 + 0x41}, false), "<0xZZ>");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{3 + 0x42}, false), "<0x4G>");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{3 + 0x43}, false), "<0x43]");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{3 + 0x44}, false), "M");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{3 + 0x61}, false), "a");
}

TEST(Spm, SpecialTokensOnlyWhenParsed) {
  const qkv::Tokenizer tok(tiny_spm());
  const auto plain = tok.encode("<s>", {.add_special = false, .parse_special = false});
  EXPECT_NE(plain, (std::vector<int32_t>{1}));
  EXPECT_EQ(tok.encode("<s>", {.add_special = false, .parse_special = true}),
            (std::vector<int32_t>{1}));
}

// The vocab entries of a LLaMA-style tokenizer.json with tiny_spm()'s ids: <unk> <s> </s>, the 256
// byte tokens, then ▁ a b ▁a ▁ab.
std::string spm_json_vocab() {
  std::string vocab = R"("<unk>": 0, "<s>": 1, "</s>": 2)";
  static const char hex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    vocab += std::string(", \"<0x") + hex[b >> 4] + hex[b & 15] + ">\": " + std::to_string(3 + b);
  }
  return vocab + R"(, "\u2581": 259, "a": 260, "b": 261, "\u2581a": 262, "\u2581ab": 263)";
}

TEST(TokenizerJson, SentencePieceBpeWithByteFallback) {
  // A LLaMA-style tokenizer.json: BPE with byte_fallback, no ByteLevel pre-tokenizer; merges by
  // rank stand for SentencePiece scores; BOS from the post-processor template.
  const std::string vocab = spm_json_vocab();
  const std::string json = R"({"model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
    "vocab": {)" + vocab + R"(}, "merges": ["\u2581 a", "\u2581a b"]},
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A"}}]}})";
  const qkv::Tokenizer tok(qkv::parse_tokenizer_json(json, "tokenizer.json"));
  EXPECT_EQ(tok.spec().model, TokenizerSpec::Model::spm_bpe);
  EXPECT_EQ(tok.encode("ab a"), (std::vector<int32_t>{1, 263, 262}));
  EXPECT_EQ(tok.encode("\xc3\xa9", {.add_special = false}),
            (std::vector<int32_t>{259, 3 + 0xc3, 3 + 0xa9}));
  EXPECT_EQ(tok.decode(tok.encode("ab a \xc3\xa9")), "ab a \xc3\xa9");
}

// tokenizer.json's added tokens with rstrip / lstrip take the ASCII whitespace after / before
// them when they are found in the text (Hugging Face's AddedToken flags; llama.cpp's RSTRIP /
// LSTRIP token attributes): "ab </s> \n a" is "ab " </s> "a".
TEST(TokenizerJson, AddedTokensStripWhitespace) {
  const std::string vocab = spm_json_vocab();
  const std::string json = R"({"model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
    "vocab": {)" + vocab + R"(}, "merges": ["\u2581 a", "\u2581a b"]},
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 1, "content": "<s>", "special": true, "lstrip": true},
                     {"id": 2, "content": "</s>", "special": true, "rstrip": true}]})";
  const qkv::Tokenizer tok(qkv::parse_tokenizer_json(json, "tokenizer.json"));
  EXPECT_EQ(tok.spec().rstrip_ids, (std::vector<int32_t>{2}));
  EXPECT_EQ(tok.spec().lstrip_ids, (std::vector<int32_t>{1}));
  // "▁ab▁" </s> then "a" with the dummy prefix a fragment after a special token gets: "▁a".
  EXPECT_EQ(tok.encode("ab </s> \n a", {.add_special = false}),
            (std::vector<int32_t>{263, 259, 2, 262}));
  // "▁a" (the " \t" before <s> gone) <s> "▁" "b".
  EXPECT_EQ(tok.encode("a \t<s>b", {.add_special = false}),
            (std::vector<int32_t>{262, 1, 259, 261}));
  // Text that is not parsed for special tokens keeps its whitespace.
  EXPECT_EQ(tok.decode(tok.encode("ab </s> a", {.add_special = false, .parse_special = false})),
            "ab </s> a");
}

TEST(Tokenizer, RejectsInvalidUtf8NamingTheByte) {
  const qkv::Tokenizer tok(tiny_spm());
  for (const char* bad : {"ab\xff", "ab\xc3", "ab\xc0\xaf", "ab\xed\xa0\x80"}) {
    try {
      tok.encode(bad);
      FAIL() << "no error for invalid UTF-8";
    } catch (const qkv::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("at byte 2"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("expected UTF-8"), std::string::npos) << e.what();
    }
  }
}

TEST(Tokenizer, RejectsInconsistentSpecs) {
  TokenizerSpec bpe;
  bpe.model = TokenizerSpec::Model::byte_bpe;
  bpe.tokens = {"a"};
  bpe.pre_tokenizer = "no-such-family";  // an unknown split: refused rather than silently wrong
  try {
    qkv::Tokenizer{bpe};
    FAIL() << "no error for an unknown pre-tokenizer";
  } catch (const qkv::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("\"no-such-family\" is not supported"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("llama-bpe"), std::string::npos) << e.what();
  }
  TokenizerSpec s = tiny_spm();
  s.bos = 100000;
  EXPECT_THROW(qkv::Tokenizer{s}, qkv::InvalidArgument);
  s = tiny_spm();
  s.scores.pop_back();
  EXPECT_THROW(qkv::Tokenizer{s}, qkv::InvalidArgument);
  s = tiny_spm();
  s.tokens.clear();
  EXPECT_THROW(qkv::Tokenizer{s}, qkv::InvalidArgument);
  const qkv::Tokenizer tok(tiny_spm());
  const int32_t bad[] = {7, 100000};
  EXPECT_THROW(tok.decode(bad), qkv::InvalidArgument);
}

// A BERT-style vocabulary: four specials, then words, punctuation and one "##" continuation.
TokenizerSpec tiny_wordpiece() {
  TokenizerSpec s;
  s.model = TokenizerSpec::Model::wordpiece;
  s.tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", ",",   "world", ".",
              "isn",   "'",     "t",     "it",    "?",     "don", "n't",   "!",
              "##ing", "s",     "m",     "ve",    "re",    "go"};
  s.kinds.assign(s.tokens.size(), TokenKind::normal);
  for (int i = 0; i < 4; ++i) s.kinds[static_cast<size_t>(i)] = TokenKind::control;
  s.unk = 1, s.cls = 2, s.sep = 3, s.pad = 0;
  return s;
}

// The clean-up as it was written before (the slow twin): each pair replaced in place, searching
// on after the replacement; a text with n matches moved the rest of it n times.
std::string clean_up_in_place(std::string out) {
  static const std::pair<std::string_view, std::string_view> fixes[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : fixes) {
    for (size_t p = out.find(from); p != std::string::npos; p = out.find(from, p + to.size())) {
      out.replace(p, from.size(), to);
    }
  }
  return out;
}

TEST(WordPiece, DecodeCleansUpLikeHuggingFace) {
  const qkv::Tokenizer tok(tiny_wordpiece());
  const TokenizerSpec& s = tok.spec();
  // Python: " ".join-style WordPiece text, then transformers' clean_up_tokenization (a chain of
  // str.replace) gives this.
  const std::vector<int32_t> ids = {4, 5,  6, 7,  8, 9,  10, 11, 12, 13, 14, 15, 21, 16,
                                    9, 17, 9, 18, 9, 19, 9,  20, 9,  9,  7,  7,  12};
  EXPECT_EQ(tok.decode(ids), "hello, world. isn't it? donn't! going's'm've're''..?");
  // Random sequences against the slow twin: same text.
  uint64_t state = 12345;
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> seq;
    std::string raw;
    const int n = 1 + static_cast<int>(round % 40);
    for (int i = 0; i < n; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const auto id = static_cast<int32_t>(4 + (state >> 33) % (s.tokens.size() - 4));
      seq.push_back(id);
      const std::string& t = s.tokens[static_cast<size_t>(id)];
      raw += t.rfind("##", 0) == 0 ? t.substr(2) : " " + t;
    }
    if (raw[0] == ' ') raw.erase(0, 1);
    EXPECT_EQ(tok.decode(seq), clean_up_in_place(raw)) << "round " << round;
  }
}

TEST(WordPiece, DecodeIsLinearInTheText) {
  // 600k tokens "go ." -> "go. go. ...": 300k matches of " ." in a 1.2 MB text. Replacing in
  // place moved ~1.8e11 bytes: this test took 3.1 s that way, 42 ms with one copy per pair
  // (EPYC Zen 4, release build, 2026-12-08).
  const qkv::Tokenizer tok(tiny_wordpiece());
  constexpr size_t kPairs = 300'000;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < kPairs; ++i) {
    ids.push_back(21);  // go
    ids.push_back(7);   // .
  }
  std::string want;
  for (size_t i = 0; i < kPairs; ++i) want += i == 0 ? "go." : " go.";
  EXPECT_EQ(tok.decode(ids), want);
}

TEST(StreamDecoder, HoldsBackPartialUtf8) {
  const qkv::Tokenizer tok(tiny_spm());
  qkv::StreamDecoder dec(tok);
  // "€" = E2 82 AC as three byte tokens.
  EXPECT_EQ(dec.push(3 + 0xe2), "");
  EXPECT_EQ(dec.push(3 + 0x82), "");
  EXPECT_EQ(dec.push(3 + 0xac), "\xe2\x82\xac");
  // A lead byte followed by ASCII: U+FFFD, then the ASCII.
  EXPECT_EQ(dec.push(3 + 0xe2), "");
  EXPECT_EQ(dec.push(260),
            "\xef\xbf\xbd"
            "a");
  EXPECT_EQ(dec.push(3 + 0xf0), "");
  EXPECT_EQ(dec.flush(), "\xef\xbf\xbd");
}

// Byte tokens streamed one at a time give what Python's bytes.decode("utf-8", errors="replace")
// gives for the whole byte string (the expected column came from it): one U+FFFD per maximal
// ill-formed subpart, wherever the token boundaries fall.
TEST(StreamDecoder, ReplacesLikePython) {
  const qkv::Tokenizer tok(tiny_spm());
  const std::pair<std::string, std::string> cases[] = {
      {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xe4\xbd\x41", "\xef\xbf\xbd\x41"},
      {"\xf0\x9f\x98\x41", "\xef\xbf\xbd\x41"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xe1\x80\xe2\x82\xac", "\xef\xbf\xbd\xe2\x82\xac"},
      {"\xff\xfe\x5a", "\xef\xbf\xbd\xef\xbf\xbd\x5a"},
      {"\xe0\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xf0\x9f\x98", "\xef\xbf\xbd"},
  };
  for (const auto& [in, want] : cases) {
    qkv::StreamDecoder dec(tok);
    std::string got;
    for (char c : in) got += dec.push(3 + static_cast<unsigned char>(c));
    got += dec.flush();
    EXPECT_EQ(got, want) << ::testing::PrintToString(in);
  }
}

void check_stream_equals_decode(const qkv::Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> ids = tok.encode(text);
  qkv::StreamDecoder dec(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += dec.push(id);
  streamed += dec.flush();
  EXPECT_EQ(streamed, tok.decode(ids)) << text;
}

TEST(StreamDecoder, EqualsDecodeOnRealVocabularies) {
  QKV_REQUIRE_SHARED(gpt2, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  QKV_REQUIRE_SHARED(spm, "vocab-gguf/ggml-vocab-llama-spm.gguf");
  const std::string text =
      "Hello, y'all! How are you \xf0\x9f\x98\x81 ?\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8"
      "apple "
      "\xe1\x9e\x80\xe1\x9e\xb6\xe1\x9e\x93\xe1\x9f\x8b \xf0\x9f\xa6\x99.cpp";
  for (const auto& p : {gpt2, spm}) {
    const qkv::Tokenizer tok(qkv::tokenizer_spec_from_gguf(qkv::read_gguf(p.string())));
    check_stream_equals_decode(tok, text);
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  }
}

TEST(ByteBpe, EndOfTextIsSpecialOnlyWhenParsed) {
  QKV_REQUIRE_SHARED(gpt2, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  qkv::TokenizerSpec s = qkv::tokenizer_spec_from_gguf(qkv::read_gguf(gpt2.string()));
  s.kinds[50256] = qkv::TokenKind::control;  // as tokenizer.json marks it
  const qkv::Tokenizer tok(std::move(s));
  EXPECT_EQ(tok.encode("a<|endoftext|>", {.parse_special = true}),
            (std::vector<int32_t>{64, 50256}));
  EXPECT_GT(tok.encode("a<|endoftext|>", {.parse_special = false}).size(), 2u);
  EXPECT_EQ(tok.token_bytes(220), " ");  // "Ġ"
}

}  // namespace
