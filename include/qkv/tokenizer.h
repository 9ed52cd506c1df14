// qkv — tokenizers: byte-level BPE (GPT-2), SentencePiece BPE with byte fallback (LLaMA,
// llama2.c) and WordPiece (BERT), built from a TokenizerSpec (qkv/tokenizer_spec.h).
//
//   qkv::Tokenizer tok(qkv::tokenizer_spec_for(qkv::open_model("model.gguf")));
//   std::vector<int32_t> ids = tok.encode("Hello world");
//   std::string text = tok.decode(ids);
//
// encode() throws qkv::InvalidArgument when the text is not valid UTF-8 (naming the byte).
// A Tokenizer is immutable after construction; encode/decode may run from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/error.h"

#include "qkv/tokenizer_spec.h"

namespace qkv {

struct EncodeOptions {
  // BOS/EOS (LLaMA) or [CLS] ... [SEP] (BERT) around the text, as the spec says; false is
  // transformers' add_special_tokens=False.
  bool add_special = true;
  // Special tokens written in the text (<|endoftext|>, <|im_start|>, <start_of_turn>, [SEP])
  // become those single tokens, as Hugging Face tokenizers and llama.cpp's parse_special do;
  // false: they are tokenized as plain text. User-defined (added) tokens are matched either way.
  bool parse_special = true;
};

class Tokenizer {
 public:
  // Validates the spec (ids in range, merges naming known tokens); throws qkv::InvalidArgument.
  explicit Tokenizer(TokenizerSpec spec);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  std::vector<int32_t> encode(std::string_view text, EncodeOptions opt = {}) const;
  // Concatenated token bytes; control tokens are left out when skip_special. decode(encode(t))
  // == t for byte-level BPE and SentencePiece, except that SentencePiece (like the original)
  // writes spaces as U+2581, so a U+2581 in the text comes back as a space; WordPiece loses case,
  // accents and spacing around punctuation.
  std::string decode(std::span<const int32_t> ids, bool skip_special = true) const;

  int32_t n_vocab() const;
  // The vocabulary string of a token ("Ġthe", "▁the", "##ing"); throws when out of range.
  const std::string& token(int32_t id) const;
  // The bytes a token stands for in text (may be a partial UTF-8 sequence).
  std::string token_bytes(int32_t id) const;
  // Id of a vocabulary string, or -1.
  int32_t find(std::string_view token) const;
  bool is_special(int32_t id) const;
  const TokenizerSpec& spec() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Trains a GPT-2-style byte-level BPE tokenizer on `text`: the 256 byte tokens (id = byte), then
// merges of the most frequent adjacent pair (ties broken by the pair's (left, right) byte strings,
// the smallest first, so the result is the same on every machine) inside the GPT-2
// pre-tokenizer's pieces, until the vocabulary has `vocab_size` entries, the last one being
// `end_of_text` (a control token used as BOS and EOS, add_bos = false; Tokenizer::encode with
// parse_special matches it in text). Occurrences of `end_of_text` in `text` are cut out before
// training. A pair whose joined string is already a token is not merged, so Tokenizer::encode
// reproduces the training segmentation. vocab_size = 257 gives a plain byte-level tokenizer; the
// vocabulary is smaller than asked when no pair occurs `min_pair_count` times any more.
// Throws InvalidArgument for vocab_size < 257, an empty end_of_text or text that is not UTF-8.
struct BpeTrainOptions {
  int32_t vocab_size = 512;
  std::string end_of_text = "<|endoftext|>";
  int64_t min_pair_count = 2;  // stop early (smaller vocabulary) when no pair occurs this often
};
TokenizerSpec train_byte_bpe(std::string_view text, const BpeTrainOptions& options = {});

// Decodes ids one at a time for streaming output: push() returns only complete UTF-8 characters
// and holds back a partial one until its remaining bytes arrive; invalid bytes become U+FFFD.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true)
      : tok_(&tok), skip_special_(skip_special) {}
  std::string push(int32_t id);
  std::string flush();  // what is held back, with U+FFFD for an incomplete tail

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace qkv
