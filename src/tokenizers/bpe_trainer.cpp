// Training a GPT-2-style byte-level BPE (qkv/tokenizer.h, train_byte_bpe).
//
// The text is cut at `end_of_text` and split by the same GPT-2 pre-tokenizer that
// Tokenizer::encode uses; distinct pre-tokens ("words") are counted once, and merges only ever
// join symbols inside one word. Each step takes the most frequent adjacent pair (counted over
// every adjacent position, weighted by the word's count, as HF's BpeTrainer does), replaces its
// occurrences left to right in the words that contain it, and updates the pair counts of those
// words only. A lazy max-heap finds the best pair: a pair's count only falls once the pair
// exists (new adjacencies always involve the new symbol), so an entry whose stored count is out
// of date is re-pushed with the current count when it reaches the top.
//
// Tokenizer::encode applies merges lowest rank first, all occurrences left to right. That gives
// back the training segmentation as long as no pair reappears after its merge, which holds when
// every token string is made by one merge only; so a pair whose joined string is already a token
// (e.g. "a"+"bc" after "ab"+"c") is skipped, never merged a second way.
#include <algorithm>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "qkv/tokenizer.h"
#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace qkv {
namespace {

using PairKey = uint64_t;  // (left id << 32) | right id

PairKey pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t pair_left(PairKey k) {
  return static_cast<int32_t>(k >> 32);
}
int32_t pair_right(PairKey k) {
  return static_cast<int32_t>(k & 0xffffffffu);
}

struct Word {
  std::vector<int32_t> symbols;  // token ids, initially the word's bytes
  int64_t count = 0;             // occurrences in the text
};

struct HeapEntry {
  int64_t count;
  PairKey pair;
};

// Counts the GPT-2 pre-tokens of `text` (cut at every `end_of_text`), sorted by their bytes.
std::vector<Word> count_words(std::string_view text, std::string_view end_of_text) {
  const tokenizers::RegexSplitter regex(tokenizers::find_pre_tokenizer("gpt-2")->patterns);
  std::unordered_map<std::string_view, int64_t> counts;
  std::vector<std::pair<size_t, size_t>> spans;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t at = std::min(text.find(end_of_text, pos), text.size());
    const std::string_view part = text.substr(pos, at - pos);
    spans.clear();
    regex.split(part, spans);
    for (auto [b, e] : spans) {
      if (e - b >= 2) ++counts[part.substr(b, e - b)];  // a single byte has no pair to merge
    }
    pos = at + end_of_text.size();
  }
  std::vector<std::pair<std::string_view, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [w, n] : sorted) {
    Word word;
    word.count = n;
    word.symbols.reserve(w.size());
    for (char c : w) word.symbols.push_back(static_cast<unsigned char>(c));
    words.push_back(std::move(word));
  }
  return words;
}

class BpeTrainer {
 public:
  BpeTrainer(std::vector<Word> words, int64_t min_pair_count)
      : words_(std::move(words)), min_pair_count_(std::max<int64_t>(1, min_pair_count)) {
    for (int b = 0; b < 256; ++b) {
      bytes_.emplace_back(1, static_cast<char>(b));
      std::string u;
      tokenizers::append_utf8(u, tokenizers::gpt2_byte_to_codepoint(static_cast<uint8_t>(b)));
      unicode_.push_back(std::move(u));
      known_.insert(bytes_.back());
    }
    for (int32_t w = 0; w < static_cast<int32_t>(words_.size()); ++w) {
      const Word& word = words_[w];
      for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
        const PairKey p = pair_key(word.symbols[i], word.symbols[i + 1]);
        counts_[p] += word.count;
        add_where(p, w);
      }
    }
    // Pushed in key order so that the heap's contents do not depend on the hash map's order
    // (the pop order does not either: the comparison is a total order).
    std::vector<PairKey> keys;
    keys.reserve(counts_.size());
    for (const auto& [p, n] : counts_) keys.push_back(p);
    std::sort(keys.begin(), keys.end());
    for (PairKey p : keys) heap_.push({counts_[p], p});
  }

  // Merges until there are `n_tokens` tokens or no pair is frequent enough.
  void run(size_t n_tokens) {
    while (bytes_.size() < n_tokens && !heap_.empty()) {
      const HeapEntry top = heap_.top();
      heap_.pop();
      const auto it = counts_.find(top.pair);
      const int64_t now = it == counts_.end() ? 0 : it->second;
      if (now != top.count) {  // out of date: the pair occurs less often now
        if (now > 0) heap_.push({now, top.pair});
        continue;
      }
      if (now < min_pair_count_) break;
      const int32_t a = pair_left(top.pair), b = pair_right(top.pair);
      std::string joined = bytes_[a] + bytes_[b];
      if (!known_.insert(joined).second) continue;  // made by another merge already: see top
      const auto z = static_cast<int32_t>(bytes_.size());
      bytes_.push_back(std::move(joined));
      unicode_.push_back(unicode_[a] + unicode_[b]);
      merges_.emplace_back(unicode_[a], unicode_[b]);
      merge(top.pair, z);
    }
  }

  // The vocabulary in GPT-2 byte-to-unicode form, and the merges in rank order.
  std::vector<std::string>& tokens() { return unicode_; }
  std::vector<std::pair<std::string, std::string>>& merges() { return merges_; }

 private:
  // Heap order: higher count first, then the pair whose (left, right) bytes sort first.
  struct Lower {
    const std::vector<std::string>* bytes;
    bool operator()(const HeapEntry& x, const HeapEntry& y) const {
      if (x.count != y.count) return x.count < y.count;
      const std::string& xl = (*bytes)[pair_left(x.pair)];
      const std::string& yl = (*bytes)[pair_left(y.pair)];
      if (xl != yl) return xl > yl;
      return (*bytes)[pair_right(x.pair)] > (*bytes)[pair_right(y.pair)];
    }
  };

  void add_where(PairKey p, int32_t w) {
    std::vector<int32_t>& ws = where_[p];
    if (ws.empty() || ws.back() != w) ws.push_back(w);
  }

  // Replaces pair (a, b) by z in every word that holds it, left to right, and updates counts.
  void merge(PairKey pair, int32_t z) {
    const int32_t a = pair_left(pair), b = pair_right(pair);
    auto node = where_.extract(pair);
    if (node.empty()) return;
    std::vector<PairKey> fresh;  // pairs with z, pushed once all words are done
    std::vector<int32_t> next;
    for (int32_t w : node.mapped()) {
      Word& word = words_[w];
      std::vector<int32_t>& s = word.symbols;
      bool found = false;
      for (size_t i = 0; i + 1 < s.size() && !found; ++i) found = s[i] == a && s[i + 1] == b;
      if (!found) continue;  // stale entry: an earlier merge took the pair away
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const PairKey p = pair_key(s[i], s[i + 1]);
        if ((counts_[p] -= word.count) == 0) counts_.erase(p);
      }
      next.clear();
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          next.push_back(z);
          i += 2;
        } else {
          next.push_back(s[i++]);
        }
      }
      s.swap(next);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const PairKey p = pair_key(s[i], s[i + 1]);
        counts_[p] += word.count;
        if (s[i] == z || s[i + 1] == z) {
          add_where(p, w);
          fresh.push_back(p);
        }
      }
    }
    std::sort(fresh.begin(), fresh.end());
    fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
    for (PairKey p : fresh) heap_.push({counts_[p], p});
  }

  std::vector<Word> words_;
  int64_t min_pair_count_;
  std::vector<std::string> bytes_;    // token id -> the bytes it stands for
  std::vector<std::string> unicode_;  // token id -> GPT-2 byte-to-unicode string
  std::unordered_set<std::string> known_;
  std::vector<std::pair<std::string, std::string>> merges_;
  std::unordered_map<PairKey, int64_t> counts_;
  // Words that held the pair when it was last counted (may hold stale entries).
  std::unordered_map<PairKey, std::vector<int32_t>> where_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, Lower> heap_{Lower{&bytes_}};
};

}  // namespace

TokenizerSpec train_byte_bpe(std::string_view text, const BpeTrainOptions& options) {
  if (options.vocab_size < 257) {
    core::throw_invalid("train_byte_bpe: vocab_size: expected at least 257 (256 bytes and ",
                        "end_of_text), found ", options.vocab_size);
  }
  if (options.end_of_text.empty()) {
    core::throw_invalid("train_byte_bpe: end_of_text: expected a non-empty token string");
  }
  tokenizers::require_utf8(text, "train_byte_bpe: text");
  tokenizers::require_utf8(options.end_of_text, "train_byte_bpe: end_of_text");

  BpeTrainer trainer(count_words(text, options.end_of_text), options.min_pair_count);
  trainer.run(static_cast<size_t>(options.vocab_size) - 1);

  TokenizerSpec spec;
  spec.model = TokenizerSpec::Model::byte_bpe;
  spec.pre_tokenizer = "gpt-2";  // llama.cpp's name for GPT-2's regex ("gpt2" it refuses)
  spec.tokens = std::move(trainer.tokens());
  spec.merges = std::move(trainer.merges());
  if (std::find(spec.tokens.begin(), spec.tokens.end(), options.end_of_text) != spec.tokens.end()) {
    core::throw_invalid("train_byte_bpe: end_of_text \"", options.end_of_text,
                        "\" is also a byte or merged token; choose a string such as ",
                        "<|endoftext|>");
  }
  spec.kinds.assign(spec.tokens.size(), TokenKind::normal);
  spec.tokens.push_back(options.end_of_text);
  spec.kinds.push_back(TokenKind::control);
  spec.bos = spec.eos = static_cast<int32_t>(spec.tokens.size()) - 1;
  spec.add_bos = false;
  spec.add_eos = false;
  return spec;
}

}  // namespace qkv
