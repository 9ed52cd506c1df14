// SentencePiece-style BPE (LLaMA, llama2.c): start from single UTF-8 characters, repeatedly merge
// the adjacent pair whose concatenation is the vocabulary piece with the highest score (ties: the
// leftmost), then emit each piece; characters that are not pieces fall back to <0xAB> byte tokens.
// The same algorithm as llama.cpp's llm_tokenizer_spm (a heap of candidate bigrams, O(n log n));
// llama2.c's run.c does the same merges with an O(n^2) rescan.
#include <queue>

#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace qkv {
namespace {

struct Symbol {
  int prev;
  int next;
  size_t begin;  // byte range in the text
  size_t n;      // 0 once merged into its left neighbour
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;
  bool operator<(const Bigram& o) const {  // max-heap: higher score, then smaller left first
    return score < o.score || (score == o.score && left > o.left);
  }
};

}  // namespace

void Tokenizer::Impl::init_byte_ids() {
  byte_ids.fill(-1);
  static const char hex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string piece = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    byte_ids[b] = id_of(piece);
  }
}

void Tokenizer::Impl::init_spm() {
  init_byte_ids();
  // Chunking at word starts is exact only if no piece has a "▁" right after another character.
  static const std::string kSpace = "\xe2\x96\x81";
  spm_chunks = true;
  for (size_t i = 0; i < spec.tokens.size() && spm_chunks; ++i) {
    if (kind(static_cast<int32_t>(i)) != TokenKind::normal) continue;
    const std::string& t = spec.tokens[i];
    for (size_t q = t.find(kSpace, 1); q != std::string::npos; q = t.find(kSpace, q + 1)) {
      if (q < 3 || t.compare(q - 3, 3, kSpace) != 0) {
        spm_chunks = false;
        break;
      }
    }
  }
}

void Tokenizer::Impl::encode_spm(std::string_view raw, bool prefix_space,
                                 std::vector<int32_t>& out) const {
  // SentencePiece's whitespace escaping: ' ' -> U+2581, and the dummy prefix.
  static const std::string kSpace = "\xe2\x96\x81";
  std::string text;
  text.reserve(raw.size() + 8);
  if (prefix_space) text += kSpace;
  for (char c : raw) {
    if (c == ' ')
      text += kSpace;
    else
      text += c;
  }
  if (!spm_chunks) {
    spm_merge(text, out);
    return;
  }
  // Cut before every "▁" that follows another character: no vocabulary piece spans such a cut
  // (checked in init_spm), so the pieces come out the same, and repeated words hit the cache.
  size_t begin = 0;
  for (size_t p = 1; p <= text.size(); ++p) {
    const bool cut = p == text.size() || (text.compare(p, 3, kSpace) == 0 &&
                                          (p < 3 || text.compare(p - 3, 3, kSpace) != 0));
    if (!cut) continue;
    const std::string_view chunk(text.data() + begin, p - begin);
    begin = p;
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      auto it = word_cache.find(std::string(chunk));
      if (it != word_cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    const size_t start = out.size();
    spm_merge(chunk, out);
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (word_cache.size() > (1u << 16)) word_cache.clear();  // bound the memory
    word_cache.emplace(std::string(chunk), std::vector<int32_t>(out.begin() + start, out.end()));
  }
  if (begin < text.size()) spm_merge(std::string_view(text).substr(begin), out);
}

void Tokenizer::Impl::spm_merge(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<Symbol> sym;
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min<size_t>(tokenizers::utf8_len(static_cast<unsigned char>(text[off])),
                                      text.size() - off);
    const int i = static_cast<int>(sym.size());
    sym.push_back({i - 1, -1, off, n});
    if (i > 0) sym[i - 1].next = i;
    off += n;
  }
  // As in SentencePiece, text never turns into control (<s>), unknown or byte (<0x41>) pieces.
  auto piece_id = [&](std::string_view piece) {
    const int32_t id = id_of(piece);
    if (id < 0) return id;
    const TokenKind k = kind(id);
    return k == TokenKind::control || k == TokenKind::unknown || k == TokenKind::byte ? -1 : id;
  };
  std::priority_queue<Bigram> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view piece(text.data() + sym[left].begin, sym[left].n + sym[right].n);
    const int32_t id = piece_id(piece);
    if (id < 0) return;
    const float score = spec.scores.empty() ? 0.0f : spec.scores[id];
    queue.push({left, right, score, piece.size()});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale: one side was merged
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
    const std::string_view piece(text.data() + sym[i].begin, sym[i].n);
    const int32_t id = piece_id(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      const int32_t bid = byte_ids[static_cast<unsigned char>(c)];
      if (bid >= 0)
        out.push_back(bid);
      else if (spec.unk >= 0)
        out.push_back(spec.unk);
    }
  }
}

}  // namespace qkv
