// Byte-level BPE (GPT-2): the GPT-2 pre-tokenizer regex splits the text into words, each word's
// bytes are mapped to printable characters (bytes_to_unicode), and ranked merges are applied,
// lowest rank first, until none applies.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <climits>

#include "core/error.h"
#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace qkv::tokenizers {

// The pattern of OpenAI's encoder.py and HF's ByteLevel pre-tokenizer. With PCRE2_UCP, \s, \p{L}
// and \p{N} follow Unicode properties as in the originals (Python `regex`, Rust onig).
static constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Gpt2Regex::Gpt2Regex() {
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    core::throw_error("GPT-2 pre-tokenizer regex: ", reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if no JIT
  code_ = code;
}

Gpt2Regex::~Gpt2Regex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void Gpt2Regex::split_offsets(std::string_view text,
                              std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  size_t pos = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (pos < text.size()) {
    // The text was checked to be UTF-8 by encode(): skip PCRE2's own check on every call.
    const int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // cannot happen: every character matches one alternative
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] <= pos) break;
    if (ov[0] > pos) out.emplace_back(pos, ov[0]);  // defensive: keep every byte
    out.emplace_back(ov[0], ov[1]);
    pos = ov[1];
  }
  if (pos < text.size()) out.emplace_back(pos, text.size());
  pcre2_match_data_free(md);
}

}  // namespace qkv::tokenizers

namespace qkv {

void Tokenizer::Impl::init_byte_bpe() {
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
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    merge_rank.emplace(a + " " + b, static_cast<int32_t>(r));
  }
  regex = std::make_unique<tokenizers::Gpt2Regex>();
}

void Tokenizer::Impl::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  // symbols: the word's bytes as GPT-2 characters, merged in place.
  std::vector<std::string> sym;
  sym.reserve(word.size());
  for (char c : word) sym.push_back(byte_unicode[static_cast<unsigned char>(c)]);
  std::string key;
  while (sym.size() > 1) {
    int32_t best = INT32_MAX;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      key.assign(sym[i]).append(" ").append(sym[i + 1]);
      auto it = merge_rank.find(key);
      if (it != merge_rank.end() && it->second < best) best = it->second, best_i = i;
    }
    if (best == INT32_MAX) break;
    // Merge every occurrence of the best pair, left to right (as the reference bpe() does).
    const std::string left = sym[best_i], right = sym[best_i + 1];
    std::vector<std::string> next;
    next.reserve(sym.size());
    for (size_t i = 0; i < sym.size();) {
      if (i + 1 < sym.size() && sym[i] == left && sym[i + 1] == right) {
        next.push_back(left + right);
        i += 2;
      } else {
        next.push_back(std::move(sym[i]));
        i += 1;
      }
    }
    sym = std::move(next);
  }
  for (const std::string& s : sym) {
    const int32_t id = id_of(s);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Not in the vocabulary (only with incomplete vocabularies): fall back to its characters.
    for (size_t i = 0; i < s.size();) {
      const int n = tokenizers::utf8_len(static_cast<unsigned char>(s[i]));
      const int32_t cid = id_of(s.substr(i, n));
      if (cid >= 0)
        out.push_back(cid);
      else if (spec.unk >= 0)
        out.push_back(spec.unk);
      i += n;
    }
  }
}

void Tokenizer::Impl::encode_byte_bpe(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<std::pair<size_t, size_t>> words;
  regex->split_offsets(text, words);
  for (auto [b, e] : words) {
    const std::string_view word = text.substr(b, e - b);
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      auto it = word_cache.find(std::string(word));
      if (it != word_cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    const size_t start = out.size();
    bpe_word(word, out);
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (word_cache.size() > (1u << 16)) word_cache.clear();  // bound the memory
    word_cache.emplace(std::string(word), std::vector<int32_t>(out.begin() + start, out.end()));
  }
}

}  // namespace qkv
