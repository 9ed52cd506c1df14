// qkv — the plain data a tokenizer is built from (no behaviour, no dependencies).
//
// The formats layer fills a TokenizerSpec from a GGUF (tokenizer.ggml.*), an HF tokenizer.json
// (or vocab.json + merges.txt, vocab.txt) or a llama2.c tokenizer.bin; the tokenizers layer
// builds a qkv::Tokenizer from it (qkv/tokenizer.h). Neither layer includes the other.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qkv {

// Token kinds, with GGUF's tokenizer.ggml.token_type codes.
enum class TokenKind : int32_t {
  normal = 1,
  unknown = 2,
  control = 3,       // BOS/EOS/CLS/SEP/PAD/MASK: never produced from plain text
  user_defined = 4,  // added tokens: matched verbatim in the text before the model runs
  unused = 5,
  byte = 6,  // <0xAB> byte-fallback pieces of SentencePiece vocabularies
};

struct TokenizerSpec {
  enum class Model : uint8_t {
    byte_bpe,   // GPT-2 family: byte-level BPE with ranked merges
    spm_bpe,    // SentencePiece BPE with scores and byte fallback (LLaMA, llama2.c)
    wordpiece,  // BERT: greedy longest match, "##" continuation pieces
    // BPE with ranked merges over UTF-8 characters (Gemma 4, GGUF model "gemma4"): spaces
    // written as U+2581, no byte-to-unicode mapping, <0xAB> byte pieces for what no token covers
    utf8_bpe,
  };
  Model model = Model::byte_bpe;
  // Vocabulary in id order. byte_bpe: GPT-2 "byte-to-unicode" strings (Ġ for space);
  // spm_bpe and utf8_bpe: "▁" for space, "<0xAB>" byte pieces; wordpiece: "##" prefix on
  // continuations.
  std::vector<std::string> tokens;
  std::vector<float> scores;     // spm_bpe: merge priority (higher first); may be empty
  std::vector<TokenKind> kinds;  // may be empty (all normal)
  std::vector<std::pair<std::string, std::string>> merges;  // byte_bpe, utf8_bpe: rank order
  // How byte_bpe and utf8_bpe cut the text before merging, by llama.cpp's tokenizer.ggml.pre
  // names ("gpt-2", "llama-bpe", "qwen2", ...; "gpt2" is read as "gpt-2"); see
  // src/tokenizers/pre_tokenizer.cpp for the list.
  std::string pre_tokenizer = "gpt2";

  int32_t bos = -1, eos = -1, unk = -1, pad = -1, cls = -1, sep = -1, mask = -1;
  bool add_bos = false;  // encode(add_special) puts BOS first (LLaMA)
  bool add_eos = false;
  bool add_cls_sep = false;      // [CLS] text [SEP] (BERT)
  bool add_space_prefix = true;  // spm_bpe: a "▁" before the text (SentencePiece's dummy prefix)
  bool lowercase = true;         // wordpiece (BERT uncased)
  bool strip_accents = true;     // wordpiece
  int max_input_chars_per_word = 100;  // wordpiece: longer words become [UNK]
  // Special tokens that, found in the text, also take the ASCII whitespace after them (rstrip)
  // or before them (lstrip) with them, as Hugging Face's added tokens with rstrip / lstrip do
  // (Phi-3's <|end|> eats the "\n" the chat template writes after it); ids.
  std::vector<int32_t> rstrip_ids;
  std::vector<int32_t> lstrip_ids;
};

}  // namespace qkv
