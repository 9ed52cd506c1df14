// qkv::Tokenizer: validation of the spec, special-token splitting, BOS/EOS/CLS/SEP, decoding.
#include <algorithm>
#include <tuple>

#include "core/error.h"
#include "core/utf8.h"
#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace qkv {
namespace {

using Model = TokenizerSpec::Model;

void check_special_id(int32_t id, const char* name, size_t n) {
  if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n)) {
    core::throw_invalid("tokenizer spec: ", name, " id: expected -1 or 0..", n - 1, ", found ", id);
  }
}

// The byte a token written <0xAB> (two hex digits, either case) stands for.
bool byte_token_value(const std::string& t, uint8_t* byte) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return false;
  const int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return false;
  *byte = static_cast<uint8_t>(hi * 16 + lo);
  return true;
}

// The whitespace a stripping special token takes: C's isspace in the "C" locale, as llama.cpp.
bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

Tokenizer::Tokenizer(TokenizerSpec spec) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.spec = std::move(spec);
  const TokenizerSpec& s = m.spec;
  const size_t n = s.tokens.size();
  if (n == 0 || n > (1u << 24)) {
    core::throw_invalid("tokenizer spec: vocabulary size: expected 1..2^24, found ", n);
  }
  if (!s.scores.empty() && s.scores.size() != n) {
    core::throw_invalid("tokenizer spec: scores: expected ", n, " entries, found ",
                        s.scores.size());
  }
  if (!s.kinds.empty() && s.kinds.size() != n) {
    core::throw_invalid("tokenizer spec: token kinds: expected ", n, " entries, found ",
                        s.kinds.size());
  }
  check_special_id(s.bos, "bos", n);
  check_special_id(s.eos, "eos", n);
  check_special_id(s.unk, "unk", n);
  check_special_id(s.pad, "pad", n);
  check_special_id(s.cls, "cls", n);
  check_special_id(s.sep, "sep", n);
  check_special_id(s.mask, "mask", n);
  m.ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    m.ids.emplace(s.tokens[i], static_cast<int32_t>(i));  // first id wins for duplicates
    const TokenKind k = m.kind(static_cast<int32_t>(i));
    const bool special =
        k == TokenKind::control || k == TokenKind::user_defined || k == TokenKind::unknown;
    if (special && !s.tokens[i].empty()) {
      m.specials.push_back(static_cast<int32_t>(i));
    }
  }
  for (const auto& [ids, flag, what] : {std::tuple{&s.lstrip_ids, Impl::kStripLeft, "lstrip"},
                                        std::tuple{&s.rstrip_ids, Impl::kStripRight, "rstrip"}}) {
    for (int32_t id : *ids) {
      if (id < 0 || static_cast<size_t>(id) >= n) {
        core::throw_invalid("tokenizer spec: ", what, " ids: expected ids in 0..", n - 1,
                            ", found ", id);
      }
      m.strip.resize(n, 0);
      m.strip[static_cast<size_t>(id)] |= flag;
    }
  }
  std::stable_sort(m.specials.begin(), m.specials.end(),
                   [&](int32_t a, int32_t b) { return s.tokens[a].size() > s.tokens[b].size(); });
  switch (s.model) {
    case Model::byte_bpe:
    case Model::utf8_bpe:
      m.init_bpe();
      break;
    case Model::spm_bpe:
      m.init_spm();
      break;
    case Model::wordpiece:
      if (s.unk < 0) {
        core::throw_invalid("tokenizer spec: WordPiece needs an [UNK] token, found unk = -1");
      }
      break;
  }
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, EncodeOptions opt) const {
  const Impl& m = *impl_;
  const TokenizerSpec& s = m.spec;
  tokenizers::require_utf8(text, "tokenizer input");
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (opt.add_special) {
    if (s.model == Model::wordpiece ? s.add_cls_sep : false) out.push_back(s.cls);
    if (s.model != Model::wordpiece && s.add_bos && s.bos >= 0) out.push_back(s.bos);
  }
  // Split out special tokens: user-defined ones always, control and unknown ones (<unk>) with
  // parse_special, as llama.cpp does.
  bool prev_special = true;  // SentencePiece adds its dummy prefix after a special token too
  auto encode_plain = [&](std::string_view frag) {
    if (frag.empty()) return;
    switch (s.model) {
      case Model::byte_bpe:
      case Model::utf8_bpe:
        m.encode_bpe(frag, out);
        break;
      case Model::spm_bpe:
        m.encode_spm(frag, s.add_space_prefix && prev_special, out);
        break;
      case Model::wordpiece:
        m.encode_wordpiece(frag, out);
        break;
    }
    prev_special = false;
  };
  // next_at[k]: where special token k next occurs at or after the position it was searched
  // from (npos: nowhere). It stays right while it is not behind `pos`, so each token is searched
  // for again only when a match passes it: a text full of special tokens costs a pass per token,
  // not a pass per token per match.
  constexpr size_t kUnsearched = std::string_view::npos - 1;
  std::vector<size_t> next_at(m.specials.size(), kUnsearched);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string_view::npos;
    int32_t best_id = -1;
    for (size_t k = 0; k < m.specials.size(); ++k) {
      const int32_t id = m.specials[k];
      if (!opt.parse_special && m.kind(id) != TokenKind::user_defined) continue;
      if (next_at[k] == kUnsearched || next_at[k] < pos) next_at[k] = text.find(s.tokens[id], pos);
      const size_t at = next_at[k];
      if (at < best) best = at, best_id = id;  // longest first, so ties keep the longest
    }
    if (best_id < 0) {
      encode_plain(text.substr(pos));
      break;
    }
    const uint8_t strip = m.strip.empty() ? 0 : m.strip[static_cast<size_t>(best_id)];
    std::string_view left = text.substr(pos, best - pos);
    if (strip & Impl::kStripLeft) {
      while (!left.empty() && is_ascii_space(left.back())) left.remove_suffix(1);
    }
    encode_plain(left);
    out.push_back(best_id);
    prev_special = true;
    pos = best + s.tokens[best_id].size();
    if (strip & Impl::kStripRight) {
      while (pos < text.size() && is_ascii_space(text[pos])) ++pos;
    }
  }
  if (opt.add_special) {
    if (s.model != Model::wordpiece && s.add_eos && s.eos >= 0) out.push_back(s.eos);
    if (s.model == Model::wordpiece && s.add_cls_sep) out.push_back(s.sep);
  }
  return out;
}

int32_t Tokenizer::n_vocab() const {
  return static_cast<int32_t>(impl_->spec.tokens.size());
}

const std::string& Tokenizer::token(int32_t id) const {
  if (id < 0 || id >= n_vocab()) {
    core::throw_invalid("token id: expected 0..", n_vocab() - 1, ", found ", id);
  }
  return impl_->spec.tokens[id];
}

int32_t Tokenizer::find(std::string_view t) const {
  return impl_->id_of(t);
}

bool Tokenizer::is_special(int32_t id) const {
  const TokenKind k = impl_->kind(id);
  return k == TokenKind::control || k == TokenKind::unknown || k == TokenKind::unused;
}

const TokenizerSpec& Tokenizer::spec() const {
  return impl_->spec;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& m = *impl_;
  const std::string& t = token(id);
  const TokenKind k = m.kind(id);
  switch (m.spec.model) {
    case Model::byte_bpe: {
      if (k == TokenKind::control || k == TokenKind::user_defined) return t;
      std::string out;
      for (uint32_t cp : tokenizers::to_codepoints(t)) {
        auto it = m.unicode_byte.find(cp);
        if (it != m.unicode_byte.end())
          out += static_cast<char>(it->second);
        else
          tokenizers::append_utf8(out, cp);
      }
      return out;
    }
    case Model::spm_bpe:
    case Model::utf8_bpe: {
      // A byte token's text is <0xAB>; one typed as a byte but written otherwise (a malformed
      // vocabulary) is decoded as its text.
      if (uint8_t byte = 0; k == TokenKind::byte && byte_token_value(t, &byte)) {
        return std::string(1, static_cast<char>(byte));
      }
      if (k == TokenKind::control || k == TokenKind::user_defined) return t;
      std::string out;
      static const std::string kSpace = "\xe2\x96\x81";
      for (size_t i = 0; i < t.size();) {
        if (t.compare(i, 3, kSpace) == 0) {
          out += ' ';
          i += 3;
        } else {
          out += t[i++];
        }
      }
      return out;
    }
    case Model::wordpiece:
      if (k == TokenKind::control) return " " + t;
      return t.rfind("##", 0) == 0 ? t.substr(2) : " " + t;
  }
  return t;
}

namespace {

// HF's clean_up_tokenization for the WordPiece decoder: Python's str.replace for each pair in
// turn (left to right, matches do not overlap, a replacement is not searched again). Each pass
// copies into a new string, so a text with n matches costs O(length) per pair, not
// O(n * length) as replacing in place did.
std::string clean_up_tokenization(const std::string& text) {
  static const std::pair<std::string_view, std::string_view> fixes[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string cur = text;
  std::string next;
  for (const auto& [from, to] : fixes) {
    size_t p = cur.find(from);
    if (p == std::string::npos) continue;
    next.clear();
    next.reserve(cur.size());
    size_t done = 0;
    for (; p != std::string::npos; p = cur.find(from, done)) {
      next.append(cur, done, p - done);
      next += to;
      done = p + from.size();
    }
    next.append(cur, done, std::string::npos);
    cur.swap(next);
  }
  return cur;
}

}  // namespace

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const TokenizerSpec& s = impl_->spec;
  std::string out;
  for (int32_t id : ids) {
    token(id);  // throws for an id out of range
    if (skip_special && impl_->kind(id) == TokenKind::control) continue;
    out += token_bytes(id);
  }
  if (s.model == Model::spm_bpe && s.add_space_prefix && !out.empty() && out[0] == ' ') {
    out.erase(0, 1);  // the dummy prefix
  }
  if (s.model == Model::wordpiece) {
    if (!out.empty() && out[0] == ' ') out.erase(0, 1);
    out = clean_up_tokenization(out);
  }
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  const TokenizerSpec& s = tok_->spec();
  tok_->token(id);  // range check
  // Control tokens are left out, as in Tokenizer::decode.
  if (skip_special_ && !s.kinds.empty() && s.kinds[id] == TokenKind::control) return {};
  std::string piece = tok_->token_bytes(id);
  const bool strip = s.model == TokenizerSpec::Model::wordpiece ||
                     (s.model == TokenizerSpec::Model::spm_bpe && s.add_space_prefix);
  if (first_ && !piece.empty()) {
    if (strip && piece[0] == ' ') piece.erase(0, 1);
    first_ = false;
  }
  pending_ += piece;
  // Emit every complete character and one U+FFFD per maximal ill-formed subpart (as a whole
  // text decodes with Python's errors="replace"); hold back a valid but unfinished last one.
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const core::Utf8Step st = core::utf8_step(std::string_view(pending_).substr(i));
    if (st.truncated) break;  // wait for the next token
    if (st.valid) {
      out.append(pending_, i, st.length);
    } else {
      out += "\xef\xbf\xbd";
    }
    i += st.length;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  if (!pending_.empty()) out = "\xef\xbf\xbd";
  pending_.clear();
  return out;
}

}  // namespace qkv
