#include "tokenizers/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"

namespace qkv::tokenizers {
namespace {

// The patterns, as the models' tokenizer.json files state them. Where a file writes a
// case-insensitive group (?i:'s|'t|...), it is spelt out ('[sS]|'[tT]|...) as llama.cpp does:
// with Unicode case folding (?i) would also take "'ſ" (U+017F) and "'K" (U+212A).

// GPT-2's ByteLevel regex (OpenAI's encoder.py).
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kContractions =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))";
// Llama 3 (tiktoken cl100k): numbers in groups of up to three digits.
const std::string kLlama3 = std::string(kContractions) +
                            R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*)"
                            R"(|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as Llama 3 but single digits.
const std::string kQwen2 = std::string(kContractions) +
                           R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*)"
                           R"(|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen3.5: combining marks (\p{M}) stay with their letters.
const std::string kQwen35 =
    std::string(kContractions) +
    R"(|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*)"
    R"(|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek: its own letter class (the cased letters, Lu Ll Lt), ASCII and full-width punctuation,
// CJK and Hangul runs.
constexpr const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})"
    R"(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A})"
    R"(\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556})"
    R"(\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF})"
    R"(\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D})"
    R"(\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D})"
    R"(\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3})"
    R"(\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D})"
    R"(\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184})"
    R"(\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D})"
    R"(\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF})"
    R"(\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F})"
    R"(\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepseekPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";

struct Named {
  std::vector<std::string_view> names;
  PreTokenizerInfo info;
};

const std::vector<Named>& table() {
  static const std::vector<Named> t = {
      // "gpt2" is the name qkv's BPE trainer wrote before llama.cpp's "gpt-2".
      {{"gpt-2", "gpt2", "mpt", "phi-2", "olmo", "jais", "gigachat", "roberta-bpe"},
       {{kGpt2}, false}},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral"}, {{kLlama3}, true}},
      {{"dbrx", "smaug-bpe"}, {{kLlama3}, false}},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {{kQwen2}, false}},
      {{"qwen35"}, {{kQwen35}, false}},
      {{"deepseek-llm"},
       {{R"([\r\n])", kDeepseekLetters, kDeepseekPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"},
        false}},
      {{"deepseek-coder"},
       {{R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}, false}},
      // HF's Punctuation pre-tokenizer (Unicode P* and ASCII symbols), ByteLevel, then numbers
      // cut in threes from the left.
      {{"falcon"}, {{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, R"([0-9][0-9][0-9])"}, false}},
      // Digits(individual_digits) before ByteLevel.
      {{"starcoder", "refact", "command-r", "smollm", "codeshell"}, {{R"(\p{N})", kGpt2}, false}},
      // llama.cpp's set for a BPE file that names no family.
      {{"default"}, {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", R"([0-9][0-9][0-9])"}, false}},
      // Gemma 4 (SentencePiece-style BPE over UTF-8, spaces already written as U+2581): only runs
      // of newlines are cut apart.
      {{"gemma4"}, {{R"([^\n]+|[\n]+)"}, false}},
  };
  return t;
}

}  // namespace

const PreTokenizerInfo* find_pre_tokenizer(std::string_view name) {
  for (const Named& n : table()) {
    for (std::string_view s : n.names) {
      if (s == name) return &n.info;
    }
  }
  return nullptr;
}

std::string known_pre_tokenizers() {
  std::string out;
  for (const Named& n : table()) {
    for (std::string_view s : n.names) {
      if (!out.empty()) out += ", ";
      out += s;
    }
  }
  return out;
}

RegexSplitter::RegexSplitter(const std::vector<std::string>& patterns) {
  for (const std::string& p : patterns) {
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &off, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      for (void* c : codes_) pcre2_code_free(static_cast<pcre2_code*>(c));
      core::throw_error("pre-tokenizer regex \"", p, "\" at offset ", off, ": ",
                        reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if no JIT
    codes_.push_back(code);
  }
}

RegexSplitter::~RegexSplitter() {
  for (void* c : codes_) pcre2_code_free(static_cast<pcre2_code*>(c));
}

void RegexSplitter::split(std::string_view text,
                          std::vector<std::pair<size_t, size_t>>& out) const {
  const size_t first = out.size();
  if (!text.empty()) out.emplace_back(0, text.size());
  std::vector<std::pair<size_t, size_t>> next;
  for (void* c : codes_) {
    auto* code = static_cast<pcre2_code*>(c);
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    next.clear();
    for (size_t i = first; i < out.size(); ++i) {
      const auto [b, e] = out[i];
      // The piece alone is the subject: anchors and look-arounds end at its ends.
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + b);
      const size_t n = e - b;
      size_t gap = 0;  // start of the text not matched yet
      size_t pos = 0;  // where the next search starts
      while (pos < n) {
        // The text was checked to be UTF-8 by encode(): skip PCRE2's check on every call.
        const int rc = pcre2_match(code, subject, n, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0) break;  // no further match
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) {  // an empty match cuts nothing: search again one character on
          pos = ov[0] + 1;
          while (pos < n && (static_cast<unsigned char>(text[b + pos]) & 0xc0) == 0x80) ++pos;
          continue;
        }
        if (ov[0] > gap) next.emplace_back(b + gap, b + ov[0]);
        next.emplace_back(b + ov[0], b + ov[1]);
        gap = pos = ov[1];
      }
      if (gap < n) next.emplace_back(b + gap, e);
    }
    pcre2_match_data_free(md);
    out.resize(first);
    out.insert(out.end(), next.begin(), next.end());
  }
}

}  // namespace qkv::tokenizers
