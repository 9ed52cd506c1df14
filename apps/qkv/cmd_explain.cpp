// qkv explain [-m MODEL] [-t TOKENIZER] "text" [-n N] [--token T] [--layers 0,3] [--heads all]
//             [--map L:H|L:mean|rollout] [--html F] [--html-sections F.json]
//             [--compare "TEXT B"] [--png F] [--svg F] [--npy F]
//             [--safetensors F] [--npy-stream F] [--json] [--ignore-eos] [--kv f32|f16|q8_0]
//             [--ascii] [--max-floats N] [--overflow rows|heads|top-k] [--top-k K]
//             [--chat [--system S] | --messages CONV.json] [--template F.jinja]
//             [--target TOKEN] [--contrast TOKEN]
//             [--attribute grad|ig [--steps N] [--baseline TOKEN]] [--attention-gradient]
//             [--context-parallel]
//   Captures exact attention maps (recomputed from the fast kernel's log-sum-exp) while the text
//   runs through the model, and, for decoders, while -n tokens are generated. Prints a terminal
//   heatmap of one map (colours on a TTY, ASCII shades otherwise or with --ascii), the per-head
//   "where does it look" scores, and with --token the tokens that token attends to most.
//   --chat: the text is a user turn in the model's chat template (as generate --chat);
//   --messages: a whole conversation in it; --template: another template than the model's. With
//   --chat, the texts of --compare and --patch are user turns in the same template. Models with
//   sliding-window layers get a line saying which layers are local (window) and which global. --target / --contrast name the next token
//   that the methods beyond maps explain (docs/EXPLAIN.md, "Targets"). --attribute and
//   --attention-gradient attribute it to the prompt's tokens and to each head by gradients
//   (docs/EXPLAIN.md, "Attribution"): a summary on the terminal, sections in --html and --json.
//   --context-parallel (under mpirun -np N): the text's tokens are split over the ranks; the maps
//   stay exact and come to rank 0, which prints and writes everything.
//   Without -m, the built-in model (qkv-stories, trained by `qkv train`; docs/TRAINING.md).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "chat_source.h"
#include "command.h"
#include "default_model.h"
#include "qkv/error.h"
#include "qkv/explain.h"
#include "qkv/file_io.h"

namespace qkv::app {
namespace cmd_explain {  // one per subcommand: the qkv target is a unity build
namespace {

// --layers all, --heads all: a value no index takes (-1 would turn a typed -1 into "all").
constexpr int kAll = std::numeric_limits<int>::min();

struct ExplainCliOptions {
  std::string model, tokenizer, text, token, map, compare;
  std::string target, contrast;     // --target, --contrast: the token the methods score
  std::string attribute;            // --attribute grad|ig
  std::optional<int> steps;         // --steps (ig; unset: AttributionOptions' default)
  std::string baseline;             // --baseline (ig; empty: AttributionOptions' default)
  bool attention_gradient = false;  // --attention-gradient
  std::string ablate;               // --ablate zero|mean ("": off)
  std::string patch;                // --patch CORRUPTED ("": off)
  bool logit_lens = false, norm_attention = false;
  std::vector<int> layers{kAll}, heads{kAll};  // [kAll]: every one
  std::string html, html_sections, png, svg, npy, safetensors, npy_stream;
  OverflowKeep overflow = OverflowKeep::top_k;
  int64_t n = 0, max_floats = int64_t(1) << 28;
  int top_k = 16, threads = 0;
  KvType kv = KvType::f32;
  bool json = false, ascii = false, no_special = false, ignore_eos = false;
  bool no_parse_special = false;
  bool chat = false;          // --chat: the text is a user turn in the model's chat template
  std::string system;         // --system: a system message before it
  std::string messages_file;  // --messages: a whole conversation (CONV.json)
  std::string template_file;  // --template: a chat template instead of the model's
  bool context_parallel = false;
};

// One index where a single one is expected (--map L:H, --token #N): a whole number, written as
// digits with an optional minus sign (no spaces, '+', exponent or list); anything else is an error
// naming the flag, the form expected and the whole value given.
int parse_index(const std::string& s, const std::string& full, const char* what,
                const char* expected) {
  const bool digits = !s.empty() &&
                      s.find_first_not_of("0123456789", s[0] == '-' ? 1 : 0) == std::string::npos &&
                      s != "-";
  try {
    if (digits) return std::stoi(s);
  } catch (const std::out_of_range&) {
  }
  throw Error(std::string("--") + what + ": expected " + expected + "; got \"" + full + "\"");
}

// --layers and --heads: "all" or indices like 0,3 (CLI11 splits the list and converts each).
// "all" reaches the program as kAll; the capture options take an empty list for "every one".
std::vector<int> selection(const std::vector<int>& list, const char* flag) {
  if (list.empty() || (list.size() == 1 && list[0] == kAll)) return {};
  if (std::find(list.begin(), list.end(), kAll) != list.end()) {
    throw Error(std::string(flag) + ": \"all\" cannot be combined with indices");
  }
  return list;
}
CLI::Option* add_index_list(CLI::App& app, const std::string& flag, std::vector<int>& list,
                            const std::string& help) {
  return app.add_option(flag, list, help + ": all or indices like 0,3")
      ->delimiter(',')
      ->transform(CLI::Transformer({{"all", std::to_string(kAll)}}).description(""))
      ->check(integer_item_check())
      ->default_str("all");
}

const EnumNames<OverflowKeep> kOverflowNames{
    {"rows", OverflowKeep::rows}, {"heads", OverflowKeep::heads}, {"top-k", OverflowKeep::top_k}};

// --map checked against the model and the selections before anything runs: a layer or head the
// model does not have is out of range, one it has but --layers/--heads left out is not captured.
void check_map_spec(const std::string& spec, const ModelConfig& c, const std::vector<int>& layers,
                    const std::vector<int>& heads) {
  if (spec.empty() || spec == "rollout") return;
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) {
    throw Error("--map: expected L:H, L:mean or rollout; got \"" + spec + "\"");
  }
  const char* form = "L:H, L:mean or rollout with L and H numbers";
  const auto check = [&](int x, int64_t count, const std::vector<int>& selected, const char* what) {
    if (x < 0 || x >= count) {
      throw Error("--map " + spec + ": " + what + " " + std::to_string(x) +
                  " is out of range; the model has " + std::to_string(count) + " " + what +
                  "s (0.." + std::to_string(count - 1) + ")");
    }
    if (!selected.empty() && std::find(selected.begin(), selected.end(), x) == selected.end()) {
      throw Error("--map " + spec + ": " + what + " " + std::to_string(x) +
                  " is not captured; add it to --" + what + "s");
    }
  };
  check(parse_index(spec.substr(0, colon), spec, "map", form), c.n_layer, layers, "layer");
  const std::string h = spec.substr(colon + 1);
  if (h != "mean") check(parse_index(h, spec, "map", form), c.n_head, heads, "head");
}

// The map that --map names, [n, n]: "L:H" (a selected layer and head), "L:mean" (mean of the
// selected heads), "rollout"; default: the mean of the selected heads of the last selected layer.
std::vector<float> chosen_map(const Explanation& e, const std::string& spec, std::string& title) {
  const AttentionCapture& c = e.capture;
  const int64_t n = static_cast<int64_t>(e.ids.size());
  const auto layer_mean = [&](size_t li) {
    std::vector<float> all;
    for (size_t hi = 0; hi < c.heads().size(); ++hi) {
      const std::vector<float> m = c.map(li, hi, n);
      all.insert(all.end(), m.begin(), m.end());
    }
    return mean_map(all, static_cast<int64_t>(c.heads().size()), n);
  };
  const auto index_of = [](const std::vector<int>& v, int x, const char* what) {
    const auto it = std::find(v.begin(), v.end(), x);
    if (it == v.end()) {
      throw Error(std::string("--map: ") + what + " " + std::to_string(x) +
                  " was not captured; add it to --" + what + "s");
    }
    return static_cast<size_t>(it - v.begin());
  };
  if (spec == "rollout") {
    std::vector<float> means;
    for (size_t li = 0; li < c.layers().size(); ++li) {
      const std::vector<float> m = layer_mean(li);
      means.insert(means.end(), m.begin(), m.end());
    }
    title = "attention rollout over the selected layers";
    return attention_rollout(means, static_cast<int64_t>(c.layers().size()), n);
  }
  if (spec.empty()) {
    title = "layer " + std::to_string(c.layers().back()) + ", mean of the selected heads";
    return layer_mean(c.layers().size() - 1);
  }
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) {
    throw Error("--map: expected L:H, L:mean or rollout; got \"" + spec + "\"");
  }
  const char* form = "L:H, L:mean or rollout with L and H numbers";
  const int layer = parse_index(spec.substr(0, colon), spec, "map", form);
  const size_t li = index_of(c.layers(), layer, "layer");
  const std::string h = spec.substr(colon + 1);
  if (h == "mean") {
    title = "layer " + std::to_string(layer) + ", mean of the selected heads";
    return layer_mean(li);
  }
  const int head = parse_index(h, spec, "map", form);
  title = "layer " + std::to_string(layer) + ", head " + std::to_string(head);
  return c.map(li, index_of(c.heads(), head, "head"), n);
}

// Rows of the map that --map names (of any head it averages, of any layer rollout multiplies) that
// the capture's budget did not store: they are zeros in the map, which would read as attention to
// nothing.
std::vector<int64_t> missing_rows(const Explanation& e, const std::string& spec) {
  const AttentionCapture& c = e.capture;
  std::vector<size_t> lis, his;
  for (size_t hi = 0; hi < c.heads().size(); ++hi) his.push_back(hi);
  if (spec == "rollout") {
    for (size_t li = 0; li < c.layers().size(); ++li) lis.push_back(li);
  } else if (spec.empty()) {
    lis.push_back(c.layers().size() - 1);
  } else {  // L:H or L:mean, validated by check_map_spec and captured
    const size_t colon = spec.find(':');
    const int layer = std::stoi(spec.substr(0, colon));
    lis.push_back(static_cast<size_t>(std::find(c.layers().begin(), c.layers().end(), layer) -
                                      c.layers().begin()));
    if (spec.substr(colon + 1) != "mean") {
      const int head = std::stoi(spec.substr(colon + 1));
      his = {static_cast<size_t>(std::find(c.heads().begin(), c.heads().end(), head) -
                                 c.heads().begin())};
    }
  }
  std::vector<int64_t> out;
  for (int64_t row = 0; row < static_cast<int64_t>(e.ids.size()); ++row) {
    bool all = true;
    for (size_t li : lis) {
      for (size_t hi : his) all = all && c.has_row(li, hi, row);
    }
    if (!all) out.push_back(row);
  }
  return out;
}

std::string trimmed(std::string s) {
  s.erase(0, s.find_first_not_of(' '));
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

// The row of --token: "#5" is position 5; otherwise the first token whose text (or label, such as
// "\xe7"), without surrounding spaces, equals it, else the last token of the first word whose
// bytes spell it ("cat" split as " c" "at", 猫 split into its three bytes). "#" and anything but
// a whole number after it ("#include") is text.
int64_t find_token(const Explanation& e, const Tokenizer& tok, const std::string& t) {
  const std::string num = t.size() > 1 && t[0] == '#' ? t.substr(1) : "";
  if (!num.empty() && num != "-" &&
      num.find_first_not_of("0123456789", num[0] == '-' ? 1 : 0) == std::string::npos) {
    const auto n = static_cast<int64_t>(e.tokens.size());
    // More than 18 digits could overflow int64_t; no text has that many tokens.
    const int64_t row = num.size() > 18 ? -1 : std::stoll(num);
    if (row < 0 || row >= n) {
      throw Error("--token: position " + num + " is out of range; the text has " +
                  std::to_string(n) + " tokens (#0..#" + std::to_string(n - 1) + ")");
    }
    return row;
  }
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    if (trimmed(e.tokens[i]) == t) return static_cast<int64_t>(i);
  }
  std::string word;
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    if (i > 0 && e.word_ids[i] != e.word_ids[i - 1]) word.clear();
    word += tok.token_bytes(e.ids[i]);
    const bool word_ends = i + 1 == e.tokens.size() || e.word_ids[i + 1] != e.word_ids[i];
    if (word_ends && trimmed(word) == t) return static_cast<int64_t>(i);
  }
  throw Error("--token: \"" + t +
              "\" is not one of the tokens or words; pass its text or #POSITION");
}

// --html-sections: sections computed elsewhere, a JSON object whose keys are report sections
// (docs/EXPLAIN.md), as (key, JSON text) pairs. Read before the run, so that a missing or
// malformed file fails before the capture and the methods.
std::vector<std::pair<std::string, std::string>> html_sections(const ExplainCliOptions& o) {
  std::vector<std::pair<std::string, std::string>> out;
  if (o.html_sections.empty()) return out;
  if (o.html.empty()) throw Error("--html-sections adds tabs to the --html report; pass --html");
  const nlohmann::json j = nlohmann::json::parse(read_input_file(o.html_sections), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error("--html-sections: " + o.html_sections + " is not a JSON object of report sections");
  }
  // Keys the report writes itself (docs/EXPLAIN.md, "Report data") or that this run's methods
  // write: caught here, before the run, rather than when the page is assembled after it.
  static const char* const kOwn[] = {
      "ids",    "tokens",       "word_ids",         "n_prompt", "layers",
      "heads",  "model",        "layer_windows",    "memory",   "tri",
      "mode",   "maps",         "rollout",          "block",    "blocks",
      "chunks", "blocks_exact", "analyses",         "open",     "compare",
      "inputs", "dropped_rows", "dropped_rows_note"};
  const std::pair<const char*, bool> methods[] = {
      {"attribution", !o.attribute.empty()}, {"attention_gradient", o.attention_gradient},
      {"ablation", !o.ablate.empty()},       {"patching", !o.patch.empty()},
      {"logit_lens", o.logit_lens},          {"direct_logit_attribution", o.logit_lens},
      {"norm_attention", o.norm_attention}};
  for (const auto& [key, value] : j.items()) {
    for (const char* own : kOwn) {
      if (key == own) {
        throw Error("--html-sections: " + o.html_sections + " has the key \"" + key +
                    "\", which the report writes itself; rename it");
      }
    }
    for (const auto& [name, on] : methods) {
      if (on && key == name) {
        throw Error("--html-sections: " + o.html_sections + " has the key \"" + key +
                    "\", which a method of this run writes too; rename it or drop the method");
      }
    }
    out.emplace_back(key, value.dump());
  }
  return out;
}

// What the HTML report opens on: the map of --map (L:H or L:mean; rollout and the default open
// on the last layer's mean, as the terminal heatmap draws them) and the row of --token, so that
// the report and the terminal tell the same story.
ReportOptions report_view(const ExplainCliOptions& o, int64_t token_row) {
  ReportOptions r;
  const size_t colon = o.map.find(':');
  if (colon != std::string::npos) {
    r.layer = std::stoi(o.map.substr(0, colon));  // chosen_map() validated it
    const std::string h = o.map.substr(colon + 1);
    if (h != "mean") r.head = std::stoi(h);
    r.opened_by = "--map " + o.map;
  }
  if (token_row >= 0) {
    r.focus = token_row;
    r.opened_by += std::string(r.opened_by.empty() ? "" : " ") + "--token " + o.token;
  }
  return r;
}

HeatmapOptions::Color terminal_color(bool ascii);

// --compare on the terminal: the second prompt's map of the same --map, and with --token where
// that token looks in each prompt.
void print_compare(const Tokenizer& tok, const Explanation& a, const Explanation& b,
                   const ExplainCliOptions& o, const std::vector<float>& map_a) {
  std::string title;
  const std::vector<float> map_b = chosen_map(b, o.map, title);
  const int64_t nb = static_cast<int64_t>(b.ids.size());
  std::cout << "\ncompared with \"" << o.compare << "\": " << title << "\n"
            << render_heatmap(map_b, nb, b.tokens, {.color = terminal_color(o.ascii)});
  if (o.token.empty()) return;
  const int64_t na = static_cast<int64_t>(a.ids.size());
  const int64_t ra = find_token(a, tok, o.token), rb = find_token(b, tok, o.token);
  const auto top = [](const Explanation& e, const std::vector<float>& m, int64_t n, int64_t row) {
    std::string s;
    for (const Attended& x : top_attended(m, n, row, 3)) {
      char w[16];
      std::snprintf(w, sizeof w, " %.3f", x.weight);
      s += "  \"" + visible_token(e.tokens[static_cast<size_t>(x.key)]) + "\"" + w;
    }
    return s;
  };
  std::cout << "\n\"" << o.token << "\" attends most to, first prompt:" << top(a, map_a, na, ra)
            << "\n\"" << o.token << "\" attends most to, second prompt:" << top(b, map_b, nb, rb)
            << "\n";
}

HeatmapOptions::Color terminal_color(bool ascii) {
  if (ascii || !isatty(STDOUT_FILENO)) return HeatmapOptions::Color::ascii;
  const char* ct = std::getenv("COLORTERM");
  const std::string c = ct ? ct : "";
  return c == "truecolor" || c == "24bit" ? HeatmapOptions::Color::truecolor
                                          : HeatmapOptions::Color::ansi256;
}

void write_file(const std::string& path, const std::string& text) {
  write_output_file(path, text);
}

// --target / --contrast: the token after the prompt that the methods explain (none without
// either flag).
std::optional<ExplainTarget> explain_target(const Model& model, const Explanation& e,
                                            const ExplainCliOptions& o) {
  const bool scored = !o.ablate.empty() || !o.patch.empty() || o.logit_lens;
  if (o.target.empty() && o.contrast.empty() && !scored) return std::nullopt;
  const std::span<const int32_t> prompt(e.ids.data(), static_cast<size_t>(e.n_prompt));
  ExplainTarget t = resolve_target(model, prompt, o.target, o.contrast);
  std::fprintf(stderr, "%s, at position %lld\n", t.note.c_str(),
               static_cast<long long>(t.position));
  if (!scored && o.attribute.empty() && !o.attention_gradient) {
    std::fprintf(stderr,
                 "note: no method scores the target; --target and --contrast are for --ablate, "
                 "--patch, --logit-lens, --attribute and --attention-gradient\n");
  }
  return t;
}

// --attribute grad|ig and --attention-gradient: the target (the greedy next token without
// --target) attributed to the prompt's tokens and, per head, to the attention probabilities.
std::optional<Attribution> attribution(const Model& model, const Explanation& e,
                                       const ExplainCliOptions& o,
                                       const std::optional<ExplainTarget>& target) {
  if (o.steps && o.attribute != "ig") throw Error("--steps needs --attribute ig");
  if (!o.baseline.empty() && o.attribute != "ig") throw Error("--baseline needs --attribute ig");
  if (o.attribute.empty() && !o.attention_gradient) return std::nullopt;
  const std::span<const int32_t> prompt(e.ids.data(), static_cast<size_t>(e.n_prompt));
  const ExplainTarget t = target ? *target : resolve_target(model, prompt, "");
  if (!target) std::fprintf(stderr, "%s\n", t.note.c_str());
  AttributionOptions ao;
  ao.method = o.attribute == "ig" ? AttributionMethod::integrated_gradients
                                  : AttributionMethod::grad_x_input;
  if (o.steps) ao.steps = *o.steps;  // 0 or a negative count is refused by attribute()
  if (!o.baseline.empty()) ao.baseline_token = resolve_token(model, o.baseline, "baseline");
  ao.attention_gradient = o.attention_gradient;
  ao.n_threads = o.threads;
  Attribution a = attribute(model, prompt, t.id, t.contrast_id, ao);
  std::fprintf(stderr, "attribution (%s): %.2f s, %.1f forward-pass equivalents\n",
               std::string(attribution_method_name(a.method)).c_str(), a.seconds,
               a.forward_equivalents());
  return a;
}

// The attribution sections (docs/EXPLAIN.md, "Report data") as (key, JSON text) pairs.
std::vector<std::pair<std::string, std::string>> attribution_sections(
    const std::optional<Attribution>& a) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!a) return out;
  out.emplace_back("attribution", attribution_json(*a));
  if (!a->head_scores.empty()) out.emplace_back("attention_gradient", attention_gradient_json(*a));
  return out;
}

// The methods beyond maps (docs/EXPLAIN.md): each adds a report section (key, JSON text) and a
// few lines of terminal summary.
struct MethodResults {
  std::vector<std::pair<std::string, std::string>> sections;
  std::string summary;
};

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string cost_line(const RerunCost& c) {
  return std::to_string(c.reruns) + " reruns in " + fmt("%.3f", c.seconds) +
         " s = " + fmt("%.1f", c.forward_equivalents) + " forward-pass equivalents (one pass " +
         fmt("%.4f", c.forward_seconds) + " s; in CPU time " + fmt("%.1f", c.cpu_equivalents) +
         "; " + fmt("%.1f", c.layer_equivalents) + " passes' worth of layers)";
}

// The entries of an [L][H] table with the largest |value|, largest first.
std::vector<std::pair<int64_t, int64_t>> top_cells(const std::vector<double>& v, int64_t cols,
                                                   size_t k) {
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return std::abs(v[a]) > std::abs(v[b]); });
  std::vector<std::pair<int64_t, int64_t>> out;
  for (size_t i = 0; i < std::min(k, order.size()); ++i) {
    out.emplace_back(static_cast<int64_t>(order[i]) / cols, static_cast<int64_t>(order[i]) % cols);
  }
  return out;
}

std::string quoted_token(const std::string& t) {
  std::string quoted(1, '"');  // appends: GCC 12 misreads "\"" + std::string as overlapping
  quoted += visible_token(t);
  quoted += '"';
  return quoted;
}

std::string patching_summary(const ActivationPatching& p, const std::vector<std::string>& tokens) {
  const char* score = p.target.has_contrast() ? "logit difference" : "log-probability";
  std::string s = "\nactivation patching: " + p.target.note + "; " + score + " clean " +
                  fmt("%.4f", p.clean_score) + ", corrupted " + fmt("%.4f", p.corrupted_score) +
                  "\n" + cost_line(p.cost) + "\n";
  if (p.degenerate) {
    return s + "the clean and corrupted scores are equal: nothing to restore, every fraction 0\n";
  }
  s += "fraction restored, residual stream (layer_out) by layer and position, largest:\n";
  for (const auto& [l, i] : top_cells(p.layer_position, p.n_tokens, 5)) {
    s += "  layer " + std::to_string(l) + " #" + std::to_string(i) + " " +
         quoted_token(tokens[static_cast<size_t>(i)]) + " " +
         fmt("%.3f", p.layer_position[static_cast<size_t>(l * p.n_tokens + i)]) + "\n";
  }
  s += "fraction restored by a head's output, largest:\n";
  for (const auto& [l, h] : top_cells(p.head, p.n_head, 5)) {
    s += "  layer " + std::to_string(l) + " head " + std::to_string(h) + " " +
         fmt("%.3f", p.head[static_cast<size_t>(l * p.n_head + h)]) + "\n";
  }
  return s;
}

std::string lens_summary(const LogitLens& lens, const DirectLogitAttribution& a) {
  const int64_t last = static_cast<int64_t>(lens.positions.size()) - 1;
  std::string s = "\nlogit lens at the last position, top tokens per layer:\n";
  for (int64_t l = 0; l < lens.n_layer; ++l) {
    s += "  layer " + std::to_string(l) + ":";
    for (int k = 0; k < std::min(lens.top_k, 3); ++k) {
      const LensToken& t = lens.at(l, last, k);
      s += ' ';
      s += quoted_token(t.text);
      s += ' ';
      s += fmt("%.3f", t.p);
    }
    s += "\n";
  }
  s += "direct logit attribution (final-norm scale frozen): " + a.target.note + "; total " +
       fmt("%.4f", a.total) + " = heads + MLPs + embedding " + fmt("%.4f", a.embedding) +
       " + biases and rest " + fmt("%.4f", a.bias_and_rest) + "\nheads by |contribution|:\n";
  for (const auto& [l, h] : top_cells(a.heads, a.n_head, 5)) {
    s += "  layer " + std::to_string(l) + " head " + std::to_string(h) + " " +
         fmt("%+.4f", a.at(l, h)) + "\n";
  }
  s += "MLPs:";
  for (size_t l = 0; l < a.mlp.size(); ++l) {
    s += " " + std::to_string(l) + ": " + fmt("%+.4f", a.mlp[l]);
  }
  return s + "\n";
}

std::string norm_summary(const NormAttention& a, const std::vector<std::string>& tokens) {
  std::string s = "\nnorm-based attention of #" + std::to_string(a.position) + " " +
                  quoted_token(tokens[static_cast<size_t>(a.position)]) +
                  ", largest ||alpha f(v)|| per head (attention weight in brackets):\n";
  for (int64_t l = 0; l < a.n_layer; ++l) {
    for (int64_t h = 0; h < a.n_head; ++h) {
      const size_t row = static_cast<size_t>((l * a.n_head + h) * a.n_tokens);
      int64_t best = 0;
      for (int64_t j = 1; j < a.n_tokens; ++j) {
        if (a.norms[row + j] > a.norms[row + best]) best = j;
      }
      s += "  layer " + std::to_string(l) + " head " + std::to_string(h) + ": #" +
           std::to_string(best) + " " + quoted_token(tokens[static_cast<size_t>(best)]) + " " +
           fmt("%.3f", a.norms[row + best]) + " (" + fmt("%.3f", a.attention[row + best]) + ")\n";
    }
  }
  return s;
}

std::string ablation_summary(const HeadAblation& a) {
  const char* score = a.target.has_contrast() ? "logit difference" : "log-probability";
  std::string s =
      "\nhead ablation (" + std::string(ablation_mode_name(a.mode)) + "): " + a.target.note +
      "; clean " + score + " " + fmt("%.4f", a.baseline) + "\n" + cost_line(a.cost) +
      "\nheads by |delta| (delta < 0: the head helps the target)" + ":\nlayer head     delta\n";
  for (const auto& [l, h] : top_cells(a.delta, a.n_head, 8)) {
    char line[64];
    std::snprintf(line, sizeof line, "%5lld %4lld %+9.4f\n", static_cast<long long>(l),
                  static_cast<long long>(h), a.at(l, h));
    s += line;
  }
  return s;
}

MethodResults run_methods(const Model& model, const Explanation& e,
                          const std::optional<ExplainTarget>& target, const ExplainCliOptions& o,
                          int64_t token_row, const std::string& patch_text,
                          const EncodeOptions& encode) {
  MethodResults r;
  const std::span<const int32_t> prompt(e.ids.data(), static_cast<size_t>(e.n_prompt));
  const InterventionOptions io{.n_threads = o.threads};
  if (!o.ablate.empty()) {
    const HeadAblation a = ablate_heads(
        model, prompt, *target, o.ablate == "mean" ? AblationMode::mean : AblationMode::zero, io);
    r.sections.emplace_back("ablation", section_json(a));
    r.summary += ablation_summary(a);
  }
  if (!o.patch.empty()) {
    const Tokenizer& tok = model.tokenizer();
    const std::vector<int32_t> corrupted = tok.encode(patch_text, encode);
    if (corrupted.size() != prompt.size()) {
      throw Error("--patch: \"" + o.patch + "\" is " + std::to_string(corrupted.size()) +
                  " tokens and the text " + std::to_string(prompt.size()) +
                  "; patching pairs positions, so both need the same token length (qkv tokenize "
                  "shows the tokens)");
    }
    const ActivationPatching p = patch_activations(model, prompt, corrupted, *target, io);
    std::vector<std::string> tokens;
    for (int32_t id : corrupted) tokens.push_back(tok.token_bytes(id));
    r.sections.emplace_back("patching", section_json(p, o.patch, tokens));
    r.summary += patching_summary(p, e.tokens);
  }
  if (o.logit_lens) {
    const LogitLens lens = logit_lens(model, prompt, {}, 5, io);
    const DirectLogitAttribution a = direct_logit_attribution(model, prompt, *target, io);
    r.sections.emplace_back("logit_lens", section_json(lens));
    r.sections.emplace_back("direct_logit_attribution", section_json(a));
    r.summary += lens_summary(lens, a);
  }
  if (o.norm_attention) {
    const int64_t row = token_row;  // -1 without --token: the last prompt row
    if (row >= e.n_prompt) {
      throw Error("--norm-attention: --token " + o.token +
                  " is a generated token; pick a prompt token");
    }
    const NormAttention a = norm_attention(model, prompt, row, io);
    r.sections.emplace_back("norm_attention", section_json(a));
    r.summary += norm_summary(a, e.tokens);
  }
  return r;
}

// An option given an empty value ("--patch \"$CORRUPTED\"" with the variable unset) would read as
// the option left out: no patching, no report, the greedy target, the built-in model, with
// nothing said. Refused instead, naming the option.
void check_no_empty_values(const CLI::App& app) {
  for (const char* name :
       {"--model",      "--tokenizer",     "--target",  "--contrast", "--baseline",
        "--ablate",     "--patch",         "--compare", "--token",    "--map",
        "--html",       "--html-sections", "--png",     "--svg",      "--npy",
        "--npy-stream", "--safetensors",   "--system",  "--template", "--messages",
        "--attribute"}) {
    const CLI::Option* opt = app.get_option_no_throw(name);
    if (opt == nullptr || opt->count() == 0) continue;
    for (const std::string& value : opt->results()) {
      if (value.empty()) {
        throw Error(std::string(name) +
                    " was given an empty value; pass a value or leave the "
                    "option out");
      }
    }
  }
}

// The texts given on the command line are UTF-8, which the tokenizer expects; an invalid byte would
// otherwise fail inside the tokenizer without saying which argument held it, or (--token) be
// echoed raw to the terminal. token_label() leaves valid UTF-8 as it is.
void check_utf8_arguments(const ExplainCliOptions& o) {
  const std::pair<const std::string*, const char*> args[] = {
      {&o.text, "the text"},   {&o.compare, "--compare"},   {&o.patch, "--patch"},
      {&o.target, "--target"}, {&o.contrast, "--contrast"}, {&o.baseline, "--baseline"},
      {&o.token, "--token"},   {&o.system, "--system"},     {&o.map, "--map"}};
  for (const auto& [value, what] : args) {
    const std::string label = token_label(*value);
    if (label == *value) continue;
    const bool token = value == &o.target || value == &o.contrast || value == &o.baseline;
    throw Error(std::string(what) + ": \"" + label +
                "\" is not UTF-8 (the bytes that are not part of a character shown as \\xNN); "
                "pass UTF-8 text" +
                (token ? ", or the token as #ID (qkv tokenize shows the ids)" : ""));
  }
}

// Every file the command writes is its own, and none is a file it reads: "--html x --npy x" would
// leave one output overwritten by the other, "--npy model.gguf" the model. Checked before the
// model loads; paths are compared as the file system resolves them.
void check_distinct_paths(const ExplainCliOptions& o) {
  namespace fs = std::filesystem;
  const auto resolved = [](const std::string& path) {
    std::error_code ec;
    const fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
    return ec ? fs::path(path).lexically_normal() : p;
  };
  std::vector<std::pair<std::string, std::string>> outputs;  // (what, path)
  const auto add = [&](const std::string& path, const std::string& what) {
    if (!path.empty()) outputs.emplace_back(what, path);
  };
  add(o.html, "--html");
  add(o.png, "--png");
  add(o.svg, "--svg");
  add(o.npy, "--npy");
  if (!o.npy.empty()) add(o.npy + ".tokens.json", "--npy's tokens JSON");
  add(o.npy_stream, "--npy-stream");
  if (!o.npy_stream.empty()) add(o.npy_stream + ".tokens.json", "--npy-stream's tokens JSON");
  add(o.safetensors, "--safetensors");
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t k = 0; k < i; ++k) {
      if (resolved(outputs[i].second) == resolved(outputs[k].second)) {
        throw Error(outputs[k].first + " and " + outputs[i].first + " both write " +
                    outputs[i].second + "; give each output its own path");
      }
    }
  }
  const std::pair<const std::string*, const char*> inputs[] = {
      {&o.model, "the model (-m)"},
      {&o.tokenizer, "the tokenizer (-t)"},
      {&o.messages_file, "--messages"},
      {&o.template_file, "--template"},
      {&o.html_sections, "--html-sections"}};
  for (const auto& [what, path] : outputs) {
    for (const auto& [input, name] : inputs) {
      if (!input->empty() && resolved(path) == resolved(*input)) {
        throw Error(what + " would overwrite " + name + ", " + path +
                    ", which this command reads; write elsewhere");
      }
    }
  }
}

// The texts run (after the chat template, when --chat or --messages made one).
struct RunTexts {
  std::string prompt, compare, patch;
};

// --json's "inputs": every input that determines the document (docs/EXPLAIN.md, "--json"), so
// that a saved result says what produced it. Texts as token_label writes them (valid UTF-8).
std::string inputs_json(const ExplainCliOptions& o, const RunTexts& t,
                        const std::optional<ExplainTarget>& target, const EncodeOptions& encode) {
  using nlohmann::json;
  const auto text = [](const std::string& s) { return json(token_label(s)); };
  const auto text_or_null = [&](const std::string& s) { return s.empty() ? json() : text(s); };
  const auto file = [&](const std::string& path) {
    if (path.empty()) return json();
    std::error_code ec;
    const std::filesystem::path abs = std::filesystem::absolute(path, ec);
    return text(ec ? path : abs.string());
  };
  const auto list = [](const std::vector<int>& v) { return v.empty() ? json("all") : json(v); };
  json j;
  j["model_file"] = o.model.empty() ? json("built-in") : file(o.model);
  j["tokenizer_file"] = file(o.tokenizer);
  j["text"] = text_or_null(o.text);
  j["prompt"] = text(t.prompt);
  j["add_special"] = encode.add_special;
  j["parse_special"] = encode.parse_special;
  j["chat"] = o.chat;
  j["system"] = text_or_null(o.system);
  j["template_file"] = file(o.template_file);
  j["messages_file"] = file(o.messages_file);
  j["compare"] = text_or_null(o.compare);
  j["compare_prompt"] = o.compare.empty() ? json() : text(t.compare);
  j["n_predict"] = o.n;
  j["ignore_eos"] = o.ignore_eos;
  j["layers"] = list(selection(o.layers, "--layers"));
  j["heads"] = list(selection(o.heads, "--heads"));
  j["map"] = o.map.empty() ? json("default") : text(o.map);
  j["token"] = text_or_null(o.token);
  j["kv"] = o.kv == KvType::f16 ? "f16" : o.kv == KvType::q8_0 ? "q8_0" : "f32";
  j["max_floats"] = o.max_floats;
  j["overflow"] = o.overflow == OverflowKeep::rows    ? "rows"
                  : o.overflow == OverflowKeep::heads ? "heads"
                                                      : "top-k";
  j["top_k"] = o.top_k;
  j["threads"] = o.threads;
  j["context_parallel"] = o.context_parallel;
  // The methods and the prediction they explain (their sections hold the resolved tokens too).
  j["target"] = text_or_null(o.target);
  j["contrast"] = text_or_null(o.contrast);
  if (target) {
    j["resolved_target"] = {
        {"id", target->id},
        {"text", token_label(target->text)},
        {"position", target->position},
        {"contrast_id", target->contrast_id < 0 ? json() : json(target->contrast_id)},
        {"contrast_text",
         target->contrast_id < 0 ? json() : json(token_label(target->contrast_text))}};
  }
  j["attribute"] = text_or_null(o.attribute);
  j["steps"] = o.attribute == "ig" ? json(o.steps.value_or(AttributionOptions{}.steps)) : json();
  j["baseline"] = text_or_null(o.baseline);
  j["attention_gradient"] = o.attention_gradient;
  j["ablate"] = text_or_null(o.ablate);
  j["patch"] = text_or_null(o.patch);
  j["patch_prompt"] = o.patch.empty() ? json() : text(t.patch);
  j["logit_lens"] = o.logit_lens;
  j["norm_attention"] = o.norm_attention;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void run(const CLI::App& app, const ExplainCliOptions& o) {
  check_no_empty_values(app);
  check_utf8_arguments(o);
  Communicator* const comm = context_parallel_job(app, o.context_parallel);
  const bool chat = o.chat || !o.messages_file.empty();
  if (!o.system.empty() && !o.chat) throw Error("--system needs --chat");
  if (o.chat && !o.messages_file.empty()) {
    throw Error(
        "--chat takes the text as the user turn, --messages a whole conversation; pass one");
  }
  if (!o.messages_file.empty() && !o.text.empty()) {
    throw Error("--messages gives the conversation; pass no text with it");
  }
  if (o.messages_file.empty() && o.text.empty()) throw Error("pass the text to explain");
  check_distinct_paths(o);
  const Model model = load_model_or_default(
      o.model, {.tokenizer_path = o.tokenizer, .require_tokenizer = true, .progress = {}});
  // The outputs are checked now, so that a mistyped path fails before the capture and the
  // methods (minutes of reruns or gradient passes on a large model), not after.
  for (const std::string& path : {o.html, o.png, o.svg, o.npy, o.safetensors}) {
    if (!path.empty()) check_output_path(path);
  }
  const std::vector<std::pair<std::string, std::string>> extra_sections = html_sections(o);
  if (o.n > 0 && !model.is_decoder()) {
    throw Error("-n " + std::to_string(o.n) + ": " + model.describe() +
                " is an encoder; it generates no tokens (its maps are of the text alone)");
  }
  // --chat / --messages: the template writes BOS and the turn markers itself. With --chat the
  // texts of --compare and --patch are user turns in the same template (and system message), so
  // that both prompts differ only where the texts do.
  if (!o.template_file.empty() && !chat) throw Error("--template needs --chat or --messages");
  if (!o.messages_file.empty() && (!o.compare.empty() || !o.patch.empty())) {
    throw Error(
        "--compare and --patch take a user turn to put in the chat template (--chat); with "
        "--messages there is no single turn to replace. Use --chat, or render the conversations "
        "with `qkv template` and pass the texts with --no-special");
  }
  std::optional<ModelChatTemplate> chat_template;
  if (chat) {
    chat_template = o.template_file.empty()
                        ? chat_template_of(model.file())
                        : ModelChatTemplate{read_text(o.template_file, "chat template"), "", ""};
    if (!o.template_file.empty()) {
      try {  // BOS and EOS texts from the model, as `qkv chat --template` does
        const ModelChatTemplate own = chat_template_of(model.file());
        chat_template->bos = own.bos;
        chat_template->eos = own.eos;
      } catch (const Error&) {
      }
    }
  }
  const auto prompt_of = [&](const std::string& user) {
    return chat && !user.empty() ? chat_prompt_text(*chat_template, "", o.system, user) : user;
  };
  const std::string text = o.messages_file.empty()
                               ? prompt_of(o.text)
                               : chat_prompt_text(*chat_template, o.messages_file, "", "");
  // A chat template that renders nothing (an empty --template file) or drops the user's text
  // would explain another prompt than the one asked about.
  const std::string template_name =
      o.template_file.empty() ? "the model's chat template" : "--template " + o.template_file;
  if (chat && text.empty()) {
    throw Error(template_name + " rendered an empty prompt; explain needs a template that " +
                "writes the messages");
  }
  for (const std::string* user : {&o.text, &o.compare, &o.patch}) {
    if (o.chat && !trimmed(*user).empty() &&
        prompt_of(*user).find(trimmed(*user)) == std::string::npos) {
      std::fprintf(stderr, "note: the prompt that %s made does not contain the text \"%s\"\n",
                   template_name.c_str(), token_label(*user).c_str());
    }
  }
  check_map_spec(o.map, model.config(), selection(o.layers, "--layers"),
                 selection(o.heads, "--heads"));
  ExplainOptions eo;
  eo.capture.layers = selection(o.layers, "--layers");
  eo.capture.heads = selection(o.heads, "--heads");
  eo.capture.max_floats = o.max_floats;
  eo.capture.stream_npy = o.npy_stream;
  eo.capture.top_k = o.top_k;
  eo.capture.overflow = o.overflow;
  eo.max_new_tokens = o.n;
  eo.add_special = !o.no_special && !chat;
  eo.parse_special = chat || !o.no_parse_special;
  eo.stop_at_eos = !o.ignore_eos;
  eo.n_threads = o.threads;
  eo.kv_type = o.kv;
  if (!o.html.empty()) eo.capture.block_size = 64;  // the report's long-context overview
  eo.context_parallel = comm;
  if (comm) {
    const std::vector<int32_t> ids = model.tokenizer().encode(
        text, {.add_special = eo.add_special, .parse_special = eo.parse_special});
    check_same_inputs(comm, "qkv explain --context-parallel", model, ids);
  }
  const Explanation e = explain(model, text, eo);
  // --compare: the second prompt, captured the same way (its maps stay in memory only).
  std::optional<Explanation> b;
  if (!o.compare.empty()) {
    ExplainOptions bo = eo;
    bo.capture.stream_npy.clear();
    try {
      b.emplace(explain(model, prompt_of(o.compare), bo));
    } catch (const Error& err) {
      throw Error(std::string(err.what()) + " (in the --compare text)");
    }
  }
  if (!is_output_rank(comm)) return;  // rank 0 holds the maps
  const int64_t n = static_cast<int64_t>(e.ids.size());
  std::fprintf(stderr, "model: %s\n%s\nrun with capture: %lld tokens in %.3f s\n", e.model.c_str(),
               e.capture.memory_note().c_str(), static_cast<long long>(n), e.run_seconds);
  if (comm) {
    std::fprintf(stderr, "context parallel: rank 0 received %lld bytes for the maps\n",
                 static_cast<long long>(e.observer_bytes_received));
  }
  // --token names a row of this text (and of the --compare text, where the terminal shows it
  // too): checked before any method runs or anything is written.
  const int64_t token_row = o.token.empty() ? -1 : find_token(e, model.tokenizer(), o.token);
  if (b && token_row >= 0) {
    try {
      find_token(*b, model.tokenizer(), o.token);
    } catch (const Error& err) {
      throw Error(std::string(err.what()) + " (in the --compare text)");
    }
  }
  // Rows the budget left out: rollout multiplies every layer's maps and cannot do without them;
  // other maps draw them blank, which is said here rather than left to read as no attention.
  const std::vector<int64_t> missing = missing_rows(e, o.map);
  if (!missing.empty() && o.map == "rollout") {
    throw Error("--map rollout: the capture's budget (--max-floats " +
                std::to_string(o.max_floats) + ") left out " +
                std::to_string(e.capture.dropped_rows()) +
                " rows of the selected layers and heads; rollout multiplies every layer's maps "
                "and needs them all: raise --max-floats or select fewer --layers / --heads");
  }
  if (!missing.empty()) {
    std::fprintf(stderr,
                 "note: %zu of %zu rows of the map drawn were not stored (the capture's budget, "
                 "--max-floats %lld): they are blank, which is not attention to nothing\n",
                 missing.size(), e.ids.size(), static_cast<long long>(o.max_floats));
  }
  const std::optional<ExplainTarget> target = explain_target(model, e, o);
  const std::optional<Attribution> attr = attribution(model, e, o, target);
  const EncodeOptions encode{.add_special = eo.add_special, .parse_special = eo.parse_special};
  const MethodResults methods =
      run_methods(model, e, target, o, token_row, prompt_of(o.patch), encode);

  if (e.capture.streamed()) {
    write_tokens_json(o.npy_stream + ".tokens.json", e);
    std::fprintf(stderr, "%s; tokens in %s.tokens.json\n", e.capture.streamed()->note().c_str(),
                 o.npy_stream.c_str());
  }
  if (!o.npy.empty()) {
    write_npy(o.npy, e);
    std::fprintf(stderr, "wrote %s [%zu, %zu, %lld, %lld] and %s.tokens.json\n", o.npy.c_str(),
                 e.capture.layers().size(), e.capture.heads().size(), static_cast<long long>(n),
                 static_cast<long long>(n), o.npy.c_str());
  }
  if (!o.safetensors.empty()) {
    write_safetensors(o.safetensors, e);
    std::fprintf(stderr, "wrote %s\n", o.safetensors.c_str());
  }
  std::string title;
  const std::vector<float> map = chosen_map(e, o.map, title);
  const RunTexts texts{text, o.compare.empty() ? "" : prompt_of(o.compare),
                       o.patch.empty() ? "" : prompt_of(o.patch)};
  if (!o.html.empty()) {
    ReportOptions r = report_view(o, token_row);
    r.sections = extra_sections;
    if (b) r.compare = &*b;
    for (auto& section : attribution_sections(attr)) r.sections.push_back(std::move(section));
    r.sections.insert(r.sections.end(), methods.sections.begin(), methods.sections.end());
    r.sections.emplace_back("inputs", inputs_json(o, texts, target, encode));
    write_html(o.html, e, r);
    std::fprintf(stderr, "wrote %s\n", o.html.c_str());
  }
  if (!o.png.empty()) {
    write_png(o.png, map, n, n > 256 ? 1 : n > 64 ? 4 : 16);
    std::fprintf(stderr, "wrote %s (%s)\n", o.png.c_str(), title.c_str());
  }
  if (!o.svg.empty()) {
    write_file(o.svg, render_svg(map, n, e.tokens));
    std::fprintf(stderr, "wrote %s (%s)\n", o.svg.c_str(), title.c_str());
  }
  if (o.json) {
    // The methods' sections as further keys of the same document, as in the report's data, then
    // the inputs and the --compare text's own document. Appended to the object's text rather than
    // parsed and written again: the maps of a long text are most of it.
    auto keys = attribution_sections(attr);
    keys.insert(keys.end(), methods.sections.begin(), methods.sections.end());
    keys.emplace_back("inputs", inputs_json(o, texts, target, encode));
    if (b) keys.emplace_back("compare", to_json(*b));
    std::string doc = to_json(e);
    doc.pop_back();  // its closing brace
    for (const auto& [key, value] : keys) doc += ",\"" + key + "\":" + value;
    std::cout << doc << "}\n";
    return;
  }

  std::cout << title << " (row = query, column = key)\n";
  // Sliding-window (local) layers see only the last W keys: their maps are banded.
  std::string local, global;
  int64_t window = 0;
  for (size_t l = 0; l < e.layer_windows.size(); ++l) {
    std::string& list = e.layer_windows[l] > 0 ? local : global;
    list += (list.empty() ? "" : ",") + std::to_string(l);
    window = std::max(window, e.layer_windows[l]);
  }
  if (!local.empty()) {
    std::cout << "local layers (sliding window of " << window << " keys): " << local
              << "; global layers: " << (global.empty() ? "none" : global) << "\n";
  }
  std::cout << render_heatmap(map, n, e.tokens, {.color = terminal_color(o.ascii)});
  if (b) print_compare(model.tokenizer(), e, *b, o, map);
  std::cout << methods.summary;
  std::cout << "\nwhere each head looks (mean mass per row; entropy in nats):\n"
            << "layer head  previous  first   self    same-word induction entropy\n";
  for (size_t li = 0; li < e.capture.layers().size(); ++li) {
    for (size_t hi = 0; hi < e.capture.heads().size(); ++hi) {
      const LookScores s = look_scores(e.capture.map(li, hi, n), n, e.ids, e.word_ids);
      if (s.rows == 0) {  // the budget kept none of its rows: no scores, not zeros
        std::printf("%5d %4d  no rows stored (see the capture line)\n", e.capture.layers()[li],
                    e.capture.heads()[hi]);
        continue;
      }
      std::printf("%5d %4d  %8.3f %7.3f %7.3f %9.3f %9.3f %7.3f", e.capture.layers()[li],
                  e.capture.heads()[hi], s.previous, s.first, s.self, s.same_word, s.induction,
                  s.entropy);
      if (s.rows < n)
        std::printf("  (over the %lld of %lld rows stored)", (long long)s.rows, (long long)n);
      std::printf("\n");
    }
  }
  if (token_row >= 0) {
    const int64_t row = token_row;
    std::printf("\ntoken #%lld \"%s\" attends most to:\n", static_cast<long long>(row),
                visible_token(e.tokens[static_cast<size_t>(row)]).c_str());
    if (std::binary_search(missing.begin(), missing.end(), row)) {
      std::printf("  (its row was not stored: the capture's budget, --max-floats, left it out)\n");
    }
    for (const Attended& a : top_attended(map, n, row, 5)) {
      std::printf("  %6.3f  #%lld \"%s\"\n", a.weight, static_cast<long long>(a.key),
                  visible_token(e.tokens[static_cast<size_t>(a.key)]).c_str());
    }
  }
  if (attr) std::cout << "\n" << std::flush << render_attribution(*attr, e.tokens);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ExplainCliOptions>();
  add_model_option(app, o->model, /*builtin_default=*/true);
  add_tokenizer_option(app, o->tokenizer);
  app.add_option("text", o->text, "text to explain (with --chat: the user turn)");
  app.add_option("-n,--n-predict", o->n, "decoders: tokens to generate greedily (maps grow)")
      ->capture_default_str();
  app.add_option("--target", o->target,
                 "decoders: the next token the methods explain: one token's text (a leading "
                 "space is tried as after the prompt) or #ID; default: the greedy next token");
  app.add_option("--contrast", o->contrast,
                 "score logit(target) - logit(CONTRAST) instead of the target's log-probability");
  app.add_option("--attribute", o->attribute,
                 "decoders: attribute the target to the prompt's tokens by gradient x input "
                 "(grad) or integrated gradients (ig); docs/EXPLAIN.md, \"Attribution\"")
      ->check(CLI::IsMember({"grad", "ig"}));
  app.add_option("--steps", o->steps, "--attribute ig: points of the path (default 32)");
  app.add_option("--baseline", o->baseline,
                 "--attribute ig: the path starts from this token's embedding at every position "
                 "(one token's text or #ID; default: the padding token, else unknown, else end "
                 "of text)");
  app.add_flag("--attention-gradient", o->attention_gradient,
               "decoders: attention x gradient of the target per layer and head");
  app.add_option("--ablate", o->ablate,
                 "decoders: ablate every head in turn (zero: its output set to 0; mean: to its "
                 "mean over the prompt) and tabulate the change in the target's score")
      ->check(CLI::IsMember({"zero", "mean"}));
  app.add_option("--patch", o->patch,
                 "decoders: activation patching: CORRUPTED (a prompt of the same token length) "
                 "rerun with one activation from the text's run; the fraction of the score "
                 "difference each layer x position and each head restores");
  app.add_flag("--logit-lens", o->logit_lens,
               "decoders: the logit lens (top tokens of every layer at every position) and the "
               "direct logit attribution of the target to heads, MLPs and embeddings");
  app.add_flag("--norm-attention", o->norm_attention,
               "decoders: norm-based attention ||alpha f(v)|| of the target row (--token's row "
               "when given) per layer and head");
  app.add_option("--token", o->token, "show what this token attends to (text or #POSITION)");
  add_index_list(app, "--layers", o->layers, "layers to capture");
  add_index_list(app, "--heads", o->heads, "heads to capture");
  app.add_option("--map", o->map,
                 "map to draw/export: L:H, L:mean or rollout (default: last layer, head mean)");
  app.add_option("--html", o->html, "write a self-contained interactive HTML report");
  app.add_option("--html-sections", o->html_sections,
                 "add the sections of this JSON object to the --html report, one tab each "
                 "(keys and shapes: docs/EXPLAIN.md)");
  app.add_option("--compare", o->compare,
                 "a second text: its map beside the first's, and in the --html report both side "
                 "by side with their difference");
  app.add_option("--png", o->png, "write the map as a PNG image");
  app.add_option("--svg", o->svg, "write the map as an SVG image with token labels");
  app.add_option("--npy", o->npy,
                 "write all maps as float32 [layers, heads, tokens, tokens] and FILE.tokens.json");
  app.add_option("--npy-stream", o->npy_stream,
                 "write every captured row to FILE as it is produced: the same array as --npy, "
                 "whatever --max-floats keeps in memory, and FILE.tokens.json");
  app.add_option("--safetensors", o->safetensors,
                 "write the maps as safetensors (attn [layers, heads, tokens, tokens], ids)");
  add_json_flag(app, o->json);
  app.add_flag("--ascii", o->ascii, "ASCII shades even on a colour terminal");
  app.add_flag("--no-special", o->no_special, "add no BOS / [CLS] [SEP]");
  app.add_flag("--no-parse-special", o->no_parse_special,
               "tokenize special tokens written in the text (<|endoftext|>) as plain text");
  app.add_flag("--ignore-eos", o->ignore_eos, "keep generating after EOS (-n)");
  app.add_option("--max-floats", o->max_floats, "budget of stored probabilities (4 bytes each)")
      ->capture_default_str();
  add_enum_option(app, "--overflow", o->overflow, "what to keep past the budget", kOverflowNames);
  app.add_option("--top-k", o->top_k, "keys kept per row past the budget (--overflow top-k)")
      ->capture_default_str();
  add_enum_option(app, "--kv", o->kv, "KV cache type", kKvNames);
  add_threads_option(app, o->threads);
  app.add_flag("--chat", o->chat,
               "the text is a user turn: the model's chat template (GGUF tokenizer.chat_template, "
               "HF tokenizer_config.json) makes the prompt, as generate --chat");
  app.add_option("--system", o->system, "with --chat: a system message before the user turn");
  app.add_option("--template", o->template_file,
                 "with --chat or --messages: this Jinja chat template instead of the model's");
  app.add_option("--messages", o->messages_file,
                 "explain a conversation: CONV.json, an array of {\"role\", \"content\"} "
                 "messages, in the model's chat template (a reply follows with -n unless the last "
                 "turn is the assistant's)");
  add_context_parallel_flag(app, o->context_parallel);
  app.callback([o, &app] { run_job(app, o->context_parallel, [&] { run(app, *o); }); });
}

Registrar reg("explain", "Exact attention maps of a text: heatmaps, analyses, exports", setup);

}  // namespace
}  // namespace cmd_explain
}  // namespace qkv::app
