// Pre-tokenizers of the BPE families: how the text is cut into pieces before the merges run, by
// the name GGUF's tokenizer.ggml.pre gives them (llama.cpp's names). Each family is a list of
// regular expressions taken from the model's Hugging Face tokenizer.json (a Sequence of Split
// pre-tokenizers with the "Isolated" behaviour, or ByteLevel's own regex): each one in turn cuts
// every piece into its matches and the text between them, which stays a piece too. Merges never
// cross a piece boundary.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qkv::tokenizers {

struct PreTokenizerInfo {
  std::vector<std::string> patterns;  // PCRE2 syntax, UTF-8, Unicode properties
  // A piece that is a vocabulary token as a whole becomes that token without merging (HF's BPE
  // ignore_merges; Llama 3): some such tokens are not reachable through the merges.
  bool ignore_merges = false;
};

// The pre-tokenizer named `name`, or nullptr when qkv does not know it.
const PreTokenizerInfo* find_pre_tokenizer(std::string_view name);
// The known names, comma-separated, for error messages.
std::string known_pre_tokenizers();

// A list of compiled patterns (PCRE2 with Unicode properties, JIT when available).
class RegexSplitter {
 public:
  explicit RegexSplitter(const std::vector<std::string>& patterns);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;
  // Appends the [begin, end) byte ranges of the pieces of `text` (valid UTF-8), in order; together
  // they cover the text. Each pattern sees one piece at a time, so anchors and look-arounds stop
  // at the piece's ends, as in HF's Split.
  void split(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  std::vector<void*> codes_;  // pcre2_code_8*
};

}  // namespace qkv::tokenizers
