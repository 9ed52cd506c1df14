#include "chat/interp.h"

#include "chat/builtins.h"

#include <cmath>
#include <limits>
#include <unordered_map>

namespace qkv::chat {

const Value* Scope::find(std::string_view name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    for (const auto& [k, v] : s->vars) {
      if (k == name) return &v;
    }
  }
  return nullptr;
}

void Scope::set(const std::string& name, Value v) {
  for (auto& [k, old] : vars) {
    if (k == name) {
      old = std::move(v);
      return;
    }
  }
  vars.emplace_back(name, std::move(v));
}

void Interp::step() {
  if (++steps_ > limits_.max_steps) {
    fail("template ran more than " + std::to_string(limits_.max_steps) +
         " steps (an endless or enormous loop?)");
  }
  check_memory(0);
}

namespace {

// Walks what a value holds, each list and dict once (values share them: `ns.v + [ns.v]` doubles
// the paths through a list at each step but not the lists), finding whether `ns`'s attributes
// are inside and how deep the nesting goes. The values that exist hold no cycle, since
// check_storable refuses the only assignment that could make one.
struct NestingWalk {
  const Dict* ns;
  std::unordered_map<const void*, int> height;  // of each list / dict walked: levels inside it
  bool holds_ns = false;

  int operator()(const Value& v) {
    const void* key = v.is_list() ? static_cast<const void*>(&v.list())
                      : v.is_dict() || v.is(Value::Kind::Namespace)
                          ? static_cast<const void*>(v.dict_ptr().get())
                          : nullptr;
    if (key == nullptr) return 0;
    if (key == ns) holds_ns = true;
    if (const auto it = height.find(key); it != height.end()) return it->second;
    int h = 0;
    if (v.is_list()) {
      for (const Value& x : v.list().items) h = std::max(h, (*this)(x));
    } else {
      for (const auto& kv : v.dict_ref().items) h = std::max(h, (*this)(kv.second));
    }
    height.emplace(key, h + 1);
    return h + 1;
  }
};

}  // namespace

// A namespace attribute is the one place a template can store a value inside a container that
// already exists, so it is where a value could come to contain itself (`set ns.x = ns`), which
// Python prints as "{...}" but which here would print, serialise and free by endless recursion;
// and where a loop could nest values without bound (`set ns.x = [ns.x]`). Both are refused.
void Interp::check_storable(const Value& v, const Value& ns) const {
  NestingWalk walk{&ns.dict_ref(), {}};
  const int levels = walk(v);
  if (walk.holds_ns) {
    fail("cannot store a namespace inside itself (the value assigned contains the namespace)");
  }
  if (levels > limits_.max_nesting) {
    fail("values nested more than " + std::to_string(limits_.max_nesting) + " levels deep");
  }
}

void Interp::work(size_t n) {
  steps_ += n;
  step();
}

Value Interp::output_value(std::string&& text) {
  output_bytes_ -= std::min(output_bytes_, text.size());
  return Value::string(std::move(text));
}

void Interp::check_memory(size_t bytes) const {
  const int64_t values = memory_->bytes.load(std::memory_order_relaxed);
  const uint64_t held = static_cast<uint64_t>(std::max<int64_t>(values, 0)) + output_bytes_;
  if (held + bytes > limits_.max_memory) {
    fail("the template's strings and lists would hold more than " +
         std::to_string(limits_.max_memory) + " bytes");
  }
}

void Interp::check_items(size_t n) const {
  if (n > limits_.max_items) {
    fail("a list in the template would have more than " + std::to_string(limits_.max_items) +
         " elements");
  }
}

void Interp::check_size(size_t bytes) const {
  if (bytes > limits_.max_string) {
    fail("template output or a string in it exceeds " + std::to_string(limits_.max_string) +
         " bytes");
  }
}

std::string Interp::render(const Body& body, std::vector<std::pair<std::string, Value>> vars) {
  const ChargeTo charge(memory_, limits_.max_string);
  output_bytes_ = 0;
  globals_ = std::make_shared<Scope>();
  for (const char* g :
       {"range", "namespace", "raise_exception", "strftime_now", "dict", "cycler", "joiner"}) {
    globals_->set(g, global(g));
  }
  auto top = std::make_shared<Scope>();
  top->parent = globals_;
  top->vars = std::move(vars);
  std::string out;
  exec(body, top, out);
  // A macro's closure holds the scope that holds the macro: break the cycles.
  top->vars.clear();
  globals_->vars.clear();
  return out;
}

Interp::Flow Interp::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    const Flow f = exec(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
  step();
  at(s.line, s.column);
  switch (s.kind) {
    case Stmt::Kind::Text:
      out += s.text;
      output_bytes_ += s.text.size();
      check_size(out.size());
      break;
    case Stmt::Kind::Print: {
      const Value v = eval(*s.expr, scope);
      const size_t before = out.size();
      out += to_str(v);
      output_bytes_ += out.size() - before;
      check_size(out.size());
      check_memory(0);
      break;
    }
    case Stmt::Kind::If:
      for (size_t i = 0; i < s.conds.size(); ++i) {
        if (eval(*s.conds[i], scope).truthy()) return exec(s.bodies[i], scope, out);
      }
      return exec(s.else_body, scope, out);
    case Stmt::Kind::For:
      exec_for(s, scope, out);
      break;
    case Stmt::Kind::Set: {
      Value v = eval(*s.expr, scope);
      if (!s.attr.empty()) {
        const Value* target = scope->find(s.targets[0]);
        if (!target || !target->is(Value::Kind::Namespace)) {
          fail("cannot assign attribute on non-namespace object");
        }
        check_storable(v, *target);
        target->dict_ref().set(s.attr, std::move(v));
      } else if (s.targets.size() == 1) {
        scope->set(s.targets[0], std::move(v));
      } else {
        const std::vector<Value> items = iterate(v);
        if (items.size() != s.targets.size()) {
          fail((items.size() > s.targets.size() ? "too many values to unpack (expected "
                                                : "not enough values to unpack (expected ") +
               std::to_string(s.targets.size()) + ")");
        }
        for (size_t i = 0; i < items.size(); ++i) scope->set(s.targets[i], items[i]);
      }
      break;
    }
    case Stmt::Kind::SetBlock: {
      std::string text;
      exec(s.body, scope, text);
      if (!s.expr) {
        scope->set(s.targets[0], output_value(std::move(text)));
        break;
      }
      auto inner = std::make_shared<Scope>();  // the body, for the filters to read
      inner->parent = scope;
      inner->set(kFilterBlockBody, output_value(std::move(text)));
      scope->set(s.targets[0], eval(*s.expr, inner));
      break;
    }
    case Stmt::Kind::Macro:
      scope->set(s.name, define_macro(s, scope));
      break;
    case Stmt::Kind::Break:
      return Flow::Break;
    case Stmt::Kind::Continue:
      return Flow::Continue;
    case Stmt::Kind::Generation:
      return exec(s.body, scope, out);
    case Stmt::Kind::CallBlock: {
      // The callee and its arguments as in an expression, and caller=: the block as a macro.
      const Expr& e = *s.expr;
      const Value callee = eval(*e.a, scope);
      CallArgs args = eval_args(e.args, scope);
      args.kw.emplace_back("caller", define_macro(s, scope));
      at(e.line, e.column);
      out += to_str(call(callee, args));
      check_size(out.size());
      break;
    }
    case Stmt::Kind::FilterBlock: {
      // The body renders in a scope of its own (a set inside does not leak, as in Jinja).
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      std::string text;
      exec(s.body, inner, text);
      inner->set(kFilterBlockBody, output_value(std::move(text)));
      out += to_str(eval(*s.expr, inner));
      check_size(out.size());
      break;
    }
  }
  return Flow::Normal;
}

void Interp::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  loop_over(s, scope, eval(*s.expr, scope), 1, out);
}

void Interp::loop_over(const Stmt& s, const ScopePtr& scope, const Value& iterable, int depth,
                       std::string& out) {
  std::vector<Value> items = iterate(iterable);
  auto bind = [&](const ScopePtr& iter_scope, const Value& item) {
    if (s.targets.size() == 1) {
      iter_scope->set(s.targets[0], item);
      return;
    }
    const std::vector<Value> parts = iterate(item);
    if (parts.size() != s.targets.size()) {
      fail((parts.size() > s.targets.size() ? "too many values to unpack (expected "
                                            : "not enough values to unpack (expected ") +
           std::to_string(s.targets.size()) + ", got " + std::to_string(parts.size()) + ")");
    }
    for (size_t i = 0; i < parts.size(); ++i) iter_scope->set(s.targets[i], parts[i]);
  };
  if (s.cond) {
    // The loop filter runs first: loop.index and loop.length count the items it kept.
    std::vector<Value> kept;
    for (const Value& item : items) {
      step();
      auto fs = std::make_shared<Scope>();
      fs->parent = scope;
      bind(fs, item);
      if (eval(*s.cond, fs).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  // loop.changed(*values): true when the values differ from the last call's, across iterations.
  auto last_changed = std::make_shared<std::optional<Value>>();
  for (int64_t i = 0; i < n; ++i) {
    step();
    auto iter_scope = std::make_shared<Scope>();
    iter_scope->parent = scope;
    // A fresh dict: its keys are distinct, so they are appended without Dict::set's search.
    auto loop = std::make_shared<Dict>();
    auto& fields = loop->items;
    fields.reserve(12);
    fields.emplace_back("index", Value::integer(i + 1));
    fields.emplace_back("index0", Value::integer(i));
    fields.emplace_back("revindex", Value::integer(n - i));
    fields.emplace_back("revindex0", Value::integer(n - i - 1));
    fields.emplace_back("first", Value::boolean(i == 0));
    fields.emplace_back("last", Value::boolean(i == n - 1));
    fields.emplace_back("length", Value::integer(n));
    fields.emplace_back("depth", Value::integer(depth));
    fields.emplace_back("depth0", Value::integer(depth - 1));
    fields.emplace_back("previtem", i > 0 ? items[static_cast<size_t>(i - 1)]
                                          : Value::undefined("there is no previous item"));
    fields.emplace_back("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)]
                                              : Value::undefined("there is no next item"));
    fields.emplace_back("cycle", Value::callable("loop.cycle", [i](Interp&, CallArgs& a) {
                          if (a.pos.empty()) fail("no items for cycling given");
                          return a.pos[static_cast<size_t>(i) % a.pos.size()];
                        }));
    fields.emplace_back("changed",
                        Value::callable("loop.changed", [last_changed](Interp&, CallArgs& a) {
                          const Value now = Value::list(a.pos, true);
                          if (*last_changed && equal(**last_changed, now)) {
                            return Value::boolean(false);
                          }
                          *last_changed = now;
                          return Value::boolean(true);
                        }));
    if (s.recursive) {
      // loop(children) renders the loop's body over the children, one level deeper, in the
      // scope the loop itself runs in (held weakly: the loop's scope holds this callable).
      std::weak_ptr<Scope> weak = scope;
      const Stmt* stmt = &s;
      loop->call = std::make_shared<Callable>(Callable{
          "loop", [weak, stmt, depth](Interp& in, CallArgs& a) {
            if (a.pos.size() != 1 || !a.kw.empty()) {
              fail("loop() of a recursive loop takes one argument, the items to loop over");
            }
            const ScopePtr outer = weak.lock();
            if (!outer) fail("loop() called after its loop finished");
            if (depth >= in.limits_.max_call_depth) {
              fail("recursive loop nested more than " + std::to_string(in.limits_.max_call_depth) +
                   " levels deep");
            }
            std::string text;
            in.loop_over(*stmt, outer, a.pos[0], depth + 1, text);
            return in.output_value(std::move(text));
          }});
    }
    iter_scope->set("loop", Value::dict(loop));
    bind(iter_scope, items[static_cast<size_t>(i)]);
    const Flow f = exec(s.body, iter_scope, out);
    if (f == Flow::Break) break;
  }
  if (n == 0) exec(s.else_body, scope, out);
}

Value Interp::define_macro(const Stmt& s, const ScopePtr& scope) {
  // The closure keeps the defining scope by weak reference: the scope holds the macro, and a
  // macro lives no longer than the render that defined it.
  std::weak_ptr<Scope> weak = scope;
  const Stmt* def = &s;
  return Value::callable(s.name, [weak, def](Interp& in, CallArgs& args) {
    const ScopePtr parent = weak.lock();
    if (!parent) fail("macro '" + def->name + "' called after its template finished");
    if (args.pos.size() > def->params.size() && !def->uses_varargs) {
      fail("macro '" + def->name + "' takes not more than " + std::to_string(def->params.size()) +
           " argument(s)");
    }
    auto ms = std::make_shared<Scope>();
    ms->parent = parent;
    // Keyword arguments that are no parameter go to kwargs, or `caller` (from a call block), when
    // the body reads them; otherwise they are refused as Jinja refuses them.
    auto kwargs = std::make_shared<Dict>();
    Value caller = Value::undefined("No caller defined");
    for (const auto& [k, v] : args.kw) {
      bool known = false;
      for (const auto& p : def->params) known = known || p == k;
      if (known) continue;
      if (k == "caller" && def->uses_caller) {
        caller = v;
      } else if (k == "caller") {
        fail("macro '" + def->name +
             "' was invoked with two values for the special caller argument. This is most likely "
             "a bug.");
      } else if (def->uses_kwargs) {
        kwargs->set(string_key(k), v);
      } else {
        fail("macro '" + def->name + "' takes no keyword argument '" + k + "'");
      }
    }
    if (def->uses_varargs) {
      std::vector<Value> extra;
      for (size_t i = def->params.size(); i < args.pos.size(); ++i) extra.push_back(args.pos[i]);
      ms->set("varargs", Value::list(std::move(extra), true));
    }
    if (def->uses_kwargs) ms->set("kwargs", Value::dict(kwargs));
    if (def->uses_caller) ms->set("caller", caller);
    for (size_t i = 0; i < def->params.size(); ++i) {
      const std::string& p = def->params[i];
      if (i < args.pos.size()) {
        ms->set(p, args.pos[i]);
      } else if (const Value* kv = args.kwarg(p)) {
        ms->set(p, *kv);
      } else if (def->defaults[i]) {
        ms->set(p, in.eval(*def->defaults[i], ms));
      } else {
        ms->set(p, Value::undefined("parameter '" + p + "' was not provided"));
      }
    }
    if (++in.call_depth_ > in.limits_.max_call_depth) {
      fail("macro calls nested more than " + std::to_string(in.limits_.max_call_depth) +
           " deep (endless recursion?)");
    }
    std::string out;
    const int line = in.line_;
    const int column = in.column_;
    in.exec(def->body, ms, out);
    --in.call_depth_;
    in.at(line, column);
    return in.output_value(std::move(out));
  });
}

Value Interp::call(const Value& callee, CallArgs& args) {
  step();
  if (callee.is_undefined()) callee.require_defined();
  if (callee.is_dict() && callee.dict_ref().call) return callee.dict_ref().call->fn(*this, args);
  if (!callee.is(Value::Kind::Callable)) fail("'" + type_name(callee) + "' object is not callable");
  return callee.fn().fn(*this, args);
}

CallArgs Interp::eval_args(const std::vector<Arg>& list, const ScopePtr& scope) {
  CallArgs args;
  for (const Arg& a : list) {
    if (a.name.empty()) {
      args.pos.push_back(eval(*a.value, scope));
    } else {
      args.kw.emplace_back(a.name, eval(*a.value, scope));
    }
  }
  return args;
}

Value Interp::eval(const Expr& e, const ScopePtr& scope) {
  at(e.line, e.column);
  switch (e.kind) {
    case Expr::Kind::Literal:
      return e.value;
    case Expr::Kind::Name: {
      if (const Value* v = scope->find(e.name)) return *v;
      return Value::undefined("'" + e.name + "' is undefined");
    }
    case Expr::Kind::GetAttr:
      return getattr(eval(*e.a, scope), e.name);
    case Expr::Kind::GetItem: {
      const Value obj = eval(*e.a, scope);
      const Value key = eval(*e.b, scope);
      at(e.line, e.column);
      return getitem(obj, key);
    }
    case Expr::Kind::Slice: {
      const Value obj = eval(*e.a, scope);
      const Value start = e.b ? eval(*e.b, scope) : Value::none();
      const Value stop = e.c ? eval(*e.c, scope) : Value::none();
      const Value step_v = e.items[0] ? eval(*e.items[0], scope) : Value::none();
      at(e.line, e.column);
      return slice(obj, start, stop, step_v);
    }
    case Expr::Kind::Call: {
      const Value callee = eval(*e.a, scope);
      CallArgs args = eval_args(e.args, scope);
      at(e.line, e.column);
      return call(callee, args);
    }
    case Expr::Kind::Filter:
    case Expr::Kind::Test: {
      const Value v = eval(*e.a, scope);
      CallArgs args = eval_args(e.args, scope);
      at(e.line, e.column);
      step();
      if (e.kind == Expr::Kind::Filter) return filter(e.name, v, args);
      return Value::boolean(test(e.name, v, args) != e.negated);
    }
    case Expr::Kind::Neg:
    case Expr::Kind::Pos: {
      const Value v = eval(*e.a, scope);
      v.require_defined();
      if (!v.is_number()) {
        fail(std::string("bad operand type for unary ") + (e.kind == Expr::Kind::Neg ? "-" : "+") +
             ": '" + type_name(v) + "'");
      }
      if (e.kind == Expr::Kind::Pos)
        return v.is(Value::Kind::Bool) ? Value::integer(v.as_int()) : v;
      if (v.is(Value::Kind::Float)) return Value::real(-v.as_float());
      if (v.as_int() == std::numeric_limits<int64_t>::min()) {
        fail("integer overflow (beyond 64 bits)");
      }
      return Value::integer(-v.as_int());
    }
    case Expr::Kind::Not:
      return Value::boolean(!eval(*e.a, scope).truthy());
    case Expr::Kind::And: {
      Value a = eval(*e.a, scope);
      if (!a.truthy()) return a;
      return eval(*e.b, scope);
    }
    case Expr::Kind::Or: {
      Value a = eval(*e.a, scope);
      if (a.truthy()) return a;
      return eval(*e.b, scope);
    }
    case Expr::Kind::Binary: {
      const Value a = eval(*e.a, scope);
      const Value b = eval(*e.b, scope);
      at(e.line, e.column);
      return binary(e.name, a, b);
    }
    case Expr::Kind::Compare: {
      Value left = eval(*e.a, scope);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.items[i], scope);
        at(e.line, e.column);
        const std::string& op = e.ops[i];
        bool r;
        if (op == "==") {
          r = equal(left, right);
        } else if (op == "!=") {
          r = !equal(left, right);
        } else if (op == "<") {
          r = less(left, right);
        } else if (op == ">") {
          r = less(right, left);
        } else if (op == "<=") {
          r = less(left, right) || equal(left, right);
        } else if (op == ">=") {
          r = less(right, left) || equal(left, right);
        } else if (op == "in") {
          r = contains(right, left);
        } else {
          r = !contains(right, left);
        }
        if (!r) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case Expr::Kind::Cond:
      if (eval(*e.a, scope).truthy()) return eval(*e.b, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    case Expr::Kind::ListLit:
    case Expr::Kind::TupleLit: {
      std::vector<Value> items;
      items.reserve(e.items.size());
      for (const auto& x : e.items) items.push_back(eval(*x, scope));
      return Value::list(std::move(items), e.kind == Expr::Kind::TupleLit);
    }
    case Expr::Kind::DictLit: {
      auto d = std::make_shared<Dict>();
      for (size_t i = 0; i < e.keys.size(); ++i) {
        const Value k = eval(*e.keys[i], scope);
        d->set(dict_key(k), eval(*e.items[i], scope));
      }
      return Value::dict(d);
    }
  }
  return {};
}

Value Interp::getattr(const Value& obj, const std::string& name) {
  obj.require_defined();
  if (obj.is(Value::Kind::Namespace)) {
    if (const Value* v = obj.dict_ref().find(name)) return *v;
    return Value::undefined("'jinja2.utils.Namespace object' has no attribute '" + name + "'");
  }
  if (obj.is_list()) {
    const List& l = obj.list();
    for (size_t i = 0; i < l.fields.size() && i < l.items.size(); ++i) {
      if (l.fields[i] == name) return l.items[i];
    }
  }
  Value m = method(obj, name);
  if (!m.is_undefined() || !m.str().empty()) return m;  // a method, or an unsafe one
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_ref().find(name)) return *v;
  }
  return Value::undefined("'" + type_repr(obj) + "' has no attribute '" + name + "'");
}

Value Interp::getitem(const Value& obj, const Value& key) {
  obj.require_defined();
  if (obj.is_dict() && (key.is_string() || key.is(Value::Kind::Int))) {
    if (const Value* v = obj.dict_ref().find(dict_key(key))) return *v;
  } else if ((obj.is_list() || obj.is_string()) && key.is_int_like()) {
    const bool is_list = obj.is_list();
    std::vector<std::string_view> cps;
    if (!is_list) cps = code_points(obj.str());
    const int64_t n =
        is_list ? static_cast<int64_t>(obj.list().items.size()) : static_cast<int64_t>(cps.size());
    int64_t i = key.as_int();
    if (i < 0) i += n;
    if (i >= 0 && i < n) {
      if (is_list) return obj.list().items[static_cast<size_t>(i)];
      return Value::string(std::string(cps[static_cast<size_t>(i)]));
    }
    return Value::undefined(type_repr(obj) + " has no element " + repr(key));
  } else if (obj.is_list() || obj.is_string() || obj.is_dict()) {
    if (!key.is_string()) {
      return Value::undefined(type_repr(obj) + " has no element " + repr(key));
    }
  }
  if (key.is_string()) return getattr(obj, key.str());
  return Value::undefined(type_repr(obj) + " has no element " + repr(key));
}

namespace {

// Python's slice.indices(): clamps start/stop for a sequence of length n.
void slice_indices(int64_t n, const Value& start_v, const Value& stop_v, int64_t step,
                   int64_t& start, int64_t& stop) {
  auto get = [](const Value& v, const char* what) {
    if (!v.is_int_like()) {
      fail(std::string("slice ") + what + " must be an integer or None, not " + type_name(v));
    }
    return v.as_int();
  };
  if (start_v.is_none() || start_v.is_undefined()) {
    start = step < 0 ? n - 1 : 0;
  } else {
    start = get(start_v, "indices");
    if (start < 0) {
      start += n;
      if (start < 0) start = step < 0 ? -1 : 0;
    } else if (start >= n) {
      start = step < 0 ? n - 1 : n;
    }
  }
  if (stop_v.is_none() || stop_v.is_undefined()) {
    stop = step < 0 ? -1 : n;
  } else {
    stop = get(stop_v, "indices");
    if (stop < 0) {
      stop += n;
      if (stop < 0) stop = step < 0 ? -1 : 0;
    } else if (stop >= n) {
      stop = step < 0 ? n - 1 : n;
    }
  }
}

}  // namespace

Value Interp::slice(const Value& obj, const Value& start_v, const Value& stop_v,
                    const Value& step_v) {
  obj.require_defined();
  int64_t step = 1;
  if (!step_v.is_none() && !step_v.is_undefined()) {
    if (!step_v.is_int_like()) fail("slice indices must be integers or None");
    step = step_v.as_int();
    if (step == 0) fail("slice step cannot be zero");
  }
  if (!obj.is_list() && !obj.is_string())
    fail("'" + type_name(obj) + "' object is not subscriptable");
  std::vector<std::string_view> cps;
  if (obj.is_string()) cps = code_points(obj.str());
  const int64_t n = obj.is_list() ? static_cast<int64_t>(obj.list().items.size())
                                  : static_cast<int64_t>(cps.size());
  int64_t start = 0;
  int64_t stop = 0;
  slice_indices(n, start_v, stop_v, step, start, stop);
  std::vector<Value> items;
  std::string s;
  // 128-bit index: start + step may leave int64 for a huge step.
  for (__int128 i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (obj.is_list()) {
      items.push_back(obj.list().items[static_cast<size_t>(i)]);
    } else {
      s += cps[static_cast<size_t>(i)];
    }
  }
  if (obj.is_list()) return Value::list(std::move(items), obj.list().tuple);
  return Value::string(std::move(s));
}

bool Interp::contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::Undefined:
      return false;
    case Value::Kind::String:
      item.require_defined();
      if (!item.is_string()) {
        fail("'in <string>' requires string as left operand, not " + type_name(item));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::List:
      for (const Value& v : container.list().items) {
        if (equal(v, item)) return true;
      }
      return false;
    case Value::Kind::Dict:
      return (item.is_string() || item.is(Value::Kind::Int)) &&
             container.dict_ref().find(dict_key(item)) != nullptr;
    default:
      fail("argument of type '" + type_name(container) + "' is not iterable");
  }
}

std::vector<Value> Interp::iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return {};
    case Value::Kind::List:
      return v.list().items;
    case Value::Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& kv : v.dict_ref().items) keys.push_back(dict_key_value(kv.first));
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> chars;
      for (std::string_view cp : code_points(v.str()))
        chars.push_back(Value::string(std::string(cp)));
      return chars;
    }
    default:
      fail("'" + type_name(v) + "' object is not iterable");
  }
}

namespace {

int64_t checked(__int128 r) {
  if (r > std::numeric_limits<int64_t>::max() || r < std::numeric_limits<int64_t>::min()) {
    fail("integer overflow (beyond 64 bits)");
  }
  return static_cast<int64_t>(r);
}

int64_t floor_div(int64_t a, int64_t b) {
  if (b == 0) fail("integer division or modulo by zero");
  if (a == std::numeric_limits<int64_t>::min() && b == -1)
    fail("integer overflow (beyond 64 bits)");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

Value Interp::binary(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = to_str(a) + to_str(b);
    check_size(s.size());
    return Value::string(std::move(s));
  }
  // str % x formats even an undefined x (it prints as "" through %s).
  if (op == "%" && a.is_string()) return Value::string(py_percent_format(*this, a.str(), b));
  a.require_defined();
  b.require_defined();
  using K = Value::Kind;
  const bool nums = a.is_number() && b.is_number();
  const bool fl = nums && (a.is(K::Float) || b.is(K::Float));
  if (op == "+") {
    if (nums) {
      if (fl) return Value::real(a.as_float() + b.as_float());
      return Value::integer(checked(static_cast<__int128>(a.as_int()) + b.as_int()));
    }
    if (a.is_string() && b.is_string()) {
      check_size(a.str().size() + b.str().size());
      return Value::string(a.str() + b.str());
    }
    if (a.is_list() && b.is_list() && a.list().tuple == b.list().tuple) {
      const size_t n = a.list().items.size() + b.list().items.size();
      check_items(n);
      check_memory(n * sizeof(Value));
      work(n);
      std::vector<Value> items = a.list().items;
      items.insert(items.end(), b.list().items.begin(), b.list().items.end());
      return Value::list(std::move(items), a.list().tuple);
    }
    if (a.is_string() || a.is_list()) {
      fail("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " +
           type_name(a));
    }
  } else if (op == "-") {
    if (nums) {
      if (fl) return Value::real(a.as_float() - b.as_float());
      return Value::integer(checked(static_cast<__int128>(a.as_int()) - b.as_int()));
    }
  } else if (op == "*") {
    if (nums) {
      if (fl) return Value::real(a.as_float() * b.as_float());
      return Value::integer(checked(static_cast<__int128>(a.as_int()) * b.as_int()));
    }
    const Value* seq = a.is_int_like() ? &b : &a;
    const Value* count = a.is_int_like() ? &a : &b;
    if (count->is_int_like() && (seq->is_string() || seq->is_list())) {
      const int64_t n = std::max<int64_t>(0, count->as_int());
      if (seq->is_string()) {
        const size_t unit = seq->str().size();
        if (unit > 0 && static_cast<uint64_t>(n) > limits_.max_string / unit)
          check_size(limits_.max_string + 1);
        check_memory(unit * static_cast<size_t>(n));
        // Doubling: 'x' * 100000000 is 27 copies, not 10^8 appends.
        const size_t total = unit * static_cast<size_t>(n);
        std::string s;
        s.reserve(total);
        if (total > 0) s = seq->str();
        while (s.size() < total) s.append(s, 0, std::min(s.size(), total - s.size()));
        return Value::string(std::move(s));
      }
      const size_t unit = seq->list().items.size();
      if (unit > 0 && static_cast<uint64_t>(n) > limits_.max_items / unit)
        check_items(limits_.max_items + 1);
      const size_t total = unit * static_cast<size_t>(n);
      check_memory(total * sizeof(Value));
      work(total);
      std::vector<Value> items;
      items.reserve(total);
      for (int64_t i = 0; i < n; ++i) {
        items.insert(items.end(), seq->list().items.begin(), seq->list().items.end());
      }
      return Value::list(std::move(items), seq->list().tuple);
    }
    if (a.is_string() || a.is_list() || b.is_string() || b.is_list()) {
      const Value& other = a.is_string() || a.is_list() ? b : a;
      fail("can't multiply sequence by non-int of type '" + type_name(other) + "'");
    }
  } else if (op == "/") {
    if (nums) {
      if (b.as_float() == 0) fail("division by zero");
      return Value::real(a.as_float() / b.as_float());
    }
  } else if (op == "//") {
    if (nums) {
      if (fl) {
        if (b.as_float() == 0) fail("float floor division by zero");
        return Value::real(std::floor(a.as_float() / b.as_float()));
      }
      return Value::integer(floor_div(a.as_int(), b.as_int()));
    }
  } else if (op == "%") {
    if (nums) {
      if (fl) {
        if (b.as_float() == 0) fail("float modulo");
        double r = std::fmod(a.as_float(), b.as_float());
        if (r != 0 && ((r < 0) != (b.as_float() < 0))) r += b.as_float();
        return Value::real(r);
      }
      if (b.as_int() == 0) fail("integer modulo by zero");
      if (b.as_int() == -1) return Value::integer(0);  // INT64_MIN // -1 would overflow
      const int64_t q = floor_div(a.as_int(), b.as_int());
      return Value::integer(a.as_int() - q * b.as_int());
    }
  } else if (op == "**") {
    if (nums) {
      if (fl || b.as_int() < 0) {
        const double x = a.as_float();
        const double y = b.as_float();
        if (x == 0 && y < 0) fail("0.0 cannot be raised to a negative power");
        if (x < 0 && std::isfinite(y) && y != std::floor(y)) {
          fail("a negative number to a fractional power is a complex number, not supported");
        }
        const double r = std::pow(x, y);
        if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) {
          fail("(34, 'Numerical result out of range')");
        }
        return Value::real(r);
      }
      // Squaring: (-1) ** (2^63 - 1) is 63 steps, not 2^63. Only a result beyond 64 bits is an
      // overflow: the squares past the last bit are not taken.
      __int128 r = 1;
      __int128 base = a.as_int();
      for (int64_t e = b.as_int(); e > 0; e >>= 1) {
        if (e & 1) r = checked(r * base);
        if (e > 1) base = checked(base * base);
      }
      return Value::integer(static_cast<int64_t>(r));
    }
  }
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) +
       "'");
}

}  // namespace qkv::chat
