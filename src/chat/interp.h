// Evaluator of the chat-template interpreter: walks the syntax tree with Jinja's scoping (a for
// loop's body is a new scope each iteration; a macro sees the scope it was defined in, as it is
// when called; `set` writes the innermost scope; namespace() objects are the way out) and Jinja's
// Undefined (prints as "", is false, iterates as empty, fails when used further).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "chat/value.h"

namespace qkv::chat {

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value v);
};
using ScopePtr = std::shared_ptr<Scope>;

// Bounds that turn a runaway template into an error instead of a hang or an exhausted machine.
struct Limits {
  // Statements, loop iterations, calls and list elements copied. An empty loop iteration costs
  // about 0.4 us of CPU (EPYC Zen 4, 2026-12), so the budget ends a runaway template in seconds;
  // a conversation of thousands of messages with tools takes well under a million.
  uint64_t max_steps = 10'000'000;
  size_t max_string = size_t{1} << 28;  // bytes in one string or the output (256 MiB)
  int max_call_depth = 200;             // nested macro calls
  int max_nesting = 256;                // lists, dicts and namespaces inside one another
  size_t max_items = size_t{1} << 20;   // elements of one list (1 Mi values, ~120 MiB)
  size_t max_memory = size_t{1} << 30;  // bytes of strings and lists alive at once (1 GiB)
};

class Interp {
 public:
  Interp(Limits limits, std::optional<int64_t> now) : limits_(limits), now_(now) {}

  // Renders `body` with `vars` as the template's variables (over the globals).
  std::string render(const Body& body, std::vector<std::pair<std::string, Value>> vars);

  // Line and column of the expression or statement being evaluated (for error messages).
  int line() const { return line_; }
  int column() const { return column_; }

  Value eval(const Expr& e, const ScopePtr& scope);
  // A call's positional and keyword arguments, evaluated in order.
  CallArgs eval_args(const std::vector<Arg>& args, const ScopePtr& scope);

  // Builtins (chat/builtins.cpp).
  Value filter(const std::string& name, const Value& v, CallArgs& args);
  bool test(const std::string& name, const Value& v, CallArgs& args);
  Value global(std::string_view name);
  Value method(const Value& obj, const std::string& name);  // undefined when none
  std::string strftime(const std::string& format) const;

  // obj.name and obj[key] as Jinja's sandboxed environment resolves them.
  Value getattr(const Value& obj, const std::string& name);
  Value getitem(const Value& obj, const Value& key);
  std::vector<Value> iterate(const Value& v);
  Value call(const Value& callee, CallArgs& args);
  // a op b for a binary operator ("+", "*", "//", ...), with Python's semantics.
  Value binary(const std::string& op, const Value& a, const Value& b);

  void step();
  // Work proportional to n elements (copying a list): a step each.
  void work(size_t n);
  // Refuses to make `bytes` more when what the template's values and the outputs being written
  // hold would exceed max_memory.
  void check_memory(size_t bytes) const;
  void check_size(size_t bytes) const;
  void check_items(size_t n) const;  // a list of n elements
  void check_storable(const Value& v, const Value& ns) const;

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  // One level of a for loop over `iterable`; a recursive loop's loop(items) renders the next.
  void loop_over(const Stmt& s, const ScopePtr& scope, const Value& iterable, int depth,
                 std::string& out);
  Value define_macro(const Stmt& s, const ScopePtr& scope);
  // The text a nested block (macro call, set block, filter block, loop()) rendered, as a value:
  // its bytes move from the output being written to the values.
  Value output_value(std::string&& text);
  Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
  bool contains(const Value& container, const Value& item);
  void at(int line, int column) {
    line_ = line;
    column_ = column;
  }

  Limits limits_;
  std::optional<int64_t> now_;
  uint64_t steps_ = 0;
  std::shared_ptr<MemoryAccount> memory_ = std::make_shared<MemoryAccount>();
  size_t output_bytes_ = 0;  // text in the outputs being written (nested blocks' included)
  int call_depth_ = 0;
  int line_ = 0;
  int column_ = 0;
  ScopePtr globals_;
};

}  // namespace qkv::chat
