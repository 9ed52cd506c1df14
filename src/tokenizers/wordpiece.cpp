// WordPiece (BERT), as HF tokenizers' BertNormalizer + BertPreTokenizer + WordPiece:
//   clean: drop U+0000, U+FFFD and "other" characters (Cc Cf Cn Co Cs, but not \t \n \r);
//          whitespace becomes ' '
//   CJK ideographs get spaces around them
//   strip accents (NFD, then drop Mn) and lowercase, when the spec says so
//   split on whitespace; each punctuation character (Unicode P*, or ASCII punctuation) alone
//   greedy longest-match-first pieces, continuations prefixed "##"; a word with no full match,
//   or longer than max_input_chars_per_word characters, becomes [UNK].
#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace qkv {
namespace {

bool is_ascii_punct(uint32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
         (c >= 123 && c <= 126);
}

}  // namespace

void Tokenizer::Impl::encode_wordpiece(std::string_view text, std::vector<int32_t>& out) const {
  using namespace tokenizers;
  std::vector<uint32_t> cps;
  for (uint32_t c : to_codepoints(text)) {
    if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && is_other(c))) continue;
    if (is_whitespace(c)) {
      cps.push_back(' ');
    } else if (is_cjk(c)) {
      cps.push_back(' ');
      cps.push_back(c);
      cps.push_back(' ');
    } else {
      cps.push_back(c);
    }
  }
  if (spec.strip_accents) {
    std::vector<uint32_t> d = nfd(cps);
    cps.clear();
    for (uint32_t c : d) {
      if (!is_nonspacing_mark(c)) cps.push_back(c);
    }
  }
  if (spec.lowercase) {
    std::vector<uint32_t> low;
    low.reserve(cps.size());
    for (uint32_t c : cps) append_lower(low, c);
    cps = std::move(low);
  }
  // Pre-tokenise into words (as code point ranges).
  std::vector<std::vector<uint32_t>> words;
  std::vector<uint32_t> cur;
  auto flush = [&] {
    if (!cur.empty()) words.push_back(std::move(cur));
    cur.clear();
  };
  for (uint32_t c : cps) {
    if (is_whitespace(c)) {
      flush();
    } else if (is_ascii_punct(c) || (c >= 0x80 && is_punctuation(c))) {
      flush();
      words.push_back({c});
    } else {
      cur.push_back(c);
    }
  }
  flush();
  std::string piece;
  for (const auto& w : words) {
    if (static_cast<int>(w.size()) > spec.max_input_chars_per_word) {
      if (spec.unk >= 0) out.push_back(spec.unk);
      continue;
    }
    // Byte offsets of each character boundary, for substrings.
    std::string word;
    std::vector<size_t> bounds{0};
    for (uint32_t c : w) {
      append_utf8(word, c);
      bounds.push_back(word.size());
    }
    const size_t start = out.size();
    bool ok = true;
    for (size_t b = 0; b + 1 < bounds.size();) {
      int32_t found = -1;
      size_t e = bounds.size() - 1;
      for (; e > b; --e) {
        piece.assign(b == 0 ? "" : "##");
        piece.append(word, bounds[b], bounds[e] - bounds[b]);
        found = id_of(piece);
        if (found >= 0) break;
      }
      if (found < 0) {
        ok = false;
        break;
      }
      out.push_back(found);
      b = e;
    }
    if (!ok) {
      out.resize(start);
      if (spec.unk >= 0) out.push_back(spec.unk);
    }
  }
}

}  // namespace qkv
