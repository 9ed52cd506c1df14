// The built-in corpus and the held-out pronoun cases (qkv/train.h).
//
// Three kinds of story, each a few short sentences over a closed vocabulary (about 230 words,
// about 260 word forms with capitals and leading spaces; a BPE of 768 tokens makes nearly every
// word occurrence one token, 640 tokens 94%, 512 tokens about 80%):
//   - Winograd stories (45%): "The tired dog didn't cross the road because it was too tired."
//     The cue that decides the referent (an adjective that only fits the animal, or only the
//     thing) comes before "it", inline or in a sentence of its own, because the model is causal.
//     The next sentence says what the referent did, with a verb of that noun only ("It barked.",
//     "It stretched far."), so the word after that "It" needs the pronoun resolved; more
//     follow-ups may name the referent again.
//   - agreement stories (20%): "The dogs that the cat sees are happy.", "The dog near the cats
//     is small.": the verb agrees with the head noun, not the nearest one.
//   - name stories (35%): "Once upon a time there was a little girl named Mia. Mia had a red
//     ball. She ..." (names repeated for copying, she/he for gendered pronouns).
// Held out: every (animal, thing) pair whose FNV-1a hash is 0 mod 5, and (animal, street), never
// shares a Winograd story; generate_pronoun_cases uses only those pairs.
//
// Measured (Release, 2-core dev machine): 20000 stories (the default) are 2.22 MB, about 0.5M
// tokens with a 768-token BPE, and take 0.02-0.1 s to generate; ~5M training tokens need about
// 200000 stories (22 MB).
#include <algorithm>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/train.h"
#include "train/random.h"

namespace qkv {
namespace {

using Words = std::span<const std::string_view>;

// The training layer's splitmix64 (train/random.h: the same numbers on every platform, unlike
// std::*_distribution), started at the raw seed, with the draws the stories need.
class Rng {
 public:
  explicit Rng(uint64_t seed) { rng_.set_state(seed); }
  // 0..n-1 (the modulo bias is below 2^-50 for these n).
  size_t below(size_t n) { return static_cast<size_t>(rng_.below(n)); }
  bool percent(int p) { return below(100) < static_cast<size_t>(p); }
  std::string_view pick(Words w) { return w[below(w.size())]; }

 private:
  learn::Rng rng_{0};
};

// ---- Winograd frames --------------------------------------------------------------------------
// Each frame has its own things; the agent adjectives only fit an animal and the object
// adjectives only the thing, and the two sets are disjoint over all frames.
constexpr std::string_view kAgents[] = {"dog",  "cat",  "horse",   "cow",   "fox",  "rabbit",
                                        "duck", "pig",  "goat",    "mouse", "bear", "wolf",
                                        "frog", "lion", "chicken", "animal"};

struct Frame {
  std::span<const std::string_view> verbs;  // "didn't cross"
  std::span<const std::string_view> things;
  std::span<const std::string_view> agent_adjs;
  std::span<const std::string_view> object_adjs;
  // The object is an animal too and both roles share their adjectives, so only the place of the
  // cue ("the slow dog" or "the slow cat") says which noun "it" is; the cue is always inline.
  bool same_kind = false;
};

constexpr std::string_view kCrossVerbs[] = {"didn't cross", "couldn't cross"};
constexpr std::string_view kCrossThings[] = {"street", "road", "river", "bridge"};
constexpr std::string_view kCrossAgent[] = {"tired", "sleepy", "scared", "weak"};
constexpr std::string_view kCrossObject[] = {"wide", "busy", "long"};
constexpr std::string_view kJumpVerbs[] = {"didn't jump over", "couldn't jump over"};
constexpr std::string_view kJumpThings[] = {"fence", "wall", "gate", "hedge"};
constexpr std::string_view kJumpAgent[] = {"tired", "lazy", "weak", "sleepy"};
constexpr std::string_view kJumpObject[] = {"tall", "high"};
constexpr std::string_view kEatVerbs[] = {"didn't eat", "couldn't eat"};
constexpr std::string_view kEatThings[] = {"apple", "cake", "soup", "bread", "pie"};
constexpr std::string_view kEatAgent[] = {"full", "sick"};
constexpr std::string_view kEatObject[] = {"hot", "salty", "sour"};
constexpr std::string_view kCarryVerbs[] = {"couldn't carry", "didn't carry", "couldn't lift"};
constexpr std::string_view kCarryThings[] = {"box", "bag", "rock", "table"};
constexpr std::string_view kCarryAgent[] = {"weak", "tired", "young"};
constexpr std::string_view kCarryObject[] = {"heavy", "big"};
constexpr std::string_view kSleepVerbs[] = {"didn't sleep in", "couldn't sleep in"};
constexpr std::string_view kSleepThings[] = {"barn", "house", "bed", "tent"};
constexpr std::string_view kSleepAgent[] = {"scared", "hungry", "excited"};
constexpr std::string_view kSleepObject[] = {"cold", "noisy", "dark", "dirty"};

// Animal and animal: the adjective fits either, so neither "the animal" nor "the thing" can be
// guessed from the kind of adjective; the referent is the noun the cue adjective describes. (With
// only animal-and-thing frames a model can gather both nouns and let the adjective's kind pick
// one after attention, and no single head has to find the antecedent.)
constexpr std::string_view kChaseVerbs[] = {"didn't chase", "couldn't catch", "didn't follow"};
constexpr std::string_view kChaseThings[] = {"cat",     "duck", "mouse", "rabbit",
                                             "chicken", "pig",  "goat",  "frog"};
constexpr std::string_view kChaseAdjs[] = {"slow", "old", "small", "lazy", "tired"};

constexpr Frame kFrames[] = {
    {kChaseVerbs, kChaseThings, kChaseAdjs, kChaseAdjs, true},
    {kCrossVerbs, kCrossThings, kCrossAgent, kCrossObject},
    {kJumpVerbs, kJumpThings, kJumpAgent, kJumpObject},
    {kEatVerbs, kEatThings, kEatAgent, kEatObject},
    {kCarryVerbs, kCarryThings, kCarryAgent, kCarryObject},
    {kSleepVerbs, kSleepThings, kSleepAgent, kSleepObject},
};

uint64_t fnv1a(std::string_view a, std::string_view b) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](std::string_view s) {
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  };
  mix(a);
  mix("/");
  mix(b);
  return h;
}

bool held_out(std::string_view agent, std::string_view thing) {
  // The quick start's sentence must be unseen in training.
  if (agent == "animal" && thing == "street") return true;
  return fnv1a(agent, thing) % 5 == 0;
}

// What each animal or thing does in the sentence after the Winograd sentence ("It barked."),
// a different first word for every noun: to predict the word after that "It" the model has to
// know which noun "it" is, so resolving the pronoun pays off at the pronoun itself. (Without
// this, "it was too tired" only needs a copy of the cue adjective, and no head learns the
// antecedent.)
constexpr std::pair<std::string_view, std::string_view> kBehaviour[] = {
    {"dog", "barked"},        {"cat", "meowed"},      {"horse", "neighed"},
    {"cow", "mooed"},         {"fox", "yelped"},      {"rabbit", "hopped away"},
    {"duck", "quacked"},      {"pig", "oinked"},      {"goat", "bleated"},
    {"mouse", "squeaked"},    {"bear", "growled"},    {"wolf", "howled"},
    {"frog", "croaked"},      {"lion", "roared"},     {"chicken", "clucked"},
    {"animal", "lay down"},   {"street", "rumbled"},  {"road", "stretched far"},
    {"river", "flowed fast"}, {"bridge", "shook"},    {"fence", "creaked"},
    {"wall", "stood firm"},   {"gate", "swung shut"}, {"hedge", "rustled"},
    {"apple", "rolled away"}, {"cake", "crumbled"},   {"soup", "bubbled"},
    {"bread", "crackled"},    {"pie", "steamed"},     {"box", "rattled"},
    {"bag", "ripped"},        {"rock", "sat there"},  {"table", "wobbled"},
    {"barn", "leaked"},       {"house", "groaned"},   {"bed", "sagged"},
    {"tent", "flapped"}};

std::string_view behaviour(std::string_view noun) {
  for (const auto& [n, b] : kBehaviour)
    if (n == noun) return b;
  return "was there";
}

// A sentence (or two) built piece by piece, remembering where the words of interest start.
struct Builder {
  std::string text;
  size_t agent_at = 0, thing_at = 0, pronoun_at = 0, follow_at = 0;
  Builder& add(std::string_view s) {
    text += s;
    return *this;
  }
  size_t mark() const { return text.size(); }
};

// "[The road was very wide. ]The dog didn't cross the [wide ]road because it was too wide. It
// stretched far." Records the offsets of the last agent and thing before "it", of "it" and of
// the "It" that starts the next sentence.
void winograd_sentence(Rng& rng, const Frame& frame, std::string_view agent, std::string_view thing,
                       bool agent_variant, Builder& b) {
  const std::string_view adj = rng.pick(agent_variant ? frame.agent_adjs : frame.object_adjs);
  const bool inline_cue = frame.same_kind || rng.percent(60);
  if (!inline_cue) {
    b.add("The ").add(agent_variant ? agent : thing).add(" was very ").add(adj).add(". ");
  }
  b.add("The ");
  if (inline_cue && agent_variant) b.add(adj).add(" ");
  b.agent_at = b.mark();
  b.add(agent).add(" ").add(rng.pick(frame.verbs)).add(" the ");
  if (inline_cue && !agent_variant) b.add(adj).add(" ");
  b.thing_at = b.mark();
  b.add(thing).add(" because ");
  b.pronoun_at = b.mark();
  b.add("it was too ").add(adj).add(". ");
  b.follow_at = b.mark();
  b.add("It ").add(behaviour(agent_variant ? agent : thing)).add(".");
}

void winograd_story(Rng& rng, std::string& out) {
  // Half the stories use the animal-and-animal frame, half one of the animal-and-thing frames.
  const Frame& frame =
      rng.percent(50) ? kFrames[0] : kFrames[1 + rng.below(std::size(kFrames) - 1)];
  const std::string_view thing = rng.pick(frame.things);
  std::string_view agent = rng.pick(kAgents);
  // A held-out pair stays out in either order (two animals can swap roles).
  while (agent == thing || held_out(agent, thing) || held_out(thing, agent)) {
    agent = rng.pick(kAgents);
  }
  const bool agent_variant = rng.percent(50);
  Builder b;
  if (rng.percent(25)) {
    b.add("One day the ").add(agent).add(" came to the ").add(thing).add(". ");
  }
  winograd_sentence(rng, frame, agent, thing, agent_variant, b);
  const size_t n_follow = rng.below(3);  // 0..2 sentences naming the referent again
  for (size_t i = 0; i < n_follow; ++i) {
    b.add(" ");
    if (agent_variant) {
      switch (rng.below(3)) {
        case 0:
          b.add("The ").add(agent).add(" went home.");
          break;
        case 1:
          b.add("The ").add(agent).add(" went to sleep.");
          break;
        default:
          b.add("So the ").add(agent).add(" stayed home.");
          break;
      }
    } else {
      switch (rng.below(2)) {
        case 0:
          b.add("The ").add(thing).add(" was too much for the ").add(agent).add(".");
          break;
        default:
          b.add("The ").add(agent).add(" looked for another ").add(thing).add(".");
          break;
      }
    }
  }
  out += b.text;
}

// ---- Agreement --------------------------------------------------------------------------------
struct Noun {
  std::string_view one, many;
};
constexpr Noun kNouns[] = {{"dog", "dogs"},   {"cat", "cats"},      {"horse", "horses"},
                           {"cow", "cows"},   {"fox", "foxes"},     {"bird", "birds"},
                           {"duck", "ducks"}, {"pig", "pigs"},      {"goat", "goats"},
                           {"mouse", "mice"}, {"bear", "bears"},    {"wolf", "wolves"},
                           {"frog", "frogs"}, {"lion", "lions"},    {"girl", "girls"},
                           {"boy", "boys"},   {"child", "children"}};
struct Verb {
  std::string_view one, many;  // "sees" (after a singular subject), "see"
};
constexpr Verb kVerbs[] = {{"sees", "see"},
                           {"likes", "like"},
                           {"chases", "chase"},
                           {"helps", "help"},
                           {"watches", "watch"}};
constexpr std::string_view kStates[] = {"happy", "sad",   "small", "brown",
                                        "white", "black", "kind",  "quiet"};
constexpr std::string_view kPlaces[] = {"park", "garden", "school", "beach", "farm", "lake"};

void agreement_sentence(Rng& rng, std::string& out) {
  const Noun& head = kNouns[rng.below(std::size(kNouns))];
  const Noun& other = kNouns[rng.below(std::size(kNouns))];
  const bool head_many = rng.percent(50), other_many = rng.percent(50);
  const bool past = rng.percent(30);
  const std::string_view be = past ? (head_many ? "were" : "was") : (head_many ? "are" : "is");
  out += "The ";
  out += head_many ? head.many : head.one;
  switch (rng.below(3)) {
    case 0: {  // relative clause: the embedded verb agrees with its own subject
      const Verb& v = kVerbs[rng.below(std::size(kVerbs))];
      out += " that the ";
      out += other_many ? other.many : other.one;
      out += " ";
      out += other_many ? v.many : v.one;
      break;
    }
    case 1:
      out += " near the ";
      out += other_many ? other.many : other.one;
      break;
    default:
      out += " at the ";
      out += rng.pick(kPlaces);
      break;
  }
  out += " ";
  out += be;
  out += " ";
  out += rng.pick(kStates);
  out += ".";
}

void agreement_story(Rng& rng, std::string& out) {
  const size_t n = 1 + rng.below(3);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += " ";
    agreement_sentence(rng, out);
  }
}

// ---- Name stories -----------------------------------------------------------------------------
constexpr std::string_view kGirls[] = {"Mia", "Lily", "Emma", "Anna", "Sara", "Lucy", "Zoe", "Amy"};
constexpr std::string_view kBoys[] = {"Tom", "Ben", "Sam", "Leo", "Max", "Jack", "Tim", "Dan"};
constexpr std::string_view kToys[] = {"ball", "kite", "doll", "book", "hat", "cup"};
constexpr std::string_view kColors[] = {"red", "blue", "green", "yellow", "pink"};
constexpr std::string_view kLikes[] = {"play", "run", "sing", "read"};
constexpr std::string_view kPets[] = {"dog", "cat", "bird", "duck", "rabbit", "frog"};

struct Person {
  std::string_view name, he, his, kind;  // "Mia", "she", "her", "girl"
};
Person person(Rng& rng) {
  if (rng.percent(50)) return {rng.pick(kGirls), "she", "her", "girl"};
  return {rng.pick(kBoys), "he", "his", "boy"};
}

std::string capital(std::string_view w) {
  std::string s(w);
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

void name_story(Rng& rng, std::string& out) {
  const Person a = person(rng);
  Person b = person(rng);
  while (b.name == a.name) b = person(rng);
  const std::string_view toy = rng.pick(kToys), place = rng.pick(kPlaces);
  std::string s;
  if (rng.percent(60)) {
    s += "Once upon a time there was a little " + std::string(a.kind) + " named " +
         std::string(a.name) + ".";
  } else {
    s += std::string(a.name) + " was a " + std::string(rng.percent(50) ? "happy" : "kind") + " " +
         std::string(a.kind) + ".";
  }
  const size_t n = 1 + rng.below(5);  // 2..6 sentences in all
  for (size_t i = 0; i < n; ++i) {
    s += " ";
    const std::string A(a.name), B(b.name), He = capital(a.he), his(a.his);
    switch (rng.below(10)) {
      case 0:
        s += A + " had a " + std::string(rng.pick(kColors)) + " " + std::string(toy) + ".";
        break;
      case 1:
        s += "One day " + A + " went to the " + std::string(place) + ".";
        break;
      case 2:
        s += He + " played with " + his + " " + std::string(toy) + ".";
        break;
      case 3:
        s += A + " saw a " + std::string(rng.pick(kPets)) + " at the " + std::string(place) + ".";
        break;
      case 4:
        s += He + " was very happy.";
        break;
      case 5:
        s += A + " gave the " + std::string(toy) + " to " + B + ". " + B + " said thank you.";
        break;
      case 6:
        s += A + " and " + B + " went to the " + std::string(place) + " together.";
        break;
      case 7:
        s += B + " smiled at " + A + ", and " + std::string(a.he) + " smiled back.";
        break;
      case 8:
        s += A + " liked to " + std::string(rng.pick(kLikes)) + ".";
        break;
      default:
        s += "Then " + A + " went home with " + his + " " + std::string(toy) + ".";
        break;
    }
  }
  out += s;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> held_out_pronoun_pairs() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Frame& f : kFrames) {
    for (std::string_view thing : f.things) {
      for (std::string_view agent : kAgents) {
        if (agent != thing && held_out(agent, thing)) out.emplace_back(agent, thing);
      }
    }
  }
  return out;
}

std::string generate_corpus(const CorpusOptions& options) {
  Rng rng(options.seed);
  std::string out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(0, options.n_stories)) * 180);
  for (int64_t i = 0; i < options.n_stories; ++i) {
    if (i > 0) out += "\n\n";
    const size_t kind = rng.below(100);
    if (kind < 45) {
      winograd_story(rng, out);
    } else if (kind < 65) {
      agreement_story(rng, out);
    } else {
      name_story(rng, out);
    }
  }
  return out;
}

std::vector<PronounCase> generate_pronoun_cases(int64_t n, uint64_t seed) {
  // Another stream than generate_corpus for the same seed.
  Rng rng(seed ^ 0x5a17c0de5a17c0deull);
  struct Pair {
    const Frame* frame;
    std::string_view agent, thing;
  };
  std::vector<Pair> held;
  for (const Frame& f : kFrames) {
    for (std::string_view thing : f.things) {
      for (std::string_view agent : kAgents) {
        if (agent != thing && held_out(agent, thing)) held.push_back({&f, agent, thing});
      }
    }
  }
  std::vector<PronounCase> cases;
  cases.reserve(static_cast<size_t>(std::max<int64_t>(0, n)));
  for (int64_t i = 0; i < n; ++i) {
    const Pair& p = held[rng.below(held.size())];
    const bool agent_variant = i % 2 == 0;
    Builder b;
    winograd_sentence(rng, *p.frame, p.agent, p.thing, agent_variant, b);
    PronounCase c;
    c.text = std::move(b.text);
    c.pronoun_offset = b.pronoun_at;
    c.pronoun_length = 2;
    c.follow_offset = b.follow_at;
    c.follow_length = 2;
    const size_t agent_at = b.agent_at, thing_at = b.thing_at;
    c.antecedent_offset = agent_variant ? agent_at : thing_at;
    c.antecedent_length = agent_variant ? p.agent.size() : p.thing.size();
    c.distractor_offset = agent_variant ? thing_at : agent_at;
    c.distractor_length = agent_variant ? p.thing.size() : p.agent.size();
    c.variant = agent_variant ? "agent" : "object";
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace qkv
