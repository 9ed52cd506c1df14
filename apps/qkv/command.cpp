#include "command.h"

#include <utility>

namespace qkv::app {

std::vector<Command>& commands() {
  static std::vector<Command> list;
  return list;
}

Registrar::Registrar(std::string name, std::string description, Setup setup) {
  commands().push_back({std::move(name), std::move(description), std::move(setup)});
}

}  // namespace qkv::app
