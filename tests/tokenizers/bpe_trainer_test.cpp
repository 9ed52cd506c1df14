// train_byte_bpe: the classic hand-checked merges, round trips through qkv::Tokenizer on random
// UTF-8, determinism, the end-of-text control token and the argument errors.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/tokenizer.h"

namespace {

using qkv::BpeTrainOptions;
using qkv::TokenizerSpec;
using qkv::TokenKind;

uint64_t next_random(uint64_t& state) {  // splitmix64
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Words, spaces, digits, punctuation, newlines and 2-, 3- and 4-byte characters.
std::string random_utf8(size_t n_pieces, uint64_t seed) {
  static const char* const pieces[] = {"the",
                                       "cat",
                                       "sat",
                                       "on",
                                       "mat",
                                       " ",
                                       " ",
                                       "  ",
                                       "\n",
                                       "\n\n",
                                       "\t",
                                       "42",
                                       "2026",
                                       ".",
                                       ",",
                                       "!?",
                                       "'s",
                                       "'ll",
                                       "-",
                                       "\xc3\xa9",
                                       "\xc3\xbc"
                                       "ber",
                                       "\xe4\xb8\xad\xe6\x96\x87",
                                       "\xf0\x9f\x98\x80",
                                       "\xe2\x80\x94",
                                       "caf\xc3\xa9",
                                       "a",
                                       "b",
                                       "ab",
                                       "\x7f",
                                       "\x01"};
  const size_t n = sizeof(pieces) / sizeof(pieces[0]);
  std::string out;
  for (size_t i = 0; i < n_pieces; ++i) out += pieces[next_random(seed) % n];
  return out;
}

// A text of `n_words` words drawn from a vocabulary of `n_distinct` made-up words.
std::string word_text(size_t n_words, size_t n_distinct, uint64_t seed) {
  std::vector<std::string> vocab;
  for (size_t i = 0; i < n_distinct; ++i) {
    std::string w;
    const size_t len = 2 + next_random(seed) % 8;
    for (size_t k = 0; k < len; ++k) w += static_cast<char>('a' + next_random(seed) % 26);
    vocab.push_back(w);
  }
  std::string out;
  for (size_t i = 0; i < n_words; ++i) {
    out += vocab[next_random(seed) % n_distinct];
    out += i % 12 == 11 ? ".\n" : " ";
  }
  return out;
}

TEST(BpeTrainer, ClassicExampleMergesAsBpeMust) {
  // "aaabdaaabac" (one pre-token): aa (4 adjacent positions) first; then "aa"+"a" and "a"+"b"
  // tie at 2 and the smaller strings win ("a" < "aa"): ab; then aa+ab = "aaab" (2). After that
  // every pair occurs once, below min_pair_count = 2, so training stops early.
  BpeTrainOptions opt;
  opt.vocab_size = 300;
  const TokenizerSpec spec = qkv::train_byte_bpe("aaabdaaabac", opt);
  ASSERT_EQ(spec.tokens.size(), 260u);
  using Merge = std::pair<std::string, std::string>;
  EXPECT_EQ(spec.merges, (std::vector<Merge>{{"a", "a"}, {"a", "b"}, {"aa", "ab"}}));
  EXPECT_EQ(spec.tokens[256], "aa");
  EXPECT_EQ(spec.tokens[257], "ab");
  EXPECT_EQ(spec.tokens[258], "aaab");
  EXPECT_EQ(spec.tokens[259], "<|endoftext|>");
  const qkv::Tokenizer tok(spec);
  EXPECT_EQ(tok.encode("aaabdaaabac"), (std::vector<int32_t>{258, 'd', 258, 'a', 'c'}));

  // With vocab_size 258 only the first merge is made.
  opt.vocab_size = 258;
  const TokenizerSpec one = qkv::train_byte_bpe("aaabdaaabac", opt);
  EXPECT_EQ(one.merges, (std::vector<Merge>{{"a", "a"}}));
  EXPECT_EQ(qkv::Tokenizer(one).encode("aaabdaaabac"),
            (std::vector<int32_t>{256, 'a', 'b', 'd', 256, 'a', 'b', 'a', 'c'}));
}

TEST(BpeTrainer, MergesStayInsidePreTokensAndUseGpt2Characters) {
  // " low" and " lower" are pre-tokens with their leading space: the space byte is written Ġ.
  BpeTrainOptions opt;
  opt.vocab_size = 260;
  const TokenizerSpec spec = qkv::train_byte_bpe("low low low lower lower newest", opt);
  // Pre-tokens: "low" 1, " low" 2, " lower" 2, " newest" 1. l+o and o+w tie at 5 ("l" < "o"),
  // then lo+w (5), then Ġ+low (4).
  using Merge = std::pair<std::string, std::string>;
  ASSERT_EQ(spec.merges.size(), 3u);
  EXPECT_EQ(spec.merges,
            (std::vector<Merge>{{"l", "o"}, {"lo", "w"}, {"\xc4\xa0", "low"}}));  // "Ġ" "low"
  EXPECT_EQ(spec.tokens[' '], "\xc4\xa0");
  for (const auto& [a, b] : spec.merges) {
    EXPECT_EQ((a + b).find("w\xc4\xa0"), std::string::npos) << "merge across words: " << a << b;
  }
}

TEST(BpeTrainer, RoundTripsRandomUtf8) {
  const std::string train = random_utf8(20000, 1);
  BpeTrainOptions opt;
  opt.vocab_size = 400;
  const qkv::Tokenizer tok(qkv::train_byte_bpe(train, opt));
  EXPECT_EQ(tok.n_vocab(), 400);
  for (uint64_t seed = 2; seed < 12; ++seed) {
    const std::string text = random_utf8(500, seed);
    const std::vector<int32_t> ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text) << "seed " << seed;
    EXPECT_LT(ids.size(), text.size()) << "merges should compress text like the training text";
  }
}

TEST(BpeTrainer, IsDeterministic) {
  const std::string text = word_text(20000, 300, 3);
  BpeTrainOptions opt;
  opt.vocab_size = 600;
  const TokenizerSpec a = qkv::train_byte_bpe(text, opt);
  const TokenizerSpec b = qkv::train_byte_bpe(text, opt);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.merges, b.merges);
  const TokenizerSpec c = qkv::train_byte_bpe(word_text(20000, 300, 4), opt);
  EXPECT_NE(a.merges, c.merges);
}

TEST(BpeTrainer, Vocab257IsPureBytes) {
  BpeTrainOptions opt;
  opt.vocab_size = 257;
  const TokenizerSpec spec = qkv::train_byte_bpe("hello hello hello world", opt);
  ASSERT_EQ(spec.tokens.size(), 257u);
  EXPECT_TRUE(spec.merges.empty());
  const qkv::Tokenizer tok(spec);
  const std::string text = "hello, w\xc3\xb6rld\n";
  const std::vector<int32_t> ids = tok.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (size_t i = 0; i < text.size(); ++i) EXPECT_EQ(ids[i], static_cast<unsigned char>(text[i]));
}

TEST(BpeTrainer, EndOfTextIsAControlTokenForBosAndEos) {
  const std::string text = word_text(5000, 100, 5);
  BpeTrainOptions opt;
  opt.vocab_size = 512;
  const TokenizerSpec spec = qkv::train_byte_bpe(text + "<|endoftext|>" + text, opt);
  ASSERT_EQ(spec.tokens.size(), 512u);
  EXPECT_EQ(spec.model, TokenizerSpec::Model::byte_bpe);
  EXPECT_EQ(spec.pre_tokenizer, "gpt-2");  // llama.cpp's name; it refuses "gpt2"
  EXPECT_EQ(spec.bos, 511);
  EXPECT_EQ(spec.eos, 511);
  EXPECT_FALSE(spec.add_bos);
  EXPECT_EQ(spec.kinds[511], TokenKind::control);
  EXPECT_EQ(spec.tokens[511], "<|endoftext|>");
  for (const auto& [a, b] : spec.merges) EXPECT_EQ((a + b).find('|'), std::string::npos);

  const qkv::Tokenizer tok(spec);  // validation passes
  const std::string doc = "one story.<|endoftext|>another";
  const std::vector<int32_t> parsed = tok.encode(doc, {.parse_special = true});
  EXPECT_EQ(std::count(parsed.begin(), parsed.end(), 511), 1);
  EXPECT_EQ(tok.decode(parsed, /*skip_special=*/false), doc);
  EXPECT_EQ(tok.decode(parsed), "one story.another");
  const std::vector<int32_t> plain = tok.encode(doc, {.parse_special = false});
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 511), 0);
  EXPECT_EQ(tok.decode(plain), doc);
  EXPECT_TRUE(tok.is_special(511));
}

TEST(BpeTrainer, ManyWordsBecomeSingleTokens) {
  // 2 MB over 100 distinct words: 1024 tokens hold all of them, with and without the space.
  const std::string text = word_text(300000, 100, 6);
  BpeTrainOptions opt;
  opt.vocab_size = 1024;
  const auto t0 = std::chrono::steady_clock::now();
  const TokenizerSpec spec = qkv::train_byte_bpe(text, opt);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("train_byte_bpe: %zu bytes to %zu tokens in %.2f s\n", text.size(),
              spec.tokens.size(), s);
  const qkv::Tokenizer tok(spec);
  const std::vector<int32_t> ids = tok.encode(text);
  const size_t n_words = 300000;
  // One token per word plus one for each ".\n" (".", "\n" may merge): well under 1.2 per word.
  EXPECT_LT(static_cast<double>(ids.size()), 1.2 * static_cast<double>(n_words));
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(BpeTrainer, RejectsBadArguments) {
  BpeTrainOptions opt;
  opt.vocab_size = 256;
  EXPECT_THROW(qkv::train_byte_bpe("abc", opt), qkv::InvalidArgument);
  opt.vocab_size = 0;
  EXPECT_THROW(qkv::train_byte_bpe("abc", opt), qkv::InvalidArgument);
  opt.vocab_size = 300;
  EXPECT_THROW(qkv::train_byte_bpe("ab\xff", opt), qkv::InvalidArgument);
  opt.end_of_text = "";
  EXPECT_THROW(qkv::train_byte_bpe("abc", opt), qkv::InvalidArgument);
  opt.end_of_text = "a";  // collides with the byte token "a"
  EXPECT_THROW(qkv::train_byte_bpe("abc", opt), qkv::InvalidArgument);
  try {
    opt.end_of_text = "<|endoftext|>";
    opt.vocab_size = 100;
    qkv::train_byte_bpe("abc", opt);
    FAIL() << "expected InvalidArgument";
  } catch (const qkv::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("found 100"), std::string::npos) << e.what();
  }
  EXPECT_EQ(qkv::train_byte_bpe("", BpeTrainOptions{}).tokens.size(), 257u);
}

}  // namespace
