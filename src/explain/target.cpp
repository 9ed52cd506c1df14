// resolve_target(): the token an explanation method scores (--target, --contrast), and its score.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {

namespace {

// A token's text in quotes for notes and errors, on one line: newline, tab, carriage return,
// other control bytes and the quote itself escaped (\n, \t, \r, \x1b, \"), and bytes that are
// not part of a complete UTF-8 character (a byte-level token holding part of one) as \xNN.
std::string in_quotes(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 0;
    if (len > 1 && i + len <= s.size() && core::valid_utf8(std::string_view(s).substr(i, len))) {
      out.append(s, i, len);
      i += len;
      continue;
    }
    char esc[8];
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c < 0x20 || c >= 0x7f) {
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  return out + "\"";
}

// "#123": a token id; -1 when the spec is not of that form.
int64_t parse_id(std::string_view spec) {
  if (spec.size() < 2 || spec[0] != '#') return -1;
  int64_t id = 0;
  for (char c : spec.substr(1)) {
    if (!std::isdigit(static_cast<unsigned char>(c)) || id > (int64_t(1) << 40)) return -1;
    id = id * 10 + (c - '0');
  }
  return id;
}

struct Resolved {
  int32_t id = -1;
  std::string text, how;
};

// One spec (`what` is "target" or "contrast") as one token after the prompt.
Resolved resolve_one(const Model& model, std::span<const int32_t> prompt, std::string_view spec,
                     const char* what) {
  const Tokenizer& tok = model.tokenizer();
  const int64_t n_vocab = tok.n_vocab();
  if (const int64_t id = parse_id(spec); id >= 0) {
    if (id >= n_vocab) {
      throw InvalidArgument(std::string(what) + " " + std::string(spec) + ": id outside [0, " +
                            std::to_string(n_vocab) + ")");
    }
    const auto i = static_cast<int32_t>(id);
    return {i, tok.token_bytes(i), "id " + std::to_string(i)};
  }
  const std::string text(spec);
  // The word after a prompt that ends in a word begins with a space: " animal", not "animal".
  // After whitespace (or a special token such as BOS alone) the text as written comes first.
  std::vector<std::string> tries{text};
  if (!text.empty() && !std::isspace(static_cast<unsigned char>(text[0]))) {
    const std::string last = prompt.empty() ? "" : tok.token_bytes(prompt.back());
    const bool after_space = prompt.empty() || tok.is_special(prompt.back()) || last.empty() ||
                             std::isspace(static_cast<unsigned char>(last.back())) != 0;
    if (after_space) {
      tries.push_back(" " + text);
    } else {
      tries.insert(tries.begin(), " " + text);
    }
  }
  std::string failed;
  for (const std::string& t : tries) {
    const std::vector<int32_t> ids = tok.encode(t, {.add_special = false, .parse_special = true});
    if (ids.size() == 1) {
      std::string how = "id " + std::to_string(ids[0]);
      if (t != text) how += ", as " + in_quotes(t);
      return {ids[0], tok.token_bytes(ids[0]), how};
    }
    if (!failed.empty()) failed += "; ";
    failed += in_quotes(t) + " is " + std::to_string(ids.size()) + " tokens";
    if (!ids.empty()) failed += ":";
    for (int32_t id : ids) {
      failed += ' ';
      failed += in_quotes(tok.token_bytes(id));
    }
  }
  throw InvalidArgument(std::string(what) + " " + in_quotes(text) + " is not one token (" + failed +
                        "); pass a single token's text or #ID (qkv tokenize shows the ids)");
}

}  // namespace

int32_t resolve_token(const Model& model, std::string_view spec, const char* what) {
  if (!model.has_tokenizer()) {
    throw InvalidArgument(std::string(what) + ": " + model.describe() + " has no tokenizer");
  }
  if (spec.empty()) throw InvalidArgument(std::string(what) + ": the token is empty");
  return resolve_one(model, {}, spec, what).id;
}

ExplainTarget resolve_target(const Model& model, std::span<const int32_t> prompt,
                             std::string_view target, std::string_view contrast,
                             std::span<const float> next_logits) {
  if (!model.is_decoder()) {
    throw InvalidArgument("target: " + model.describe() +
                          " is an encoder; targets (the next token) need a decoder");
  }
  if (prompt.empty()) throw InvalidArgument("target: the prompt has no tokens");
  const Tokenizer& tok = model.tokenizer();
  ExplainTarget t;
  t.position = static_cast<int64_t>(prompt.size()) - 1;
  if (target.empty()) {
    std::vector<float> own;
    if (next_logits.empty()) {
      Session session(model, {.n_ctx = static_cast<int64_t>(prompt.size())});
      const std::span<const float> l = session.eval(prompt);
      own.assign(l.begin(), l.end());
      next_logits = own;
    }
    if (static_cast<int64_t>(next_logits.size()) != tok.n_vocab()) {
      throw InvalidArgument("target: next_logits has " + std::to_string(next_logits.size()) +
                            " values; expected n_vocab = " + std::to_string(tok.n_vocab()));
    }
    t.id = static_cast<int32_t>(std::max_element(next_logits.begin(), next_logits.end()) -
                                next_logits.begin());
    t.text = tok.token_bytes(t.id);
    t.note = "target " + in_quotes(t.text) + " (id " + std::to_string(t.id) +
             ", the model's greedy next token)";
  } else {
    const Resolved r = resolve_one(model, prompt, target, "target");
    t.id = r.id;
    t.text = r.text;
    t.note = "target " + in_quotes(t.text) + " (" + r.how + ")";
  }
  if (!contrast.empty()) {
    const Resolved r = resolve_one(model, prompt, contrast, "contrast");
    if (r.id == t.id) {
      throw InvalidArgument("contrast " + in_quotes(std::string(contrast)) +
                            " is the target token " + in_quotes(t.text) +
                            " itself; the logit difference would be 0");
    }
    t.contrast_id = r.id;
    t.contrast_text = r.text;
    t.note += " against contrast " + in_quotes(r.text) + " (" + r.how + ")";
  }
  return t;
}

double target_score(const ExplainTarget& target, std::span<const float> logits) {
  const auto n = static_cast<int64_t>(logits.size());
  if (target.id < 0 || target.id >= n || target.contrast_id >= n) {
    throw InvalidArgument("target_score: target id " + std::to_string(target.id) +
                          " or contrast id " + std::to_string(target.contrast_id) +
                          " outside the " + std::to_string(n) + " logits");
  }
  const auto at = [&](int32_t i) { return static_cast<double>(logits[static_cast<size_t>(i)]); };
  if (target.has_contrast()) return at(target.id) - at(target.contrast_id);
  double max = -INFINITY;
  for (float z : logits) max = std::max(max, static_cast<double>(z));
  double sum = 0;
  for (float z : logits) sum += std::exp(static_cast<double>(z) - max);
  return at(target.id) - max - std::log(sum);
}

}  // namespace qkv
