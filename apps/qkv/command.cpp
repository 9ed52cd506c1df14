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

}  // namespace qkv::app
