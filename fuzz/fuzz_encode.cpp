// libFuzzer target: arbitrary text through the tokenizer models and several BPE pre-tokenizers
// (small fixed vocabularies).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "qkv/tokenizer.h"

namespace {

// The SentencePiece-style tail both byte-fallback vocabularies share: the 256 <0xAB> byte tokens,
// then U+2581, "a", "b", U+2581 "a", "ab" and one piece of the caller's.
void add_bytes_and_pieces(qkv::TokenizerSpec& s, const char* last) {
  static const char hex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    s.tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    s.kinds.push_back(qkv::TokenKind::byte);
  }
  for (const char* t : {"\xe2\x96\x81", "a", "b",
                        "\xe2\x96\x81"
                        "a",
                        "ab", last}) {
    s.tokens.push_back(t);
    s.kinds.push_back(qkv::TokenKind::normal);
  }
}

qkv::TokenizerSpec spm() {
  qkv::TokenizerSpec s;
  s.model = qkv::TokenizerSpec::Model::spm_bpe;
  s.tokens = {"<unk>", "<s>", "</s>"};
  s.kinds = {qkv::TokenKind::unknown, qkv::TokenKind::control, qkv::TokenKind::control};
  add_bytes_and_pieces(s, "<s");
  s.scores.assign(s.tokens.size(), 0.0f);
  s.unk = 0, s.bos = 1, s.eos = 2, s.add_bos = true;
  return s;
}

qkv::TokenizerSpec bpe() {
  qkv::TokenizerSpec s;
  s.model = qkv::TokenizerSpec::Model::byte_bpe;
  // The 256 single-byte tokens of GPT-2's byte-to-unicode map, plus one merge.
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(n++);
    std::string t;
    if (cp < 0x80) {
      t += static_cast<char>(cp);
    } else {
      t += static_cast<char>(0xc0 | (cp >> 6));
      t += static_cast<char>(0x80 | (cp & 0x3f));
    }
    s.tokens.push_back(t);
  }
  s.tokens.push_back("ab");
  s.merges.emplace_back("a", "b");
  s.tokens.push_back("<|endoftext|>");
  s.kinds.assign(s.tokens.size(), qkv::TokenKind::normal);
  s.kinds.back() = qkv::TokenKind::control;
  return s;
}

// The same vocabulary with another family's pre-tokenizer (several regexes in sequence).
qkv::TokenizerSpec bpe_pre(const char* pre) {
  qkv::TokenizerSpec s = bpe();
  s.pre_tokenizer = pre;
  return s;
}

// Gemma 4's form: merges over UTF-8 characters, U+2581 for spaces, <0xAB> byte fallback.
qkv::TokenizerSpec utf8_bpe() {
  qkv::TokenizerSpec s;
  s.model = qkv::TokenizerSpec::Model::utf8_bpe;
  s.tokens = {"<pad>", "<eos>", "<bos>"};
  s.kinds = {qkv::TokenKind::control, qkv::TokenKind::control, qkv::TokenKind::control};
  add_bytes_and_pieces(s, "\n\n");
  s.merges = {{"\xe2\x96\x81", "a"}, {"a", "b"}};
  s.bos = 2, s.eos = 1, s.add_bos = true, s.add_space_prefix = false;
  return s;
}

qkv::TokenizerSpec wordpiece() {
  qkv::TokenizerSpec s;
  s.model = qkv::TokenizerSpec::Model::wordpiece;
  s.tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "##a", "b", "##b", "\xc3\xa9", ","};
  s.kinds.assign(s.tokens.size(), qkv::TokenKind::normal);
  for (int i = 0; i < 4; ++i) s.kinds[i] = qkv::TokenKind::control;
  s.pad = 0, s.unk = 1, s.cls = 2, s.sep = 3, s.add_cls_sep = true;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const qkv::Tokenizer toks[] = {qkv::Tokenizer(spm()),
                                        qkv::Tokenizer(bpe()),
                                        qkv::Tokenizer(wordpiece()),
                                        qkv::Tokenizer(bpe_pre("llama-bpe")),
                                        qkv::Tokenizer(bpe_pre("deepseek-llm")),
                                        qkv::Tokenizer(bpe_pre("falcon")),
                                        qkv::Tokenizer(utf8_bpe())};
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const qkv::Tokenizer& tok : toks) {
    try {
      const auto ids = tok.encode(text, {.parse_special = size % 2 == 1});
      const std::string back = tok.decode(ids);
      qkv::StreamDecoder dec(tok);
      for (int32_t id : ids) (void)dec.push(id);
      (void)dec.flush();
      // SentencePiece with byte fallback and byte-level BPE lose nothing: the text comes back.
      // (With parse_special, control tokens such as </s> in the text are dropped by decode.)
      // SentencePiece writes spaces as U+2581, so a U+2581 in the text comes back as a space.
      std::string want(text);
      if (&tok == &toks[0] || &tok == &toks[6]) {
        for (size_t p = want.find("\xe2\x96\x81"); p != std::string::npos;
             p = want.find("\xe2\x96\x81", p + 1)) {
          want.replace(p, 3, " ");
        }
      }
      if (&tok != &toks[2] && size % 2 == 0 && back != want) {
        std::fprintf(stderr, "round trip failed (model %d): %zu bytes in, %zu bytes back\n",
                     static_cast<int>(tok.spec().model), text.size(), back.size());
        __builtin_trap();
      }
    } catch (const qkv::InvalidArgument&) {
      // not UTF-8: expected refusal
    }
  }
  return 0;
}
