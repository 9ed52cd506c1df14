// qkv: fast, exact, visible self-attention. One binary with subcommands (see command.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <sstream>
#include <string>

#include "command.h"
#include "qkv/error.h"

namespace {

// The library words its errors in the user's terms ("the context length"), never in a CLI's; the
// CLI adds the option that sets the thing named, where the subcommand that ran has one.
std::string with_option_hint(std::string what, const CLI::App* sub) {
  static constexpr std::pair<const char*, const char*> kOptionOf[] = {
      {"context length", "--ctx"},
      {"give a tokenizer file", "--tokenizer"},
      {"thread count", "--threads"},
      {"allow requantizing", "--allow-requantize"},
  };
  if (sub == nullptr) return what;
  for (const auto& [phrase, option] : kOptionOf) {
    if (what.find(phrase) != std::string::npos && sub->get_option_no_throw(option) != nullptr) {
      return what + " (option " + option + ")";
    }
  }
  return what;
}

}  // namespace

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
  // An unknown first word is a mistyped command, not "a subcommand is required".
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(list.begin(), list.end(), [&](const auto& c) { return c.name == argv[1]; })) {
    std::string names;
    for (const auto& cmd : list) names += (names.empty() ? "" : ", ") + cmd.name;
    std::fprintf(stderr, "qkv: unknown command \"%s\"; the commands are %s (qkv --help)\n",
                 qkv::app::printable(argv[1]).c_str(), names.c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's messages quote the arguments as given.
    std::ostringstream err;
    const int rc = app.exit(e, std::cout, err);
    std::fputs(qkv::app::printable(err.str()).c_str(), stderr);
    return rc;
  } catch (const qkv::Error& e) {
    const auto subs = app.get_subcommands();
    std::fprintf(
        stderr, "%s%s\n", prefix().c_str(),
        qkv::app::printable(with_option_hint(e.what(), subs.empty() ? nullptr : subs[0])).c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr,
                 "%sout of memory: an allocation failed (a smaller model, shape, context or batch "
                 "needs less)\n",
                 prefix().c_str());
    return 1;
  } catch (const std::exception& e) {
    // Every expected failure is a qkv::Error; this is a bug, said so rather than shown raw.
    std::fprintf(stderr, "%sinternal error (%s); please report it with the command line\n",
                 prefix().c_str(), qkv::app::printable(e.what()).c_str());
    return 1;
  }
  return 0;
}
