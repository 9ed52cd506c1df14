// BPE with ranked merges, in its two alphabets:
//   byte_bpe (GPT-2 family): the pre-tokenizer cuts the text into pieces, each piece's bytes are
//     mapped to printable characters (bytes_to_unicode), then merged;
//   utf8_bpe (Gemma 4): spaces become U+2581, the text is cut only at runs of newlines, the
//     pieces are merged as UTF-8 characters and what no token covers becomes <0xAB> byte tokens.
// Merging, as Hugging Face's BPE model does it: the adjacent pair with the lowest merge rank
// first, the leftmost of equal ones (a heap of candidate pairs over a linked list of symbols,
// O(n log n) per piece, so a long piece without spaces stays cheap).
#include <climits>
#include <queue>

#include "core/error.h"
#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace qkv {
namespace {

using Model = TokenizerSpec::Model;

struct BpeSymbol {
  int prev;
  int next;
  uint32_t begin;  // byte range in the piece
  uint32_t n;      // 0 once merged into its left neighbour
};

struct BpeCandidate {
  int32_t rank;
  int left;
  uint32_t n_left, n_right;  // the sizes when queued: a merge on either side makes it stale
  bool operator<(const BpeCandidate& o) const {  // max-heap top: lowest rank, then leftmost
    return rank > o.rank || (rank == o.rank && left > o.left);
  }
};

const std::string kBpeSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

}  // namespace

void Tokenizer::Impl::init_bpe() {
  // bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes get
  // U+0100.. in byte order.
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(n++);
    byte_unicode[b].clear();
    tokenizers::append_utf8(byte_unicode[b], cp);
    unicode_byte[cp] = static_cast<uint8_t>(b);
  }
  merge_rank.reserve(spec.merges.size());
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    merge_rank.emplace(a + " " + b, static_cast<int32_t>(r));  // the first rank wins
  }
  const std::string name = spec.model == Model::utf8_bpe ? "gemma4" : spec.pre_tokenizer;
  pre = tokenizers::find_pre_tokenizer(name);
  if (pre == nullptr) {
    // Splitting the text another family's way would give other ids than the model was trained
    // on, silently: refused by name instead.
    core::throw_invalid("tokenizer spec: pre-tokenizer \"", spec.pre_tokenizer,
                        "\" is not supported; qkv knows ", tokenizers::known_pre_tokenizers());
  }
  splitter = std::make_unique<tokenizers::RegexSplitter>(pre->patterns);
  if (spec.model == Model::utf8_bpe) init_byte_ids();
}

void Tokenizer::Impl::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  // symbols: the piece's UTF-8 characters, merged in place.
  std::vector<BpeSymbol> sym;
  sym.reserve(word.size());
  for (size_t off = 0; off < word.size();) {
    const size_t n = std::min<size_t>(tokenizers::utf8_len(static_cast<unsigned char>(word[off])),
                                      word.size() - off);
    const int i = static_cast<int>(sym.size());
    sym.push_back({i - 1, -1, static_cast<uint32_t>(off), static_cast<uint32_t>(n)});
    if (i > 0) sym[i - 1].next = i;
    off += n;
  }
  std::priority_queue<BpeCandidate> queue;
  std::string key;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const BpeSymbol& l = sym[left];
    const BpeSymbol& r = sym[right];
    key.assign(word.substr(l.begin, l.n)).append(" ").append(word.substr(r.begin, r.n));
    auto it = merge_rank.find(key);
    if (it != merge_rank.end()) queue.push({it->second, left, l.n, r.n});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    const BpeCandidate c = queue.top();
    queue.pop();
    BpeSymbol& l = sym[c.left];
    if (l.n != c.n_left || l.next < 0 || sym[l.next].n != c.n_right) continue;  // stale
    BpeSymbol& r = sym[l.next];
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    try_add(l.prev, c.left);
    try_add(c.left, l.next);
  }
  for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
    const std::string_view s = word.substr(sym[i].begin, sym[i].n);
    const int32_t id = id_of(s);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    if (spec.model == Model::utf8_bpe) {  // byte fallback
      for (char ch : s) {
        const int32_t bid = byte_ids[static_cast<unsigned char>(ch)];
        if (bid >= 0)
          out.push_back(bid);
        else if (spec.unk >= 0)
          out.push_back(spec.unk);
      }
      continue;
    }
    // Not in the vocabulary (only with incomplete vocabularies): fall back to its characters.
    for (size_t k = 0; k < s.size();) {
      const int n = tokenizers::utf8_len(static_cast<unsigned char>(s[k]));
      const int32_t cid = id_of(s.substr(k, n));
      if (cid >= 0)
        out.push_back(cid);
      else if (spec.unk >= 0)
        out.push_back(spec.unk);
      k += n;
    }
  }
}

void Tokenizer::Impl::encode_bpe(std::string_view raw, std::vector<int32_t>& out) const {
  const bool utf8 = spec.model == Model::utf8_bpe;
  std::string escaped;
  if (utf8) {  // SentencePiece's whitespace escaping; no dummy prefix
    escaped.reserve(raw.size() + 8);
    for (char c : raw) {
      if (c == ' ')
        escaped += kBpeSpace;
      else
        escaped += c;
    }
    raw = escaped;
  }
  std::vector<std::pair<size_t, size_t>> words;
  splitter->split(raw, words);
  std::string word;
  for (auto [b, e] : words) {
    const std::string_view piece = raw.substr(b, e - b);
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      auto it = word_cache.find(std::string(piece));
      if (it != word_cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    if (utf8) {
      word.assign(piece);
    } else {
      word.clear();
      for (char c : piece) word += byte_unicode[static_cast<unsigned char>(c)];
    }
    const size_t start = out.size();
    const int32_t whole = id_of(word);
    // A piece that is a token as a whole: with ignore_merges (Llama 3), and Gemma 4's runs of
    // newlines ("\n\n" is a token the merges do not reach).
    const bool take_whole =
        whole >= 0 && ((pre != nullptr && pre->ignore_merges) ||
                       (utf8 && piece.find_first_not_of('\n') == std::string_view::npos));
    if (take_whole)
      out.push_back(whole);
    else
      bpe_word(word, out);
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (word_cache.size() > (1u << 16)) word_cache.clear();  // bound the memory
    word_cache.emplace(std::string(piece), std::vector<int32_t>(out.begin() + start, out.end()));
  }
}

}  // namespace qkv
