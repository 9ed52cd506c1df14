// Syntax tree of a chat template: expressions and statements, each with its template line.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "chat/value.h"

namespace qkv::chat {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Arg {
  std::string name;  // empty: positional
  ExprPtr value;
};

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    GetAttr,   // a.name
    GetItem,   // a[b]
    Slice,     // a[b:c:d]; absent parts are null
    Call,      // a(args)
    Filter,    // a | name(args)
    Test,      // a is [not] name(args)
    Neg,       // -a
    Pos,       // +a
    Not,       // not a
    And,       // a and b
    Or,        // a or b
    Binary,    // a op b (+ - * / // % ** ~)
    Compare,   // a op1 b op2 c ... (ops)
    Cond,      // b if a else c (c may be null)
    ListLit,   // [items]
    TupleLit,  // (items)
    DictLit,   // {keys[i]: items[i]}
  };
  Kind kind;
  int line = 0;
  int column = 0;
  int height = 1;  // levels from this node down to its deepest leaf (the parser bounds it)
  Value value;
  std::string name;  // Name, GetAttr, Filter, Test; Binary's operator
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<ExprPtr> keys;
  std::vector<std::string> ops;  // Compare
  std::vector<Arg> args;         // Call, Filter, Test
};

// The name a filter block's filters read its rendered body from (not a valid identifier).
inline constexpr const char* kFilterBlockBody = "(filter block)";

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    Text,      // text
    Print,     // {{ expr }}
    If,        // conds[i] -> bodies[i]; else_body
    For,       // for targets in expr [if cond] body [else else_body]
    Set,       // set targets = expr   |  set target.attr = expr (attr non-empty)
    SetBlock,  // set target [| filters] %}body{% endset: expr, when set, filters the body
    Macro,     // macro name(params = defaults) body
    Break,
    Continue,
    Generation,   // Hugging Face's {% generation %}: renders its body
    FilterBlock,  // filter f(args) | g %}body{% endfilter: expr applies the filters to the body
    CallBlock,    // call(params = defaults) expr %}body{% endcall: expr (a Call) gets caller=body
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;  // For: the loop filter
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attr;
  bool recursive = false;
  // Macro, and CallBlock's caller
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // parallel to params; null when none
  // Names the body reads, which Jinja gives a macro when it does: extra positional arguments
  // (varargs), unknown keyword ones (kwargs), and the body of a {% call %} (caller).
  bool uses_varargs = false;
  bool uses_kwargs = false;
  bool uses_caller = false;
};

}  // namespace qkv::chat
