// Subcommand registry of the `qkv` binary.
//
// A subcommand lives in its own cmd_NAME.cpp and registers itself with a static Registrar:
//   static qkv::app::Registrar reg("bench", "Measure ...", setup_bench);
// where setup(CLI::App&) adds the options and a callback. Errors are reported by throwing
// qkv::Error (printed as "qkv NAME: message", exit code 1).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
class Validator;
}  // namespace CLI

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

}  // namespace qkv::app
