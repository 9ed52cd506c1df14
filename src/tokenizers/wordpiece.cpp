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
  // Pre-tokenise into words: [begin, end) ranges of cps (no per-word allocation).
  std::vector<std::pair<size_t, size_t>> words;
  size_t open = std::string::npos;
  auto close = [&](size_t i) {
    if (open != std::string::npos) words.emplace_back(open, i);
    open = std::string::npos;
  };
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t c = cps[i];
    if (is_whitespace(c)) {
      close(i);
    } else if (is_ascii_punct(c) || (c >= 0x80 && is_punctuation(c))) {
      close(i);
      words.emplace_back(i, i + 1);
    } else if (open == std::string::npos) {
      open = i;
    }
  }
  close(cps.size());
  std::string word, piece;
  std::vector<size_t> bounds;  // byte offset of each character boundary in `word`
  for (const auto& [wb, we] : words) {
    if (static_cast<int64_t>(we - wb) > spec.max_input_chars_per_word) {
      if (spec.unk >= 0) out.push_back(spec.unk);
      continue;
    }
    word.clear();
    bounds.assign(1, 0);
    for (size_t i = wb; i < we; ++i) {
      append_utf8(word, cps[i]);
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
