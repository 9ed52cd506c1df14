// probe_pronouns (qkv/trainer.h): exact attention from "it" to its candidate antecedents, per head.
#include <algorithm>

#include "qkv/error.h"
#include "qkv/explain.h"
#include "qkv/tokenizer.h"
#include "qkv/trainer.h"

namespace qkv {
namespace {

// Tokens overlapping the byte range [begin, begin + length) of the text, given each token's
// byte offset (offsets has one more entry: the end).
std::vector<int64_t> tokens_of(const std::vector<size_t>& offsets, size_t begin, size_t length) {
  std::vector<int64_t> out;
  for (size_t t = 0; t + 1 < offsets.size(); ++t) {
    if (offsets[t + 1] > begin && offsets[t] < begin + length) out.push_back(int64_t(t));
  }
  return out;
}

}  // namespace

PronounProbe probe_pronouns(const Model& model, const std::vector<PronounCase>& cases, PronounAt at,
                            int n_threads) {
  const Tokenizer& tok = model.tokenizer();
  const auto L = static_cast<size_t>(model.config().n_layer);
  const auto H = static_cast<size_t>(model.config().n_head);
  struct Tally {
    int64_t right = 0, right_agent = 0, right_object = 0;
    double antecedent = 0, distractor = 0;
  };
  std::vector<Tally> tally(L * H);
  PronounProbe probe;
  for (const PronounCase& c : cases) {
    ExplainOptions eo;
    eo.n_threads = n_threads;
    const Explanation e = explain(model, c.text, eo);
    std::vector<size_t> offsets = {0};
    for (int32_t id : e.ids) offsets.push_back(offsets.back() + tok.token_bytes(id).size());
    if (offsets.back() != c.text.size()) {
      throw Error("probe: the tokens of \"" + c.text + "\" do not spell the text (" +
                  std::to_string(offsets.back()) + " bytes for " + std::to_string(c.text.size()) +
                  "); the model's tokenizer adds text");
    }
    const bool follow = at == PronounAt::follow_up;
    const std::vector<int64_t> it = tokens_of(offsets, follow ? c.follow_offset : c.pronoun_offset,
                                              follow ? c.follow_length : c.pronoun_length);
    const std::vector<int64_t> ante = tokens_of(offsets, c.antecedent_offset, c.antecedent_length);
    const std::vector<int64_t> dist = tokens_of(offsets, c.distractor_offset, c.distractor_length);
    if (it.empty() || ante.empty() || dist.empty()) {
      throw Error("probe: a word of \"" + c.text + "\" has no token");
    }
    // The pronoun's last token is the query: it has seen the whole word.
    const int64_t row = it.back();
    const auto n = static_cast<int64_t>(e.ids.size());
    const bool agent = c.variant == "agent";
    probe.n_agent += agent;
    probe.n_object += !agent;
    for (size_t l = 0; l < L; ++l) {
      for (size_t h = 0; h < H; ++h) {
        const std::vector<float> map = e.capture.map(l, h, n);
        double a = 0, d = 0;
        for (int64_t k : ante) a += map[static_cast<size_t>(row * n + k)];
        for (int64_t k : dist) d += map[static_cast<size_t>(row * n + k)];
        Tally& t = tally[l * H + h];
        const bool right = a > d;
        t.right += right;
        (agent ? t.right_agent : t.right_object) += right;
        t.antecedent += a;
        t.distractor += d;
      }
    }
    ++probe.n_cases;
  }
  const auto frac = [](int64_t k, int64_t n) { return n > 0 ? double(k) / double(n) : 0.0; };
  for (size_t l = 0; l < L; ++l) {
    for (size_t h = 0; h < H; ++h) {
      const Tally& t = tally[l * H + h];
      PronounHeadScore s;
      s.layer = int(l);
      s.head = int(h);
      s.accuracy = frac(t.right, probe.n_cases);
      s.accuracy_agent = frac(t.right_agent, probe.n_agent);
      s.accuracy_object = frac(t.right_object, probe.n_object);
      s.mean_antecedent = probe.n_cases ? t.antecedent / double(probe.n_cases) : 0;
      s.mean_distractor = probe.n_cases ? t.distractor / double(probe.n_cases) : 0;
      probe.heads.push_back(s);
    }
  }
  std::stable_sort(probe.heads.begin(), probe.heads.end(),
                   [](const PronounHeadScore& a, const PronounHeadScore& b) {
                     if (a.accuracy != b.accuracy) return a.accuracy > b.accuracy;
                     return a.mean_antecedent - a.mean_distractor >
                            b.mean_antecedent - b.mean_distractor;
                   });
  return probe;
}

}  // namespace qkv
