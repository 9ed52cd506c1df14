// qkv — learning: a built-in story corpus, pronoun test cases, and (train.h, below) training a
// small GPT-2-style model on the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qkv {

// ---- The built-in corpus ----------------------------------------------------------------------
// A deterministic generator of simple English stories rich in the relations attention resolves:
// pronouns and their antecedents (Winograd-style "The animal didn't cross the street because it
// was too tired/wide", with the cue that decides the referent placed before the pronoun so that a
// causal model can resolve it), subject–verb agreement across relative clauses, and repeated
// names (copying / induction). Stories are separated by a blank line ("\n\n").
// The same options give the same text byte for byte on every platform (own PRNG, no
// std::*_distribution).
struct CorpusOptions {
  uint64_t seed = 1;
  int64_t n_stories = 20000;
};
std::string generate_corpus(const CorpusOptions& options = {});

// One held-out pronoun test sentence. Offsets are byte offsets into `text` of whole words.
struct PronounCase {
  std::string text;
  size_t pronoun_offset = 0, pronoun_length = 0;        // "it" (in "because it was too ...")
  size_t follow_offset = 0, follow_length = 0;          // "It" starting the next sentence
  size_t antecedent_offset = 0, antecedent_length = 0;  // the noun "it" refers to
  size_t distractor_offset = 0, distractor_length = 0;  // the other candidate noun
  std::string variant;  // "agent" (tired-style: "it" is the subject) or "object" (wide-style)
};
// Test sentences built from noun pairs the corpus never puts in the same Winograd story
// (held out from generate_corpus for every seed), half of each variant, deterministic in seed.
// Cases alternate agent, object, agent, ...; the text is one Winograd sentence, sometimes after
// a sentence that gives the cue ("The road was very wide. The dog didn't cross the road because
// it was too wide."), then the sentence about the referent that every Winograd story of the
// corpus has ("It stretched far.", a different verb for every noun). The antecedent and
// distractor offsets are their last occurrences before "it".
std::vector<PronounCase> generate_pronoun_cases(int64_t n, uint64_t seed = 7);
// The held-out (animal, thing) pairs, e.g. ("animal", "street"): fixed, the same for every seed.
std::vector<std::pair<std::string, std::string>> held_out_pronoun_pairs();

}  // namespace qkv
