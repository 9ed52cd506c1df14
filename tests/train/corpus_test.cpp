// The built-in corpus and the held-out pronoun cases (qkv/train.h): determinism, held-out pairs,
// case offsets, agreement, vocabulary size and how well a small BPE covers the words.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/tokenizer.h"
#include "qkv/train.h"

namespace {

bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::vector<std::string> split_stories(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t end = std::min(text.find("\n\n", pos), text.size());
    out.push_back(text.substr(pos, end - pos));
    pos = end + 2;
  }
  return out;
}

std::vector<std::string> split_sentences(const std::string& story) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : story) {
    if (cur.empty() && c == ' ') continue;
    cur += c;
    if (c == '.') out.push_back(std::move(cur)), cur.clear();
  }
  return out;
}

// Runs of letters (and apostrophes inside words: "didn't").
std::vector<std::string> words_of(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (is_letter(c) || (c == '\'' && !cur.empty())) {
      cur += c;
    } else if (!cur.empty()) {
      out.push_back(std::move(cur)), cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool is_whole_word(const std::string& text, size_t at, size_t len) {
  return at + len <= text.size() && (at == 0 || !is_letter(text[at - 1])) &&
         (at + len == text.size() || !is_letter(text[at + len]));
}

// Offset of the last whole-word occurrence of `word` in text[0, end), or npos.
size_t last_word_before(const std::string& text, const std::string& word, size_t end) {
  size_t at = text.rfind(word, end - word.size());
  while (at != std::string::npos && !is_whole_word(text, at, word.size())) {
    at = at == 0 ? std::string::npos : text.rfind(word, at - 1);
  }
  return at;
}

TEST(Corpus, IsDeterministicInTheSeed) {
  const std::string a = qkv::generate_corpus({.seed = 1, .n_stories = 2000});
  EXPECT_EQ(a, qkv::generate_corpus({.seed = 1, .n_stories = 2000}));
  EXPECT_NE(a, qkv::generate_corpus({.seed = 2, .n_stories = 2000}));
  EXPECT_EQ(split_stories(a).size(), 2000u);
  // Fewer stories give a prefix of the same stream.
  const std::string b = qkv::generate_corpus({.seed = 1, .n_stories = 500});
  EXPECT_EQ(a.compare(0, b.size(), b), 0);
  EXPECT_TRUE(qkv::generate_corpus({.seed = 1, .n_stories = 0}).empty());

  const auto c1 = qkv::generate_pronoun_cases(50, 7), c2 = qkv::generate_pronoun_cases(50, 7);
  const auto c3 = qkv::generate_pronoun_cases(50, 8);
  ASSERT_EQ(c1.size(), 50u);
  bool differs = false;
  for (size_t i = 0; i < c1.size(); ++i) {
    EXPECT_EQ(c1[i].text, c2[i].text);
    EXPECT_EQ(c1[i].antecedent_offset, c2[i].antecedent_offset);
    differs = differs || c1[i].text != c3[i].text;
  }
  EXPECT_TRUE(differs);
}

TEST(Corpus, IsPlainAsciiWithAFewHundredWords) {
  const std::string text = qkv::generate_corpus({.seed = 3, .n_stories = 20000});
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    ASSERT_TRUE(c == '\n' || (c >= 32 && c < 127)) << "byte " << int{c} << " at " << i;
  }
  EXPECT_EQ(text.find("\n\n\n"), std::string::npos);
  std::set<std::string> vocab;
  for (std::string& w : words_of(text)) {
    std::transform(w.begin(), w.end(), w.begin(), [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    vocab.insert(w);
  }
  EXPECT_LT(vocab.size(), 1000u);
  EXPECT_GT(vocab.size(), 100u);
  // Every story kind is there.
  EXPECT_NE(text.find("because it was too"), std::string::npos);
  EXPECT_NE(text.find(" that the "), std::string::npos);
  EXPECT_NE(text.find("Once upon a time there was a little"), std::string::npos);
}

TEST(Corpus, HeldOutPairsNeverShareAWinogradStory) {
  const auto held = qkv::held_out_pronoun_pairs();
  EXPECT_NE(
      std::find(held.begin(), held.end(), std::pair<std::string, std::string>{"animal", "street"}),
      held.end());
  EXPECT_GT(held.size(), 30u);
  EXPECT_LT(held.size(), 120u);  // about 20% of 16 animals x 21 things
  std::set<std::string> agents_seen, things_seen, held_agents, held_things;
  for (const auto& [a, t] : held) held_agents.insert(a), held_things.insert(t);
  size_t n_winograd = 0;
  for (uint64_t seed : {1, 2, 3}) {
    for (const std::string& story : split_stories(qkv::generate_corpus({.seed = seed}))) {
      if (story.find("because it was too") == std::string::npos) continue;
      ++n_winograd;
      const std::vector<std::string> words = words_of(story);
      const std::set<std::string> present(words.begin(), words.end());
      for (const auto& [a, t] : held) {
        ASSERT_FALSE(present.count(a) && present.count(t))
            << "held-out pair (" << a << ", " << t << ") in: " << story;
      }
      for (const std::string& w : present) {
        if (held_agents.count(w)) agents_seen.insert(w);
        if (held_things.count(w)) things_seen.insert(w);
      }
    }
  }
  EXPECT_GT(n_winograd, 20000u);
  // The held-out words themselves are trained on, in other pairs.
  EXPECT_EQ(agents_seen, held_agents);
  EXPECT_EQ(things_seen, held_things);
}

TEST(Corpus, PronounCasesPointAtTheRightWords) {
  const auto held = qkv::held_out_pronoun_pairs();
  const std::set<std::pair<std::string, std::string>> held_set(held.begin(), held.end());
  const auto cases = qkv::generate_pronoun_cases(400);
  ASSERT_EQ(cases.size(), 400u);
  size_t n_agent = 0, n_object = 0, n_cue_sentence = 0;
  std::map<std::string, std::set<std::string>> follow_verbs;  // antecedent -> verbs after "It"
  for (const qkv::PronounCase& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string it = c.text.substr(c.pronoun_offset, c.pronoun_length);
    const std::string ante = c.text.substr(c.antecedent_offset, c.antecedent_length);
    const std::string dist = c.text.substr(c.distractor_offset, c.distractor_length);
    EXPECT_EQ(it, "it");
    EXPECT_TRUE(is_whole_word(c.text, c.pronoun_offset, c.pronoun_length));
    EXPECT_TRUE(is_whole_word(c.text, c.antecedent_offset, c.antecedent_length));
    EXPECT_TRUE(is_whole_word(c.text, c.distractor_offset, c.distractor_length));
    EXPECT_LT(c.antecedent_offset, c.pronoun_offset);
    EXPECT_LT(c.distractor_offset, c.pronoun_offset);
    EXPECT_EQ(last_word_before(c.text, ante, c.pronoun_offset), c.antecedent_offset);
    EXPECT_EQ(last_word_before(c.text, dist, c.pronoun_offset), c.distractor_offset);
    EXPECT_EQ(c.text.find(" it "), c.pronoun_offset - 1);  // the only "it"
    // The next sentence starts with "It" and a verb that belongs to the referent only.
    EXPECT_EQ(c.text.substr(c.follow_offset, c.follow_length), "It");
    EXPECT_GT(c.follow_offset, c.pronoun_offset);
    EXPECT_EQ(c.text.substr(c.follow_offset - 2, 2), ". ");
    follow_verbs[ante].insert(words_of(c.text.substr(c.follow_offset))[1]);
    // The sentence holding "it": "The [adj] SUBJECT verb ... the [adj] OBJECT because it ...".
    const size_t start = c.text.rfind("The ", c.pronoun_offset);
    ASSERT_NE(start, std::string::npos);
    if (start > 0) ++n_cue_sentence;
    const std::vector<std::string> words = words_of(c.text.substr(start));
    const size_t because = std::find(words.begin(), words.end(), "because") - words.begin();
    ASSERT_GE(because, 3u);
    const std::string object = words[because - 1];
    if (c.variant == "agent") {
      ++n_agent;
      // The subject is the first or (after the cue adjective) second word after "The".
      EXPECT_TRUE(words[1] == ante || words[2] == ante);
      EXPECT_EQ(object, dist);
      EXPECT_LT(c.antecedent_offset, c.distractor_offset);
      EXPECT_TRUE(held_set.count({ante, dist}));
    } else {
      ASSERT_EQ(c.variant, "object");
      ++n_object;
      EXPECT_EQ(object, ante);
      EXPECT_EQ(words[1], dist);
      EXPECT_GT(c.antecedent_offset, c.distractor_offset);
      EXPECT_TRUE(held_set.count({dist, ante}));
    }
  }
  EXPECT_EQ(n_agent, 200u);
  EXPECT_EQ(n_object, 200u);
  // One verb per noun, and no two nouns share it.
  std::set<std::string> verbs;
  for (const auto& [noun, v] : follow_verbs) {
    EXPECT_EQ(v.size(), 1u) << noun;
    verbs.insert(v.begin(), v.end());
  }
  EXPECT_EQ(verbs.size(), follow_verbs.size());
  EXPECT_GT(n_cue_sentence, 80u);  // about 40% give the cue in a sentence of its own
  EXPECT_LT(n_cue_sentence, 240u);
  // The quick start's pair is among the cases.
  bool animal_street = false;
  for (const auto& c : qkv::generate_pronoun_cases(2000)) {
    animal_street = animal_street || (c.text.find("animal") != std::string::npos &&
                                      c.text.find("street") != std::string::npos);
  }
  EXPECT_TRUE(animal_street);
}

bool plural_noun(const std::string& w) {
  static const std::set<std::string> irregular = {"mice", "wolves", "men", "women", "children"};
  return irregular.count(w) > 0 || w.back() == 's';
}

TEST(Corpus, AgreementSentencesAgreeWithTheHeadNoun) {
  const std::string text = qkv::generate_corpus({.seed = 5, .n_stories = 5000});
  size_t n_relative = 0, n_near = 0, n_mismatch = 0;
  for (const std::string& story : split_stories(text)) {
    for (const std::string& sentence : split_sentences(story)) {
      const std::vector<std::string> w = words_of(sentence);
      // "The HEAD that the OTHER VERB BE STATE." / "The HEAD near the OTHER BE STATE."
      const bool relative = w.size() == 8 && w[0] == "The" && w[2] == "that" && w[3] == "the";
      const bool near = w.size() == 7 && w[0] == "The" && w[2] == "near" && w[3] == "the";
      if (!relative && !near) continue;
      SCOPED_TRACE(sentence);
      const std::string& be = w[relative ? 6 : 5];
      ASSERT_TRUE(be == "is" || be == "are" || be == "was" || be == "were");
      EXPECT_EQ(plural_noun(w[1]), be == "are" || be == "were");
      if (relative) {
        ++n_relative;
        // The embedded verb agrees with its own subject: "sees" after one, "see" after many.
        EXPECT_EQ(plural_noun(w[4]), w[5].back() != 's');
      } else {
        ++n_near;
      }
      // The attractor differs in number from the head in about half of the sentences.
      if (plural_noun(w[1]) != plural_noun(w[4])) ++n_mismatch;
    }
  }
  EXPECT_GT(n_mismatch, (n_relative + n_near) / 3);
  EXPECT_GT(n_relative, 300u);
  EXPECT_GT(n_near, 300u);
}

TEST(Corpus, ASmallBpeMakesAlmostEveryWordOneToken) {
  // About 260 distinct word forms (" dog", "Mia", " Mia", ...), about equally frequent: 768
  // tokens (the default of qkv train) make more than 95% of word occurrences one token (640
  // tokens give 94%, 512 about 80%: too few merges for that many forms).
  const std::string text = qkv::generate_corpus({.seed = 1, .n_stories = 5000});
  qkv::BpeTrainOptions opt;
  opt.vocab_size = 768;
  const qkv::Tokenizer tok(qkv::train_byte_bpe(text, opt));
  // Words as GPT-2 pre-tokens: a run of letters with the space before it.
  std::map<std::string, int64_t> counts;
  for (size_t i = 0; i < text.size();) {
    if (!is_letter(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && is_letter(text[j])) ++j;
    const size_t from = i > 0 && text[i - 1] == ' ' ? i - 1 : i;
    ++counts[text.substr(from, j - from)];
    i = j;
  }
  int64_t n_words = 0, n_single = 0;
  for (const auto& [word, n] : counts) {
    n_words += n;
    if (tok.encode(word).size() == 1) n_single += n;
  }
  const double share = static_cast<double>(n_single) / static_cast<double>(n_words);
  std::printf("%lld word occurrences, %zu distinct, %.2f%% single tokens\n",
              static_cast<long long>(n_words), counts.size(), 100.0 * share);
  EXPECT_GE(share, 0.95);
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
}

}  // namespace
