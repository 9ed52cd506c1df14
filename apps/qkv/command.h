// Subcommand registry of the `qkv` binary, and the options several subcommands share.
//
// A subcommand lives in its own cmd_NAME.cpp and registers itself with a static Registrar:
//   static qkv::app::Registrar reg("bench", "Measure ...", setup_bench);
// where setup(CLI::App&) adds the options and a callback. Errors are reported by throwing
// qkv::Error (printed as "qkv NAME: message", exit code 1).
#pragma once

#include <CLI/CLI.hpp>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/explain.h"
#include "qkv/session.h"

namespace qkv::app {

using Setup = std::function<void(CLI::App&)>;

struct Command {
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<Command>& commands();

struct Registrar {
  Registrar(std::string name, std::string description, Setup setup);
};

// Checks a seed option: a whole number in [0, 2^64). CLI11 alone turns "-1" and "2^64" into
// 2^64 - 1 without a word.
const CLI::Validator& seed_check();

// Checks each item of a comma-separated list of integers that CLI11 splits (explain's --layers
// and --heads): a whole number that fits 64 bits. CLI11 alone reads an empty list ("") as 0.
const CLI::Validator& integer_item_check();

// ---- Shared options: one spelling, one help text, one range check each ----------------------
// -m,--model: a GGUF file, an HF model folder or a llama2.c .bin. `builtin_default`: the command
// runs the built-in model when it is left out (the help says so).
CLI::Option* add_model_option(CLI::App& app, std::string& path, bool builtin_default = false);
// -t,--tokenizer: a tokenizer file; by default the model's own (inside or beside it).
CLI::Option* add_tokenizer_option(CLI::App& app, std::string& path);
// --threads N: 0 = all hardware threads; refused outside [0, 4096].
CLI::Option* add_threads_option(CLI::App& app, int& threads);
// --json: print JSON instead of text.
CLI::Option* add_json_flag(CLI::App& app, bool& json);
// --temp, --top-k, --top-p, --min-p, --repeat-penalty and --repeat-last-n into `sampling`.
void add_sampling_options(CLI::App& app, SamplingParams& sampling);

// ---- Context parallelism (generate, eval, explain under `mpirun -np N`; docs/DISTRIBUTED.md) --
// --context-parallel: split the prompt's tokens over the ranks of the MPI job.
CLI::Option* add_context_parallel_flag(CLI::App& app, bool& on);
// The job's communicator when `on` (null otherwise), once every rank has been found to be given
// the same options as rank 0: every option of `app` but --threads (which may differ per node),
// and `extra` (e.g. a prompt read from standard input). Throws InvalidArgument naming the option
// and the rank that differ.
Communicator* context_parallel_job(const CLI::App& app, bool on,
                                   const std::vector<JobArgument>& extra = {});
// After loading: every rank has the same model (its description, size and a hash of the start
// of each tensor) and the same token ids. Nothing without a communicator.
void check_same_inputs(Communicator* comm, const std::string& what, const Model& model,
                       std::span<const int32_t> ids);
// True on the rank that prints and writes files: rank 0, or the only process.
inline bool is_output_rank(const Communicator* comm) {
  return comm == nullptr || comm->rank() == 0;
}
// Runs the command; in a context-parallel job an error is printed with the rank and ends every
// rank of the job (MPI_Abort), so that none waits for a rank that has stopped.
void run_job(const CLI::App& app, bool context_parallel, const std::function<void()>& body);

// The names of an enum option's values, in the order the help lists them.
template <typename E>
using EnumNames = std::vector<std::pair<std::string, E>>;

// "a, b or c"
std::string or_list(const std::vector<std::string>& words);

// Text for an error message that may hold what the user gave (a path, an argument, a file's
// bytes): valid UTF-8, each byte that is not part of a UTF-8 character written as \xNN (as
// qkv::token_label writes them). A terminal shows the raw bytes as garbage or not at all.
// Inline, as json_error_reason below: chat_source.h uses them in the Python module too, which
// links the library but not the CLI's own sources.
inline std::string printable(std::string_view text) {
  return token_label(text);
}

// A JSON parse error's reason, as printable text, without nlohmann's "[json.exception...] "
// prefix: "syntax error while parsing value - invalid string: ill-formed UTF-8 byte; last read:
// '"a\xff'".
inline std::string json_error_reason(const std::exception& e) {
  std::string_view what = e.what();
  if (what.rfind("[json.exception.", 0) == 0) {
    const size_t end = what.find("] ");
    if (end != std::string_view::npos) what.remove_prefix(end + 2);
  }
  return printable(what);
}

// An option whose value is one of `names`: CLI11 transforms the name into the enum value, and
// anything else is refused with "expected a or b, found "x"". The default is shown by name.
template <typename E>
CLI::Option* add_enum_option(CLI::App& app, const std::string& flags, E& value,
                             const std::string& help, const EnumNames<E>& names) {
  std::vector<std::string> words;
  for (const auto& [name, v] : names) words.push_back(name);
  const std::string list = or_list(words);
  CLI::Option* o = app.add_option(flags, value, help + ": " + list);
  o->transform(CLI::Validator(
      [names, list](std::string& s) -> std::string {
        for (const auto& [name, v] : names) {
          if (name == s) {
            s = std::to_string(static_cast<long long>(v));
            return {};
          }
        }
        return "expected " + list + ", found \"" + s + "\"";
      },
      "", "one of " + list));
  for (const auto& [name, v] : names) {
    if (v == value) o->default_str(name);
  }
  return o;
}

// --kv (eval, generate, explain, bench model, serve): the KV cache's element type.
inline const EnumNames<KvType> kKvNames{
    {"f32", KvType::f32}, {"f16", KvType::f16}, {"q8_0", KvType::q8_0}};

// --dot (generate, eval, perplexity, chat, serve, bench model): how products with quantized
// weights treat the activations (qkv::DotProducts).
inline const EnumNames<DotProducts> kDotNames{{"exact", DotProducts::exact},
                                              {"int8", DotProducts::int8}};
CLI::Option* add_dot_option(CLI::App& app, DotProducts& dot);

// The name of `value` in `names` ("?" when absent).
template <typename E>
std::string enum_name(const EnumNames<E>& names, E value) {
  for (const auto& [name, v] : names) {
    if (v == value) return name;
  }
  return "?";
}

}  // namespace qkv::app
