#include "command.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <utility>

#include "qkv/explain.h"
#include "qkv/model_file.h"

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

const CLI::Validator& integer_item_check() {
  static const CLI::Validator check(
      [](std::string& s) -> std::string {
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty()) return "expected whole numbers separated by commas, found an empty item";
        if (ec != std::errc() || end != s.data() + s.size()) {
          return "expected a whole number, found \"" + s + "\"";
        }
        return "";
      },
      "");
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

CLI::Option* add_dot_option(CLI::App& app, DotProducts& dot) {
  return add_enum_option(
      app, "--dot", dot,
      "products with quantized weights (all block types but Q2_K, Q3_K): exact = fp32 activations, "
      "as "
      "exact arithmetic on the dequantized weights; int8 = activations rounded to 8-bit blocks "
      "and multiplied in integers as llama.cpp does (faster decode, logits off by about 1-2% of "
      "their standard deviation; docs/PERFORMANCE.md); with --kv q8_0 int8 also scores the "
      "cache in integers during decode (AttentionOptions::int8_scores)",
      kDotNames);
}

CLI::Option* add_context_parallel_flag(CLI::App& app, bool& on) {
  return app.add_flag("--context-parallel", on,
                      "split the prompt over the ranks of an MPI job (mpirun -np N qkv ...): each "
                      "rank runs its share of the tokens, attention passes K/V around the ranks; "
                      "rank 0 prints and writes the output (docs/DISTRIBUTED.md)");
}

Communicator* context_parallel_job(const CLI::App& app, bool on,
                                   const std::vector<JobArgument>& extra) {
  if (!on) return nullptr;
  Communicator& comm = Communicator::world();
  std::vector<JobArgument> args;
  for (const CLI::Option* opt : app.get_options()) {
    const std::string name = opt->get_name();
    if (name == "--threads" || name == "--help") continue;
    std::string value;
    for (const std::string& r : opt->results()) value += (value.empty() ? "" : ",") + r;
    args.push_back({name, opt->count() > 0 ? value : "(not given)"});
  }
  args.insert(args.end(), extra.begin(), extra.end());
  check_same_arguments(comm, "qkv " + app.get_name() + " --context-parallel", args);
  return &comm;
}

void check_same_inputs(Communicator* comm, const std::string& what, const Model& model,
                       std::span<const int32_t> ids) {
  if (!comm) return;
  // The model by what it is and a hash of the first bytes of every tensor (the file's path may
  // differ between nodes; its contents may not).
  uint64_t h = 14695981039346656037ull, bytes = 0;
  for (const TensorInfo& t : model.file().tensors) {
    bytes += t.n_bytes;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(t.n_bytes, 256));
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<uint8_t>(t.data[i])) * 1099511628211ull;
  }
  uint64_t hi = 14695981039346656037ull;
  for (const int32_t id : ids) hi = (hi ^ static_cast<uint32_t>(id)) * 1099511628211ull;
  const std::vector<JobArgument> args = {
      {"the model", "tensor hash " + std::to_string(h) + ", " + std::to_string(bytes) +
                        " bytes of tensors: " + model.describe()},
      {"the prompt's token count", std::to_string(ids.size())},
      {"the prompt's token ids (hash)", std::to_string(hi)},
  };
  check_same_arguments(*comm, what, args);
}

void run_job(const CLI::App& app, bool context_parallel, const std::function<void()>& body) {
  if (!context_parallel) {
    body();
    return;
  }
  try {
    body();
  } catch (const std::exception& e) {
    Communicator& comm = Communicator::world();
    std::fprintf(stderr, "qkv %s: rank %d of %d: %s\n", app.get_name().c_str(), comm.rank(),
                 comm.size(), printable(e.what()).c_str());
    std::fflush(stderr);
    comm.abort(1);
  }
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
