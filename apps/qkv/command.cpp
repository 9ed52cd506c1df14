#include "command.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <utility>

namespace qkv::app {

std::vector<Command>& commands() {
  static std::vector<Command> list;
  return list;
}

const CLI::Validator& seed_check() {
  static const CLI::Validator check(
      [](std::string& s) -> std::string {
        uint64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
          return "expected a whole number from 0 to 18446744073709551615, found \"" + s + "\"";
        }
        return "";
      },
      "SEED");
  return check;
}

Registrar::Registrar(std::string name, std::string description, Setup setup) {
  commands().push_back({std::move(name), std::move(description), std::move(setup)});
}

CLI::Option* add_model_option(CLI::App& app, std::string& path, bool builtin_default) {
  return app.add_option("-m,--model", path,
                        std::string("model: GGUF file, HF model folder or llama2.c .bin") +
                            (builtin_default ? " (default: the built-in model)" : ""));
}

CLI::Option* add_tokenizer_option(CLI::App& app, std::string& path) {
  return app.add_option("-t,--tokenizer", path,
                        "tokenizer file (tokenizer.json, vocab.txt, llama2.c tokenizer.bin, GGUF); "
                        "default: the model's own or one beside it");
}

CLI::Option* add_threads_option(CLI::App& app, int& threads) {
  return app.add_option("--threads", threads, "threads (0 = all hardware threads)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
}

void add_sampling_options(CLI::App& app, SamplingParams& sampling) {
  app.add_option("--temp", sampling.temperature, "temperature; 0 = greedy")->capture_default_str();
  app.add_option("--top-k", sampling.top_k, "keep the K most likely tokens; 0 = off")
      ->capture_default_str();
  app.add_option("--top-p", sampling.top_p, "nucleus sampling mass; 1 = off")
      ->capture_default_str();
  app.add_option("--min-p", sampling.min_p, "drop tokens below P x the best; 0 = off")
      ->capture_default_str();
  app.add_option("--repeat-penalty", sampling.repeat_penalty, "repetition penalty; 1 = off")
      ->capture_default_str();
  app.add_option("--repeat-last-n", sampling.repeat_last_n,
                 "tokens the repetition penalty looks back over")
      ->capture_default_str();
}

CLI::Option* add_json_flag(CLI::App& app, bool& json) {
  return app.add_flag("--json", json, "print JSON instead of text");
}

std::string or_list(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += i + 1 == words.size() ? " or " : ", ";
    out += words[i];
  }
  return out;
}

}  // namespace qkv::app
