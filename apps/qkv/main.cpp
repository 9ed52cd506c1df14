// qkv: fast, exact, visible self-attention. One binary with subcommands (see command.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "command.h"
#include "qkv/error.h"

int main(int argc, char** argv) {
  CLI::App app{"qkv: fast, exact, visible self-attention"};
  app.require_subcommand(1);
  auto& list = qkv::app::commands();
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (auto& cmd : list) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.description);
    cmd.setup(*sub);
  }
  // "qkv <subcommand>: " before a failure's message (the subcommand that ran, when parsing got
  // that far).
  auto prefix = [&app] {
    const auto subs = app.get_subcommands();
    return subs.empty() ? std::string("qkv: ") : "qkv " + subs[0]->get_name() + ": ";
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const qkv::Error& e) {
    std::fprintf(stderr, "%s%s\n", prefix().c_str(), e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr,
                 "%sout of memory: an allocation failed (a smaller model, shape, context or batch "
                 "needs less)\n",
                 prefix().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: %s\n", e.what());
    return 1;
  }
  return 0;
}
