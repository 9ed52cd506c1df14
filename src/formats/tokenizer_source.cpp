// TokenizerSpec from GGUF metadata, HF tokenizer.json / vocab files and llama2.c tokenizer.bin.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "core/file_io.h"
#include "formats/formats_internal.h"
#include "formats/gguf_internal.h"
#include "formats/mapped_file.h"

namespace qkv {
namespace {

using nlohmann::json;
using Model = TokenizerSpec::Model;

int32_t find_token(const std::vector<std::string>& tokens, std::string_view s) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == s) return static_cast<int32_t>(i);
  }
  return -1;
}

std::pair<std::string, std::string> split_merge(const std::string& m, const std::string& file,
                                                size_t i) {
  const size_t sp = m.find(' ', 1);
  if (sp == std::string::npos || sp + 1 >= m.size()) {
    core::throw_error(file, ": merges[", i, "]: expected \"left right\", found \"",
                      formats::printable(m), "\"");
  }
  return {m.substr(0, sp), m.substr(sp + 1)};
}

void check_id(int32_t& field, const MetaValue* v, const std::string& key, size_t n,
              const std::string& file) {
  if (v == nullptr) return;
  const int64_t id = v->as_int(file + ": " + key);
  if (id < 0 || static_cast<size_t>(id) >= n) {
    core::throw_error(file, ": ", key, ": expected a token id below ", n, ", found ", id);
  }
  field = static_cast<int32_t>(id);
}

void check_spec(TokenizerSpec& s, const std::string& file) {
  if (s.tokens.empty()) core::throw_error(file, ": vocabulary: expected tokens, found none");
  if (!s.scores.empty() && s.scores.size() != s.tokens.size()) {
    core::throw_error(file, ": scores: expected ", s.tokens.size(), " entries, found ",
                      s.scores.size());
  }
  if (!s.kinds.empty() && s.kinds.size() != s.tokens.size()) {
    core::throw_error(file, ": token types: expected ", s.tokens.size(), " entries, found ",
                      s.kinds.size());
  }
  for (size_t i = 0; i < s.kinds.size(); ++i) {
    const auto k = static_cast<int32_t>(s.kinds[i]);
    if (k < 1 || k > 6) {
      core::throw_error(file, ": token type of token ", i, ": expected 1..6, found ", k);
    }
  }
}

// Whether BOS goes first when the file has no tokenizer.ggml.add_bos_token, as llama.cpp decides
// it: SentencePiece yes; BPE only for the families whose Hugging Face post-processor adds it
// (Llama 3's <|begin_of_text|>, Mistral's tekken, Chameleon); GPT-2, Qwen2, DeepSeek, ... no.
bool default_add_bos(const TokenizerSpec& s) {
  switch (s.model) {
    case Model::spm_bpe:
    case Model::utf8_bpe:
      return true;
    case Model::wordpiece:
      return false;  // [CLS] ... [SEP] instead (add_cls_sep)
    case Model::byte_bpe:
      for (const char* pre : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                              "midm-2.0", "lfm2", "tekken", "chameleon"}) {
        if (s.pre_tokenizer == pre) return true;
      }
      return false;
  }
  return false;
}

// Special tokens that take the whitespace around them with them. A GGUF has no key for Hugging
// Face's rstrip / lstrip flags, so llama.cpp sets them by model name; the same rules here:
// Phi-3's control and added tokens rstrip (its tokenizer.json says so for all but <unk>, <s> and
// <|endoftext|>), and the Jina v2 / Nomic MoE / ModernBERT mask tokens lstrip.
void strip_by_model_name(const Metadata& md, TokenizerSpec& s) {
  auto text = [&](const char* key) {
    const MetaValue* v = md.find(key);
    std::string t = v && v->type() == MetaValue::Type::string ? v->as_string() : std::string();
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return t;
  };
  auto contains_any = [](const std::string& t, std::initializer_list<const char*> parts) {
    for (const char* p : parts) {
      if (t.find(p) != std::string::npos) return true;
    }
    return false;
  };
  const std::string name = text("general.name");
  const std::string pre = text("tokenizer.ggml.pre");
  const std::string arch = text("general.architecture");
  auto add = [&](std::vector<int32_t>& ids, const char* token) {
    if (const int32_t id = find_token(s.tokens, token); id >= 0) ids.push_back(id);
  };
  if (contains_any(pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
      contains_any(arch, {"nomic-bert-moe", "jina-bert-v3"})) {
    add(s.lstrip_ids, "<mask>");
  } else if (contains_any(name, {"phi-3", "phi3"})) {
    const int32_t keep[] = {find_token(s.tokens, "<unk>"), find_token(s.tokens, "<s>"),
                            find_token(s.tokens, "<|endoftext|>")};
    const int32_t eos_piece = find_token(s.tokens, "</s>");
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      const auto id = static_cast<int32_t>(i);
      const TokenKind k = s.kinds.empty() ? TokenKind::normal : s.kinds[i];
      const bool special =
          k == TokenKind::control || k == TokenKind::user_defined || k == TokenKind::unknown;
      if ((special || id == eos_piece) &&
          std::find(std::begin(keep), std::end(keep), id) == std::end(keep)) {
        s.rstrip_ids.push_back(id);
      }
    }
  } else if (contains_any(name, {"modern-bert"})) {
    add(s.lstrip_ids, "[MASK]");
  }
}

}  // namespace

TokenizerSpec tokenizer_spec_from_gguf(const ModelFile& m) {
  const Metadata& md = m.metadata;
  const std::string& f = m.path;
  const MetaValue* model = md.find("tokenizer.ggml.model");
  if (model == nullptr) {
    core::throw_error(f, ": tokenizer.ggml.model: expected a tokenizer in the GGUF, found none");
  }
  const std::string& name = model->as_string(f + ": tokenizer.ggml.model");
  TokenizerSpec s;
  if (name == "gpt2") {
    s.model = Model::byte_bpe;
  } else if (name == "llama") {
    s.model = Model::spm_bpe;
  } else if (name == "bert") {
    s.model = Model::wordpiece;
  } else if (name == "gemma4") {
    s.model = Model::utf8_bpe;
  } else {
    core::throw_error(f, ": tokenizer.ggml.model: expected gpt2, llama, bert or gemma4, found \"",
                      name, "\"");
  }
  for (const MetaValue& t :
       md.at("tokenizer.ggml.tokens").as_array(f + ": tokenizer.ggml.tokens")) {
    s.tokens.push_back(t.as_string(f + ": tokenizer.ggml.tokens[]"));
  }
  if (const MetaValue* v = md.find("tokenizer.ggml.scores")) {
    for (const MetaValue& x : v->as_array(f + ": tokenizer.ggml.scores")) {
      s.scores.push_back(static_cast<float>(x.as_float(f + ": tokenizer.ggml.scores[]")));
    }
  }
  if (const MetaValue* v = md.find("tokenizer.ggml.token_type")) {
    for (const MetaValue& x : v->as_array(f + ": tokenizer.ggml.token_type")) {
      s.kinds.push_back(static_cast<TokenKind>(x.as_int(f + ": tokenizer.ggml.token_type[]")));
    }
  }
  if (const MetaValue* v = md.find("tokenizer.ggml.merges")) {
    const auto& items = v->as_array(f + ": tokenizer.ggml.merges");
    for (size_t i = 0; i < items.size(); ++i) {
      s.merges.push_back(split_merge(items[i].as_string(f + ": tokenizer.ggml.merges[]"), f, i));
    }
  }
  if (const MetaValue* v = md.find("tokenizer.ggml.pre")) s.pre_tokenizer = v->as_string();
  check_spec(s, f);
  const size_t n = s.tokens.size();
  check_id(s.bos, md.find("tokenizer.ggml.bos_token_id"), "tokenizer.ggml.bos_token_id", n, f);
  check_id(s.eos, md.find("tokenizer.ggml.eos_token_id"), "tokenizer.ggml.eos_token_id", n, f);
  check_id(s.unk, md.find("tokenizer.ggml.unknown_token_id"), "tokenizer.ggml.unknown_token_id", n,
           f);
  check_id(s.pad, md.find("tokenizer.ggml.padding_token_id"), "tokenizer.ggml.padding_token_id", n,
           f);
  check_id(s.sep, md.find("tokenizer.ggml.seperator_token_id"), "tokenizer.ggml.seperator_token_id",
           n, f);
  check_id(s.cls, md.find("tokenizer.ggml.cls_token_id"), "tokenizer.ggml.cls_token_id", n, f);
  check_id(s.mask, md.find("tokenizer.ggml.mask_token_id"), "tokenizer.ggml.mask_token_id", n, f);
  auto flag = [&](const char* key, bool fallback) {
    const MetaValue* v = md.find(key);
    return v ? v->as_bool(f + ": " + key) : fallback;
  };
  s.add_bos = flag("tokenizer.ggml.add_bos_token", default_add_bos(s));
  s.add_eos = flag("tokenizer.ggml.add_eos_token", false);
  s.add_space_prefix = flag("tokenizer.ggml.add_space_prefix", s.model == Model::spm_bpe);
  if (s.model == Model::utf8_bpe) s.add_bos = true;  // llama.cpp overrides a false key for Gemma 4
  strip_by_model_name(md, s);
  if (s.model == Model::spm_bpe) {
    // llama.cpp's SentencePiece defaults where the file names no id: <unk> 0, <s> 1, </s> 2.
    if (s.unk < 0 && n > 0) s.unk = 0;
    if (s.bos < 0 && n > 1) s.bos = 1;
    if (s.eos < 0 && n > 2) s.eos = 2;
  }
  if (s.model == Model::wordpiece) {
    // llama.cpp's converter writes BERT vocabularies with "▁" on word starts and without "##";
    // put them back in the HF form (bracketed names such as [CLS] and [unused0] stay as they are).
    static const std::string kSpace = "\xe2\x96\x81";
    for (std::string& t : s.tokens) {
      if (t.rfind(kSpace, 0) == 0) {
        t.erase(0, kSpace.size());
      } else if (!(t.size() >= 2 && t.front() == '[' && t.back() == ']')) {
        t = "##" + t;
      }
    }
    // WordPiece always gets [CLS] ... [SEP] (llama.cpp adds them whatever add_bos_token and
    // add_sep_token say, as BertProcessing does). Its [CLS] is the BOS id when the file names no
    // cls_token_id; without either, the tokens named [CLS], [SEP], [UNK] (ids 101, 102, 100 in
    // the BERT vocabularies, llama.cpp's fixed defaults).
    if (s.cls < 0) s.cls = s.bos >= 0 ? s.bos : find_token(s.tokens, "[CLS]");
    if (s.sep < 0) s.sep = find_token(s.tokens, "[SEP]");
    if (s.unk < 0) s.unk = find_token(s.tokens, "[UNK]");
    if (s.pad < 0) s.pad = find_token(s.tokens, "[PAD]");
    if (s.mask < 0) s.mask = find_token(s.tokens, "[MASK]");
    s.add_bos = false;
    s.add_cls_sep = s.cls >= 0 && s.sep >= 0;
  }
  return s;
}

void tokenizer_spec_to_gguf(const TokenizerSpec& s, Metadata& md) {
  using T = MetaValue::Type;
  const char* model = s.model == TokenizerSpec::Model::byte_bpe   ? "gpt2"
                      : s.model == TokenizerSpec::Model::spm_bpe  ? "llama"
                      : s.model == TokenizerSpec::Model::utf8_bpe ? "gemma4"
                                                                  : "bert";
  md.set("tokenizer.ggml.model", MetaValue::make_string(model));
  if (s.model == TokenizerSpec::Model::byte_bpe) {
    // llama.cpp knows GPT-2's regex as "gpt-2" and refuses a file that says "gpt2" (which older
    // qkv files and specs do; both are read).
    const std::string pre = s.pre_tokenizer == "gpt2" ? "gpt-2" : s.pre_tokenizer;
    md.set("tokenizer.ggml.pre", MetaValue::make_string(pre));
  }
  std::vector<MetaValue> tokens;
  tokens.reserve(s.tokens.size());
  static const std::string kSpace = "\xe2\x96\x81";
  for (const std::string& t : s.tokens) {
    if (s.model != TokenizerSpec::Model::wordpiece ||
        (t.size() >= 2 && t.front() == '[' && t.back() == ']')) {
      tokens.push_back(MetaValue::make_string(t));
    } else if (t.rfind("##", 0) == 0) {
      // llama.cpp's BERT form: continuations without "##", word starts with "▁" (the reader
      // above undoes this).
      tokens.push_back(MetaValue::make_string(t.substr(2)));
    } else {
      tokens.push_back(MetaValue::make_string(kSpace + t));
    }
  }
  md.set("tokenizer.ggml.tokens", MetaValue::make_array(T::string, std::move(tokens)));
  if (!s.scores.empty()) {
    std::vector<MetaValue> scores;
    for (float f : s.scores) scores.push_back(MetaValue::make_float(T::f32, f));
    md.set("tokenizer.ggml.scores", MetaValue::make_array(T::f32, std::move(scores)));
  }
  if (!s.kinds.empty()) {
    std::vector<MetaValue> kinds;
    for (TokenKind k : s.kinds)
      kinds.push_back(MetaValue::make_int(T::i32, static_cast<int32_t>(k)));
    md.set("tokenizer.ggml.token_type", MetaValue::make_array(T::i32, std::move(kinds)));
  }
  if (!s.merges.empty()) {
    std::vector<MetaValue> merges;
    for (const auto& [a, b] : s.merges) merges.push_back(MetaValue::make_string(a + " " + b));
    md.set("tokenizer.ggml.merges", MetaValue::make_array(T::string, std::move(merges)));
  }
  auto id = [&](const char* key, int32_t v) {
    if (v >= 0) md.set(key, MetaValue::make_uint(T::u32, static_cast<uint64_t>(v)));
  };
  id("tokenizer.ggml.bos_token_id", s.bos);
  id("tokenizer.ggml.eos_token_id", s.eos);
  id("tokenizer.ggml.unknown_token_id", s.unk);
  id("tokenizer.ggml.padding_token_id", s.pad);
  id("tokenizer.ggml.seperator_token_id", s.sep);
  id("tokenizer.ggml.cls_token_id", s.cls);
  id("tokenizer.ggml.mask_token_id", s.mask);
  const bool wordpiece = s.model == TokenizerSpec::Model::wordpiece;
  md.set("tokenizer.ggml.add_bos_token",
         MetaValue::make_bool(wordpiece ? s.add_cls_sep : s.add_bos));
  if (wordpiece) md.set("tokenizer.ggml.add_sep_token", MetaValue::make_bool(s.add_cls_sep));
  md.set("tokenizer.ggml.add_eos_token", MetaValue::make_bool(s.add_eos));
  if (s.model == TokenizerSpec::Model::spm_bpe || s.model == TokenizerSpec::Model::utf8_bpe) {
    md.set("tokenizer.ggml.add_space_prefix", MetaValue::make_bool(s.add_space_prefix));
  }
}

namespace {

// The pre-tokenizers qkv's tokenizers implement (a Sequence of them too). Another one changes how
// text is split before the model sees it, so ignoring it would give other ids than the reference:
// refused by name.
void check_pre_tokenizer(const json& pre, const std::string& f, const std::string& where) {
  if (pre.is_null()) return;
  if (!pre.is_object() || !pre.contains("type") || !pre["type"].is_string()) {
    core::throw_error(f, ": ", where, ": expected an object with a \"type\", found ",
                      pre.dump().substr(0, 60));
  }
  const std::string type = pre["type"].get<std::string>();
  if (type == "Sequence") {
    const json& list = pre.contains("pretokenizers") ? pre["pretokenizers"] : json();
    if (!list.is_array()) core::throw_error(f, ": ", where, ".pretokenizers: expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      check_pre_tokenizer(list[i], f, core::concat(where, ".pretokenizers[", i, "]"));
    }
    return;
  }
  for (const char* known : {"ByteLevel", "Split", "Metaspace", "BertPreTokenizer"}) {
    if (type == known) return;
  }
  core::throw_error(f, ": ", where, ".type \"", formats::printable(type),
                    "\" is not supported (it changes how the text is split; qkv implements ",
                    "ByteLevel, Split, Metaspace and BertPreTokenizer)");
}

// The id of the token named by `name` (a JSON string), -1 when it is not one or not a token.
int32_t json_token_id(const TokenizerSpec& s, const json& name) {
  return name.is_string() ? find_token(s.tokens, name.get<std::string>()) : -1;
}

// s.model (and s.pre_tokenizer) from model.type and the pre-tokenizer.
void read_json_model_type(const json& j, const json& model, const std::string& f,
                          TokenizerSpec& s) {
  const std::string type = model["type"].get<std::string>();
  const json& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
  check_pre_tokenizer(pre, f, "pre_tokenizer");
  const bool byte_level = pre.dump().find("\"ByteLevel\"") != std::string::npos;
  if (type == "BPE") {
    s.model = byte_level ? Model::byte_bpe : Model::spm_bpe;
    // A Split pre-tokenizer carries its own regex (LLaMA-3, Qwen2, ...): not GPT-2's.
    if (byte_level && pre.dump().find("\"Split\"") != std::string::npos) {
      s.pre_tokenizer = "split-regex";
    }
  } else if (type == "WordPiece") {
    s.model = Model::wordpiece;
  } else {
    core::throw_error(f, ": model.type: expected BPE or WordPiece, found \"", type, "\"");
  }
}

// s.tokens and s.kinds from model.vocab and added_tokens: every id in 0..n-1 exactly once.
void read_json_vocab(const json& j, const json& model, const std::string& f, TokenizerSpec& s) {
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    core::throw_error(f, ": model.vocab: expected an object token -> id");
  }
  std::vector<std::pair<int64_t, std::string>> entries;
  auto add_entry = [&](const std::string& tok, const json& id, const char* where) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 24)) {
      core::throw_error(f, ": ", where, "['", formats::printable(tok),
                        "']: expected an id in 0..2^24, found ", id.dump());
    }
    entries.emplace_back(id.get<int64_t>(), tok);
  };
  for (const auto& [tok, id] : model["vocab"].items()) add_entry(tok, id, "model.vocab");
  std::vector<std::pair<int64_t, bool>> added;  // id, special
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
          !a.contains("id")) {
        core::throw_error(f, ": added_tokens: expected {id, content, special} objects");
      }
      add_entry(a["content"].get<std::string>(), a["id"], "added_tokens");
      added.emplace_back(a["id"].get<int64_t>(), a.value("special", false));
      if (a.value("rstrip", false)) s.rstrip_ids.push_back(a["id"].get<int32_t>());
      if (a.value("lstrip", false)) s.lstrip_ids.push_back(a["id"].get<int32_t>());
    }
  }
  int64_t n = 0;
  for (const auto& e : entries) n = std::max(n, e.first + 1);
  s.tokens.assign(static_cast<size_t>(n), std::string());
  std::vector<bool> seen(static_cast<size_t>(n), false);
  for (auto& [id, tok] : entries) {
    if (seen[id] && s.tokens[id] != tok) {
      core::throw_error(f, ": vocab: id ", id, " is given to both \"",
                        formats::printable(s.tokens[id]), "\" and \"", formats::printable(tok),
                        "\"");
    }
    seen[id] = true;
    s.tokens[id] = std::move(tok);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!seen[i]) core::throw_error(f, ": vocab: expected ids 0..", n - 1, ", id ", i, " missing");
  }
  s.kinds.assign(static_cast<size_t>(n), TokenKind::normal);
  for (auto [id, special] : added) {
    s.kinds[id] = special ? TokenKind::control : TokenKind::user_defined;
  }
}

// s.merges from model.merges, as "a b" strings or ["a", "b"] pairs.
void read_json_merges(const json& model, const std::string& f, TokenizerSpec& s) {
  if (model.contains("merges") && model["merges"].is_array()) {
    const json& merges = model["merges"];
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      if (m.is_string()) {
        s.merges.push_back(split_merge(m.get<std::string>(), f, i));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        s.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        core::throw_error(f, ": model.merges[", i, "]: expected \"a b\" or [\"a\", \"b\"], found ",
                          m.dump().substr(0, 60));
      }
    }
  }
}

// The special tokens and options of each model: WordPiece's [CLS]/[SEP]/... and normalizer,
// SentencePiece BPE's scores (from merge ranks) and byte tokens.
void read_json_model_options(const json& j, const json& model, TokenizerSpec& s) {
  if (s.model == Model::wordpiece) {
    s.unk = json_token_id(s, model.value("unk_token", json("[UNK]")));
    s.cls = find_token(s.tokens, "[CLS]");
    s.sep = find_token(s.tokens, "[SEP]");
    s.pad = find_token(s.tokens, "[PAD]");
    s.mask = find_token(s.tokens, "[MASK]");
    s.max_input_chars_per_word = model.value("max_input_chars_per_word", 100);
    const json& norm = j.contains("normalizer") ? j["normalizer"] : json();
    if (norm.is_object()) {
      s.lowercase = norm.value("lowercase", true);
      const json& sa = norm.contains("strip_accents") ? norm["strip_accents"] : json();
      s.strip_accents = sa.is_boolean() ? sa.get<bool>() : s.lowercase;
    }
  } else {
    if (model.contains("unk_token")) s.unk = json_token_id(s, model["unk_token"]);
    if (s.model == Model::spm_bpe) {
      // SentencePiece BPE as HF stores it: merges by rank. Score = -rank of the merge that
      // makes the token, so higher scores merge first, as in the .model file.
      std::unordered_map<std::string, int32_t> ids;
      for (size_t i = 0; i < s.tokens.size(); ++i) ids.emplace(s.tokens[i], int32_t(i));
      s.scores.assign(s.tokens.size(), -1e9f);
      for (size_t r = 0; r < s.merges.size(); ++r) {
        auto it = ids.find(s.merges[r].first + s.merges[r].second);
        if (it != ids.end() && s.scores[it->second] == -1e9f) s.scores[it->second] = -float(r);
      }
      for (size_t i = 0; i < s.tokens.size(); ++i) {
        const std::string& t = s.tokens[i];
        if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>') s.kinds[i] = TokenKind::byte;
      }
      s.add_space_prefix = true;
    }
  }
}

// BOS/EOS (CLS/SEP) from the post-processor's template, else from the usual token names.
void read_json_post_processor(const json& j, TokenizerSpec& s) {
  // Special tokens added by the post-processor: the first and last of its "single" template.
  const json& post = j.contains("post_processor") ? j["post_processor"] : json();
  if (post.is_object() && post.contains("single") && post["single"].is_array()) {
    const json& single = post["single"];
    int32_t first = -1, last = -1;
    bool seen_seq = false;
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        seen_seq = true;
      } else if (item.contains("SpecialToken")) {
        const int32_t id = json_token_id(s, item["SpecialToken"].value("id", json()));
        (seen_seq ? last : first) = id;
      }
    }
    if (s.model == Model::wordpiece) {
      s.add_cls_sep = first >= 0 && last >= 0;
      if (first >= 0) s.cls = first;
      if (last >= 0) s.sep = last;
    } else {
      s.add_bos = first >= 0;
      s.add_eos = last >= 0;
      if (first >= 0) s.bos = first;
      if (last >= 0) s.eos = last;
    }
  } else if (post.is_object() && post.value("type", std::string()) == "BertProcessing") {
    s.add_cls_sep = s.cls >= 0 && s.sep >= 0;
  }
  if (s.model != Model::wordpiece && s.bos < 0) {
    for (const char* name : {"<|endoftext|>", "<s>", "<|begin_of_text|>"}) {
      if (int32_t id = find_token(s.tokens, name); id >= 0) {
        s.bos = id;
        break;
      }
    }
    for (const char* name : {"<|endoftext|>", "</s>", "<|end_of_text|>"}) {
      if (int32_t id = find_token(s.tokens, name); id >= 0 && s.eos < 0) s.eos = id;
    }
  }
}

TokenizerSpec parse_tokenizer_json_checked(std::string_view text, const std::string& f) {
  const json j = formats::parse_json_text(text, f);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    core::throw_error(f, ": model: expected an object (an HF tokenizer.json), found none");
  }
  const json& model = j["model"];
  if (!model.contains("type") || !model["type"].is_string()) {
    core::throw_error(f, ": model.type: expected a string (BPE or WordPiece), found ",
                      model.contains("type") ? model["type"].dump().substr(0, 40) : "none");
  }
  TokenizerSpec s;
  read_json_model_type(j, model, f, s);
  read_json_vocab(j, model, f, s);
  read_json_merges(model, f, s);
  read_json_model_options(j, model, s);
  read_json_post_processor(j, s);
  check_spec(s, f);
  return s;
}

}  // namespace

TokenizerSpec parse_tokenizer_json(std::string_view text, const std::string& f) {
  return formats::with_json_errors(f, [&] { return parse_tokenizer_json_checked(text, f); });
}

TokenizerSpec read_tokenizer_json(const std::string& path) {
  MappedFile map(path);
  return parse_tokenizer_json(
      std::string_view(reinterpret_cast<const char*>(map.data()), map.size()), path);
}

TokenizerSpec parse_llama2c_tokenizer(std::span<const std::byte> bytes, const std::string& f,
                                      int64_t n_vocab) {
  formats::ByteReader r(f, bytes.data(), bytes.size());
  TokenizerSpec s;
  s.model = Model::spm_bpe;
  const auto max_len = r.read<int32_t>("max_token_length");
  if (max_len <= 0 || max_len > (1 << 16)) {
    core::throw_error(f, ": max_token_length: expected 1..65536, found ", max_len);
  }
  for (int64_t i = 0; n_vocab > 0 ? i < n_vocab : r.remaining() > 0; ++i) {
    if (i >= (1 << 24)) core::throw_error(f, ": vocabulary: more than 2^24 tokens");
    const std::string field = core::concat("token ", i);
    s.scores.push_back(r.read<float>(field + " score"));
    const auto len = r.read<int32_t>(field + " length");
    if (len < 0 || len > max_len) {
      core::throw_error(f, ": ", field, " length: expected 0..", max_len,
                        " (max_token_length), found ", len);
    }
    std::string piece(r.read_bytes(static_cast<uint64_t>(len), field + " bytes"));
    // llama2.c writes SentencePiece's "▁" as a plain space; put it back so the spec is the
    // same as a GGUF's.
    std::string t;
    for (char c : piece) t += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
    s.tokens.push_back(std::move(t));
  }
  s.kinds.assign(s.tokens.size(), TokenKind::normal);
  // run.c's fixed ids: 0 <unk>, 1 BOS, 2 EOS; bytes are <0x00>..<0xFF> (run.c uses id byte + 3).
  for (size_t i = 0; i < s.tokens.size(); ++i) {
    const std::string& t = s.tokens[i];
    if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>') s.kinds[i] = TokenKind::byte;
  }
  if (s.tokens.size() < 3) {
    core::throw_error(f, ": vocabulary: expected at least <unk>, <s>, </s>, found ",
                      s.tokens.size(), " tokens");
  }
  // llama2.c's export writes BOS/EOS as "\n<s>\n" and "\n</s>\n"; use SentencePiece's names.
  if (s.tokens[1] == "\n<s>\n") s.tokens[1] = "<s>";
  if (s.tokens[2] == "\n</s>\n") s.tokens[2] = "</s>";
  s.kinds[0] = TokenKind::unknown;
  s.kinds[1] = s.kinds[2] = TokenKind::control;
  s.unk = 0;
  s.bos = 1;
  s.eos = 2;
  s.add_bos = true;
  s.add_space_prefix = true;
  return s;
}

TokenizerSpec read_llama2c_tokenizer(const std::string& path, int64_t n_vocab) {
  MappedFile map(path);
  return parse_llama2c_tokenizer({map.data(), map.size()}, path, n_vocab);
}

TokenizerSpec read_wordpiece_vocab(const std::string& path) {
  std::istringstream in(core::read_input_file(path));
  TokenizerSpec s;
  s.model = Model::wordpiece;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    s.tokens.push_back(line);
  }
  s.kinds.assign(s.tokens.size(), TokenKind::normal);
  for (const char* name : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    if (int32_t id = find_token(s.tokens, name); id >= 0) s.kinds[id] = TokenKind::control;
  }
  s.unk = find_token(s.tokens, "[UNK]");
  s.cls = find_token(s.tokens, "[CLS]");
  s.sep = find_token(s.tokens, "[SEP]");
  s.pad = find_token(s.tokens, "[PAD]");
  s.mask = find_token(s.tokens, "[MASK]");
  s.add_cls_sep = s.cls >= 0 && s.sep >= 0;
  check_spec(s, path);
  return s;
}

TokenizerSpec read_gpt2_vocab(const std::string& vocab_json, const std::string& merges_txt) {
  const json vocab = formats::read_json_file(vocab_json);
  json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
             {"pre_tokenizer", {{"type", "ByteLevel"}}}};
  std::istringstream in(core::read_input_file(merges_txt));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    tj["model"]["merges"].push_back(line);
  }
  TokenizerSpec s = parse_tokenizer_json(tj.dump(), vocab_json);
  for (size_t i = 0; i < s.tokens.size(); ++i) {
    if (s.tokens[i] == "<|endoftext|>") s.kinds[i] = TokenKind::control;
  }
  return s;
}

namespace {

// The single tok*.bin beside a llama2.c checkpoint (none when there are several).
std::optional<std::string> sibling_llama2c_tokenizer(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  std::error_code ec;
  const fs::path dir = fs::path(model_path).parent_path().empty()
                           ? fs::path(".")
                           : fs::path(model_path).parent_path();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.path() == fs::path(model_path)) continue;
    if (e.path().extension() == ".bin" && name.rfind("tok", 0) == 0) found.push_back(e.path());
  }
  if (found.size() == 1) return found[0];
  return std::nullopt;
}

}  // namespace

TokenizerSpec read_tokenizer_file(const std::string& path, int64_t n_vocab) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".gguf") return tokenizer_spec_from_gguf(read_gguf(path));
  if (ext == ".json") return read_tokenizer_json(path);
  if (ext == ".txt") return read_wordpiece_vocab(path);
  return read_llama2c_tokenizer(path, n_vocab);
}

TokenizerSpec tokenizer_spec_for(const ModelFile& m, const std::string& tokenizer_path) {
  namespace fs = std::filesystem;
  const int64_t llama2c_vocab = m.format == FileFormat::llama2c ? m.config.n_vocab : 0;
  if (!tokenizer_path.empty()) return read_tokenizer_file(tokenizer_path, llama2c_vocab);
  switch (m.format) {
    case FileFormat::gguf:
      return tokenizer_spec_from_gguf(m);
    case FileFormat::hf_folder: {
      const fs::path d(m.path);
      if (fs::exists(d / "tokenizer.json"))
        return read_tokenizer_json((d / "tokenizer.json").string());
      if (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt")) {
        return read_gpt2_vocab((d / "vocab.json").string(), (d / "merges.txt").string());
      }
      if (fs::exists(d / "vocab.txt")) return read_wordpiece_vocab((d / "vocab.txt").string());
      core::throw_error(m.path, ": tokenizer: expected tokenizer.json, vocab.json + merges.txt ",
                        "or vocab.txt in the folder, found none");
    }
    case FileFormat::llama2c:
      if (auto tok = sibling_llama2c_tokenizer(m.path)) {
        return read_llama2c_tokenizer(*tok, llama2c_vocab);
      }
      core::throw_error(m.path, ": tokenizer: a llama2.c checkpoint has none inside and no single ",
                        "tok*.bin beside it; give a tokenizer file (its tokenizer.bin)");
    case FileFormat::safetensors:
      core::throw_error(m.path, ": tokenizer: a bare .safetensors has none; open the model folder",
                        " or give a tokenizer file (tokenizer.json)");
  }
  core::throw_error(m.path, ": tokenizer: unknown source");
}

}  // namespace qkv
