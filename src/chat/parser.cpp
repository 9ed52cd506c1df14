#include "chat/parser.h"

#include <algorithm>
#include <initializer_list>

#include "chat/lexer.h"

namespace qkv::chat {
namespace {

// Deeper nesting than this (brackets, unary minus chains, blocks) is refused rather than risking
// the C++ stack; real templates nest a dozen levels at most.
constexpr int kMaxDepth = 200;
// Left-associative chains (a + b + c ..., a.b.c ..., x|f|g ...) are built by loops, not by
// recursion, so the nesting guard does not see them, but checking and evaluating them recurses
// once per level (a chain of 20000 terms exhausted the stack). An expression taller than this is
// refused like deep nesting.
constexpr int kMaxHeight = 500;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Body run() {
    Body body = statements({});
    if (cur().type != Tok::End) {
      // statements() stopped at an end tag nothing opened
      fail_at(cur(), "unexpected '" + peek(1).text + "' (no block is open)");
    }
    return body;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p(p) {
      if (++p.depth_ > kMaxDepth) p.fail_at(p.cur(), "template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
    Parser& p;
  };

  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() {
    const Token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }

  int64_t int_literal(const Token& t) const {
    if (t.int_is_2_63)
      fail_at(t, "integer literal " + t.text + " is out of range (beyond 64 bits)");
    return t.int_value;
  }

  [[noreturn]] void fail_at(const Token& t, const std::string& msg) const {
    throw SyntaxError{msg, t.line, t.column};
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::End:
        return "end of template";
      case Tok::VarEnd:
        return "'}}'";
      case Tok::BlockEnd:
        return "'%}'";
      case Tok::String:
        return "string";
      default:
        return "'" + t.text + "'";
    }
  }

  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == Tok::Name && cur().text == name; }

  void expect_op(const char* op) {
    if (!is_op(op)) fail_at(cur(), std::string("expected '") + op + "', found " + describe(cur()));
    next();
  }

  void expect_block_end(const char* tag) {
    if (cur().type != Tok::BlockEnd) {
      fail_at(cur(),
              std::string("expected end of '") + tag + "' tag (%}), found " + describe(cur()));
    }
    next();
  }

  std::string expect_name(const char* what) {
    if (cur().type != Tok::Name)
      fail_at(cur(), std::string("expected ") + what + ", found " + describe(cur()));
    return next().text;
  }

  // "'elif', 'else' or 'endif'"
  static std::string one_of(std::initializer_list<const char*> names) {
    std::string out;
    size_t i = 0;
    for (const char* n : names) {
      if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
      out += std::string("'") + n + "'";
      ++i;
    }
    return out;
  }

  // `e` with its height set from its children's; refused when too tall.
  ExprPtr grown(ExprPtr e) {
    int h = 0;
    auto see = [&h](const ExprPtr& c) {
      if (c) h = std::max(h, c->height);
    };
    see(e->a);
    see(e->b);
    see(e->c);
    for (const ExprPtr& x : e->items) see(x);
    for (const ExprPtr& x : e->keys) see(x);
    for (const Arg& x : e->args) see(x.value);
    e->height = h + 1;
    if (e->height > kMaxHeight) {
      fail_at(cur(), "expression nested too deeply (more than " + std::to_string(kMaxHeight) +
                         " operators or lookups in a chain)");
    }
    return e;
  }

  ExprPtr make(Expr::Kind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  std::unique_ptr<Stmt> make_stmt(Stmt::Kind k, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  // Statements up to a block tag whose name is in `ends` (left unconsumed, positioned at its
  // "{%"), or the end of the template.
  Body statements(std::initializer_list<const char*> ends) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::End) {
        if (ends.size() != 0) fail_at(t, "unexpected end of template; expected " + one_of(ends));
        return body;
      }
      if (t.type == Tok::Data) {
        auto s = make_stmt(Stmt::Kind::Text, t);
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::VarBegin) {
        next();
        auto s = make_stmt(Stmt::Kind::Print, t);
        s->expr = tuple(true);
        if (cur().type != Tok::VarEnd) fail_at(cur(), "expected '}}', found " + describe(cur()));
        next();
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        const Token& name = peek(1);
        if (name.type != Tok::Name) fail_at(name, "expected a statement name after '{%'");
        for (const char* e : ends) {
          if (name.text == e) return body;
        }
        if (name.text.rfind("end", 0) == 0 || name.text == "else" || name.text == "elif") {
          if (ends.size() == 0) fail_at(name, "unexpected '" + name.text + "' (no block is open)");
          fail_at(name, "unexpected '" + name.text + "'; expected " + one_of(ends));
        }
        next();
        body.push_back(statement());
      } else {
        fail_at(t, "unexpected " + describe(t));
      }
    }
  }

  // After "{%": at the statement's name.
  std::unique_ptr<Stmt> statement() {
    const Token& name = next();
    const std::string& n = name.text;
    if (n == "if") return parse_if(name);
    if (n == "for") return parse_for(name);
    if (n == "set") return parse_set(name);
    if (n == "macro") return parse_macro(name);
    if (n == "break" || n == "continue") {
      auto s = make_stmt(n == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, name);
      expect_block_end(n.c_str());
      return s;
    }
    if (n == "filter") return parse_filter_block(name);
    if (n == "call") return parse_call_block(name);
    if (n == "generation") {
      auto s = make_stmt(Stmt::Kind::Generation, name);
      expect_block_end("generation");
      s->body = statements({"endgeneration"});
      end_tag("endgeneration");
      return s;
    }
    fail_at(name, "unsupported construct '" + n + "' (tag {% " + n + " %})");
  }

  // At "{%" of an end tag: consumes "{% name %}".
  void end_tag(const char* name) {
    next();  // {%
    next();  // name
    expect_block_end(name);
  }

  std::unique_ptr<Stmt> parse_if(const Token& at) {
    auto s = make_stmt(Stmt::Kind::If, at);
    s->conds.push_back(expression(false));
    expect_block_end("if");
    s->bodies.push_back(statements({"elif", "else", "endif"}));
    while (true) {
      next();  // {%
      const std::string tag = next().text;
      if (tag == "elif") {
        s->conds.push_back(expression(false));
        expect_block_end("elif");
        s->bodies.push_back(statements({"elif", "else", "endif"}));
      } else if (tag == "else") {
        expect_block_end("else");
        s->else_body = statements({"endif"});
        end_tag("endif");
        return s;
      } else {
        expect_block_end("endif");
        return s;
      }
    }
  }

  std::unique_ptr<Stmt> parse_for(const Token& at) {
    auto s = make_stmt(Stmt::Kind::For, at);
    const bool paren = is_op("(");
    if (paren) next();
    s->targets.push_back(expect_name("a loop variable"));
    while (is_op(",")) {
      next();
      if (cur().type != Tok::Name) break;
      s->targets.push_back(next().text);
    }
    if (paren) expect_op(")");
    if (!is_name("in")) fail_at(cur(), "expected 'in' in for loop, found " + describe(cur()));
    next();
    s->expr = tuple(false, {"recursive"});
    if (is_name("if")) {
      next();
      s->cond = expression(true);
    }
    if (is_name("recursive")) {
      next();
      s->recursive = true;
    }
    expect_block_end("for");
    s->body = statements({"else", "endfor"});
    next();  // {%
    if (next().text == "else") {
      expect_block_end("else");
      s->else_body = statements({"endfor"});
      end_tag("endfor");
    } else {
      expect_block_end("endfor");
    }
    return s;
  }

  std::unique_ptr<Stmt> parse_set(const Token& at) {
    auto s = make_stmt(Stmt::Kind::Set, at);
    s->targets.push_back(expect_name("a variable name after 'set'"));
    if (is_op(".")) {
      next();
      s->attr = expect_name("an attribute name");
    } else {
      while (is_op(",")) {
        next();
        s->targets.push_back(expect_name("a variable name"));
      }
    }
    if (is_op("=")) {
      next();
      s->expr = tuple(true);
      expect_block_end("set");
      return s;
    }
    if (s->targets.size() != 1 || !s->attr.empty()) fail_at(cur(), "expected '=' in set");
    if (is_op("|")) {
      // {% set x | f | g %}body{% endset %}: the filters apply to the body, as a filter block's.
      next();
      s->expr = block_filters(at);
    }
    expect_block_end("set");
    s->kind = Stmt::Kind::SetBlock;
    s->body = statements({"endset"});
    end_tag("endset");
    return s;
  }

  // {% filter f(args) | g %}body{% endfilter %}: the filters apply to a name bound to the body's
  // text when it is rendered (kFilterBlockBody, which no template can spell).
  std::unique_ptr<Stmt> parse_filter_block(const Token& at) {
    auto s = make_stmt(Stmt::Kind::FilterBlock, at);
    s->expr = block_filters(at);
    expect_block_end("filter");
    s->body = statements({"endfilter"});
    end_tag("endfilter");
    return s;
  }

  // "f(args) | g": filters applied to a block's rendered body (a filter block, a filtered set).
  ExprPtr block_filters(const Token& at) {
    auto body = make(Expr::Kind::Name, at);
    body->name = kFilterBlockBody;
    auto f = make(Expr::Kind::Filter, cur());
    f->name = expect_name("a filter name");
    f->a = std::move(body);
    if (is_op("(")) f->args = call_args();
    return filter_expr(std::move(f));
  }

  // "(a, b=1)": a macro's or a caller's parameters, after the "(".
  void parameters(Stmt& s) {
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (is_op(")")) break;
      s.params.push_back(expect_name("a parameter name"));
      if (is_op("=")) {
        next();
        s.defaults.push_back(expression(true));
      } else {
        s.defaults.push_back(nullptr);
      }
    }
    next();
  }

  std::unique_ptr<Stmt> parse_macro(const Token& at) {
    auto s = make_stmt(Stmt::Kind::Macro, at);
    s->name = expect_name("a macro name");
    expect_op("(");
    parameters(*s);
    expect_block_end("macro");
    s->body = statements({"endmacro"});
    end_tag("endmacro");
    note_special_names(*s);
    return s;
  }

  // {% call [(params)] macro(args) %}body{% endcall %}: the macro gets `caller`, a macro whose
  // body is the block's.
  std::unique_ptr<Stmt> parse_call_block(const Token& at) {
    auto s = make_stmt(Stmt::Kind::CallBlock, at);
    s->name = "caller";
    if (is_op("(")) {
      next();
      parameters(*s);
    }
    s->expr = expression(true);
    if (s->expr->kind != Expr::Kind::Call) fail_at(at, "expected call (a macro call after 'call')");
    expect_block_end("call");
    s->body = statements({"endcall"});
    end_tag("endcall");
    note_special_names(*s);
    return s;
  }

  // Whether a macro's body reads varargs, kwargs or caller (anywhere in it, nested macros and
  // call blocks included, as Jinja's check finds them).
  static void special_names(const Expr* e, Stmt& into) {
    if (!e) return;
    if (e->kind == Expr::Kind::Name) {
      into.uses_varargs = into.uses_varargs || e->name == "varargs";
      into.uses_kwargs = into.uses_kwargs || e->name == "kwargs";
      into.uses_caller = into.uses_caller || e->name == "caller";
    }
    special_names(e->a.get(), into);
    special_names(e->b.get(), into);
    special_names(e->c.get(), into);
    for (const auto& x : e->items) special_names(x.get(), into);
    for (const auto& x : e->keys) special_names(x.get(), into);
    for (const auto& x : e->args) special_names(x.value.get(), into);
  }
  static void special_names(const Body& body, Stmt& into) {
    for (const auto& st : body) {
      special_names(st->expr.get(), into);
      special_names(st->cond.get(), into);
      for (const auto& x : st->conds) special_names(x.get(), into);
      for (const auto& b : st->bodies) special_names(b, into);
      special_names(st->body, into);
      special_names(st->else_body, into);
      for (const auto& x : st->defaults) special_names(x.get(), into);
    }
  }
  static void note_special_names(Stmt& s) { special_names(s.body, s); }

  // ---- expressions -------------------------------------------------------------------------

  bool tuple_end(std::initializer_list<const char*> extra) const {
    const Token& t = cur();
    if (t.type == Tok::VarEnd || t.type == Tok::BlockEnd || t.type == Tok::End) return true;
    if (t.type == Tok::Op && t.text == ")") return true;
    if (t.type == Tok::Name) {
      for (const char* e : extra) {
        if (t.text == e) return true;
      }
    }
    return false;
  }

  ExprPtr tuple(bool with_cond, std::initializer_list<const char*> extra = {}) {
    const Token& at = cur();
    std::vector<ExprPtr> items;
    bool comma = false;
    while (true) {
      if (!items.empty()) {
        if (!is_op(",")) break;
        next();
        comma = true;
      }
      if (tuple_end(extra)) break;
      items.push_back(expression(with_cond));
    }
    if (items.empty()) fail_at(cur(), "expected an expression, found " + describe(cur()));
    if (items.size() == 1 && !comma) return std::move(items[0]);
    auto e = make(Expr::Kind::TupleLit, at);
    e->items = std::move(items);
    return grown(std::move(e));
  }

  ExprPtr expression(bool with_cond) { return with_cond ? cond_expr() : or_expr(); }

  ExprPtr cond_expr() {
    DepthGuard guard(*this);
    ExprPtr e = or_expr();
    while (is_name("if")) {
      const Token& at = next();
      auto c = make(Expr::Kind::Cond, at);
      c->a = or_expr();
      c->b = std::move(e);
      if (is_name("else")) {
        next();
        c->c = cond_expr();
      }
      e = grown(std::move(c));
    }
    return e;
  }

  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      auto o = make(Expr::Kind::Or, next());
      o->a = std::move(e);
      o->b = and_expr();
      e = grown(std::move(o));
    }
    return e;
  }

  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      auto o = make(Expr::Kind::And, next());
      o->a = std::move(e);
      o->b = not_expr();
      e = grown(std::move(o));
    }
    return e;
  }

  ExprPtr not_expr() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      auto e = make(Expr::Kind::Not, next());
      e->a = not_expr();
      return grown(std::move(e));
    }
    return compare();
  }

  ExprPtr compare() {
    const Token& at = cur();
    ExprPtr first = math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> rest;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Op && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                                t.text == "<=" || t.text == ">" || t.text == ">=")) {
        ops.push_back(next().text);
      } else if (is_name("in")) {
        next();
        ops.push_back("in");
      } else if (is_name("not") && peek(1).type == Tok::Name && peek(1).text == "in") {
        next();
        next();
        ops.push_back("not in");
      } else {
        break;
      }
      rest.push_back(math1());
    }
    if (ops.empty()) return first;
    auto e = make(Expr::Kind::Compare, at);
    e->a = std::move(first);
    e->ops = std::move(ops);
    e->items = std::move(rest);
    return grown(std::move(e));
  }

  ExprPtr binary(ExprPtr left, const Token& op, ExprPtr right) {
    auto e = make(Expr::Kind::Binary, op);
    e->name = op.text;
    e->a = std::move(left);
    e->b = std::move(right);
    return grown(std::move(e));
  }

  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = next();
      e = binary(std::move(e), op, concat());
    }
    return e;
  }

  ExprPtr concat() {
    ExprPtr e = math2();
    while (is_op("~")) {
      const Token& op = next();
      e = binary(std::move(e), op, math2());
    }
    return e;
  }

  ExprPtr math2() {
    ExprPtr e = pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = next();
      e = binary(std::move(e), op, pow());
    }
    return e;
  }

  ExprPtr pow() {
    ExprPtr e = unary(true);
    while (is_op("**")) {
      const Token& op = next();
      e = binary(std::move(e), op, unary(true));
    }
    return e;
  }

  ExprPtr unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr e;
    if (is_op("-") && peek(1).type == Tok::Int && peek(1).int_is_2_63 &&
        !(peek(2).type == Tok::Op &&
          (peek(2).text == "." || peek(2).text == "[" || peek(2).text == "("))) {
      // -9223372036854775808: the one literal whose magnitude is beyond int64.
      next();
      e = make(Expr::Kind::Literal, cur());
      e->value = Value::integer(next().int_value);
    } else if (is_op("-") || is_op("+")) {
      const Token& at = next();
      e = make(at.text == "-" ? Expr::Kind::Neg : Expr::Kind::Pos, at);
      e->a = unary(false);
      e = grown(std::move(e));
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filter_expr(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token& t = cur();
    switch (t.type) {
      case Tok::Name: {
        next();
        auto e = make(Expr::Kind::Literal, t);
        if (t.text == "true" || t.text == "True") {
          e->value = Value::boolean(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value::boolean(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::Name;
          e->name = t.text;
        }
        return e;
      }
      case Tok::String: {
        std::string s = next().text;
        while (cur().type == Tok::String) s += next().text;
        auto e = make(Expr::Kind::Literal, t);
        e->value = Value::string(std::move(s));
        return e;
      }
      case Tok::Int: {
        auto e = make(Expr::Kind::Literal, next());
        e->value = Value::integer(int_literal(t));
        return e;
      }
      case Tok::Float: {
        auto e = make(Expr::Kind::Literal, next());
        e->value = Value::real(t.float_value);
        return e;
      }
      case Tok::Op:
        if (t.text == "(") {
          next();
          if (is_op(")")) {
            next();
            auto e = make(Expr::Kind::TupleLit, t);
            return e;
          }
          ExprPtr e = tuple(true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          next();
          auto e = make(Expr::Kind::ListLit, t);
          while (!is_op("]")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("]")) break;
            e->items.push_back(expression(true));
          }
          next();
          return grown(std::move(e));
        }
        if (t.text == "{") {
          next();
          auto e = make(Expr::Kind::DictLit, t);
          while (!is_op("}")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("}")) break;
            e->keys.push_back(expression(true));
            expect_op(":");
            e->items.push_back(expression(true));
          }
          next();
          return grown(std::move(e));
        }
        break;
      default:
        break;
    }
    fail_at(t, "unexpected " + describe(t) + " in an expression");
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        const Token& at = next();
        if (cur().type == Tok::Name) {
          auto g = make(Expr::Kind::GetAttr, at);
          g->name = next().text;
          g->a = std::move(e);
          e = grown(std::move(g));
        } else if (cur().type == Tok::Int) {
          auto g = make(Expr::Kind::GetItem, at);
          g->a = std::move(e);
          g->b = make(Expr::Kind::Literal, cur());
          g->b->value = Value::integer(int_literal(next()));
          e = grown(std::move(g));
        } else {
          fail_at(cur(), "expected an attribute name after '.', found " + describe(cur()));
        }
      } else if (is_op("[")) {
        e = subscript(std::move(e));
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        const Token& at = next();
        auto f = make(Expr::Kind::Filter, at);
        f->name = expect_name("a filter name after '|'");
        while (is_op(".")) {
          next();
          f->name += '.';
          f->name += expect_name("a filter name");
        }
        f->a = std::move(e);
        if (is_op("(")) f->args = call_args();
        e = grown(std::move(f));
      } else if (is_name("is")) {
        const Token& at = next();
        auto t = make(Expr::Kind::Test, at);
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        t->name = expect_name("a test name after 'is'");
        t->a = std::move(e);
        const Token& c = cur();
        if (is_op("(")) {
          t->args = call_args();
        } else if ((c.type == Tok::Name || c.type == Tok::String || c.type == Tok::Int ||
                    c.type == Tok::Float || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail_at(c, "you cannot chain multiple tests with 'is'");
          DepthGuard guard(*this);
          t->args.push_back(Arg{"", postfix(primary())});
        }
        e = grown(std::move(t));
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr call(ExprPtr callee) {
    auto e = make(Expr::Kind::Call, cur());
    e->a = std::move(callee);
    e->args = call_args();
    return grown(std::move(e));
  }

  // At "(": positional and keyword arguments up to ")".
  std::vector<Arg> call_args() {
    DepthGuard guard(*this);
    expect_op("(");
    std::vector<Arg> args;
    bool kw_seen = false;
    while (!is_op(")")) {
      if (!args.empty()) expect_op(",");
      if (is_op(")")) break;
      if (is_op("*") || is_op("**"))
        fail_at(cur(), "unsupported construct '*args' / '**kwargs' in a call");
      if (cur().type == Tok::Name && peek(1).type == Tok::Op && peek(1).text == "=") {
        std::string name = next().text;
        next();
        args.push_back(Arg{std::move(name), expression(true)});
        kw_seen = true;
      } else {
        if (kw_seen) fail_at(cur(), "positional argument after a keyword argument");
        args.push_back(Arg{"", expression(true)});
      }
    }
    next();
    return args;
  }

  ExprPtr subscript(ExprPtr obj) {
    const Token& at = next();  // [
    DepthGuard guard(*this);
    ExprPtr parts[3];
    bool slice = false;
    if (is_op(":")) {
      slice = true;
      next();
    } else {
      parts[0] = expression(true);
      if (is_op(":")) {
        slice = true;
        next();
      }
    }
    if (slice) {
      if (!is_op(":") && !is_op("]")) parts[1] = expression(true);
      if (is_op(":")) {
        next();
        if (!is_op("]")) parts[2] = expression(true);
      }
    }
    if (is_op(",")) fail_at(cur(), "unsupported construct 'tuple subscript' (a[x, y])");
    expect_op("]");
    auto e = make(slice ? Expr::Kind::Slice : Expr::Kind::GetItem, at);
    e->a = std::move(obj);
    if (slice) {
      e->b = std::move(parts[0]);
      e->c = std::move(parts[1]);
      e->items.push_back(std::move(parts[2]));
    } else {
      e->b = std::move(parts[0]);
    }
    return grown(std::move(e));
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

Body parse(std::string_view source) {
  return Parser(lex(source)).run();
}

}  // namespace qkv::chat
