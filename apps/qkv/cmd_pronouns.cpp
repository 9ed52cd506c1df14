// qkv pronouns [-m MODEL] [--cases N] [--seed S] [--top K] [--at follow-up|clause] [--json]
//   Does a head resolve "it"? Runs N held-out test sentences of the built-in corpus's Winograd
//   frames ("The tired dog didn't cross the road because it was too tired." / "... the wide
//   road because it was too wide.") through the model with exact attention capture and scores
//   every layer and head: a case is right when the pronoun's token puts more weight on the
//   correct antecedent than on the other noun. Prints the best heads, overall and per variant.
//   The pronoun queried is the "It" that starts the sentence after the Winograd sentence (its
//   next word is the referent's own verb, "It barked."), or with --at clause the "it" of
//   "because it was too ...".
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "default_model.h"
#include "qkv/trainer.h"

namespace qkv::app {
namespace cmd_pronouns {  // one per subcommand: the qkv target is a unity build
namespace {

const EnumNames<PronounAt> kAtNames{{"clause", PronounAt::clause},
                                    {"follow-up", PronounAt::follow_up}};

struct PronounsCli {
  std::string model, tokenizer;
  int64_t cases = 200;
  uint64_t seed = 7;
  int top = 5;
  PronounAt at = PronounAt::follow_up;
  int threads = 0;
  bool json = false;
};

void run(const PronounsCli& o) {
  if (o.cases < 2) throw Error("--cases: expected at least 2, found " + std::to_string(o.cases));
  const Model model = load_model_or_default(
      o.model, {.tokenizer_path = o.tokenizer, .require_tokenizer = true, .progress = {}});
  if (!model.is_decoder()) throw Error("pronouns: the model is an encoder; it needs a decoder");
  const std::vector<PronounCase> cases = generate_pronoun_cases(o.cases, o.seed);
  const PronounProbe p = probe_pronouns(model, cases, o.at, o.threads);
  if (o.json) {
    nlohmann::json j;
    j["cases"] = p.n_cases;
    j["agent_cases"] = p.n_agent;
    j["object_cases"] = p.n_object;
    for (const PronounHeadScore& s : p.heads) {
      j["heads"].push_back({{"layer", s.layer},
                            {"head", s.head},
                            {"accuracy", s.accuracy},
                            {"accuracy_agent", s.accuracy_agent},
                            {"accuracy_object", s.accuracy_object},
                            {"mean_antecedent", s.mean_antecedent},
                            {"mean_distractor", s.mean_distractor}});
    }
    std::cout << j.dump(1) << "\n";
    return;
  }
  std::printf(
      "%lld held-out sentences (%lld tired-style, %lld wide-style); attention of %s on\n"
      "the correct antecedent vs the other noun, per head, best first:\n\n",
      static_cast<long long>(p.n_cases), static_cast<long long>(p.n_agent),
      static_cast<long long>(p.n_object),
      o.at == PronounAt::clause ? "\"it\" (because it was too ...)"
                                : "\"It\" (the sentence after)");
  std::printf("layer head  accuracy  tired-style  wide-style  weight: antecedent  other\n");
  for (size_t i = 0; i < p.heads.size() && i < static_cast<size_t>(o.top); ++i) {
    const PronounHeadScore& s = p.heads[i];
    std::printf("%5d %4d  %7.1f%%  %10.1f%%  %9.1f%%  %18.3f  %5.3f\n", s.layer, s.head,
                100 * s.accuracy, 100 * s.accuracy_agent, 100 * s.accuracy_object,
                s.mean_antecedent, s.mean_distractor);
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<PronounsCli>();
  add_model_option(app, o->model, /*builtin_default=*/true);
  add_tokenizer_option(app, o->tokenizer);
  app.add_option("--cases", o->cases, "test sentences (half of each variant)")
      ->capture_default_str();
  app.add_option("--seed", o->seed, "seed of the test sentences")->capture_default_str();
  app.add_option("--top", o->top, "heads to list")->capture_default_str();
  add_enum_option(app, "--at", o->at,
                  "clause: \"it\" in \"because it was too ...\"; follow-up: the \"It\" that "
                  "starts the next sentence",
                  kAtNames);
  add_threads_option(app, o->threads);
  add_json_flag(app, o->json);
  app.callback([o] { run(*o); });
}

Registrar reg("pronouns",
              "Score every attention head on resolving \"it\" (held-out Winograd sentences)",
              setup);

}  // namespace
}  // namespace cmd_pronouns
}  // namespace qkv::app
