#include "chat/jinja_interpreter.h"

#include "chat/jinja_builtins.h"
#include "chat/jinja_filters.h"
#include "chat/jinja_ops.h"

namespace lowbit::jinja {
namespace {

// Deep macro recursion would otherwise overflow the C++ stack.
constexpr int kMaxCallDepth = 200;

template <class T>
const T& as(const Expr& e) {
  return static_cast<const T&>(e);
}

template <class T>
const T& as(const Stmt& s) {
  return static_cast<const T&>(s);
}

}  // namespace

const Value* Frame::find(std::string_view name) const {
  for (const Frame* f = this; f; f = f->parent_.get()) {
    const auto it = f->vars_.find(std::string(name));
    if (it != f->vars_.end()) return &it->second;
  }
  return nullptr;
}

Interpreter::~Interpreter() {
  for (const auto& weak : namespaces_) {
    if (auto ns = weak.lock()) ns->attrs = Dict();
  }
}

std::string Interpreter::render(const Dict& variables) {
  auto root = std::make_shared<Frame>(nullptr);
  for (const auto& [k, v] : variables.entries()) {
    if (k.is_string()) root->set(k.as_string(), v);
  }
  out_.clear();
  exec(template_.body, root);
  return std::move(out_);
}

Interpreter::Flow Interpreter::exec(const Body& body, const FramePtr& frame) {
  for (const StmtPtr& stmt : body) {
    const Flow flow = exec_stmt(*stmt, frame);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& stmt, const FramePtr& frame) {
  try {
    switch (stmt.kind) {
      case StmtKind::kText:
        out_ += as<TextStmt>(stmt).text;
        return Flow::kNormal;
      case StmtKind::kOutput:
        out_ += to_str(eval(*as<OutputStmt>(stmt).expr, frame));
        return Flow::kNormal;
      case StmtKind::kIf: {
        const auto& node = as<IfStmt>(stmt);
        for (const auto& [condition, body] : node.branches) {
          if (truthy(eval(*condition, frame))) return exec(body, frame);
        }
        return exec(node.otherwise, frame);
      }
      case StmtKind::kFor:
        return exec_for(as<ForStmt>(stmt), frame);
      case StmtKind::kSet: {
        const auto& node = as<SetStmt>(stmt);
        assign(node.target, eval(*node.value, frame), frame);
        return Flow::kNormal;
      }
      case StmtKind::kSetBlock: {
        const auto& node = as<SetBlockStmt>(stmt);
        Value text(capture(node.body, std::make_shared<Frame>(frame)));
        if (node.filter) text = apply_filter_chain(*node.filter, std::move(text), frame);
        assign(node.target, text, frame);
        return Flow::kNormal;
      }
      case StmtKind::kMacro: {
        const auto& node = as<MacroStmt>(stmt);
        frame->set(node.name, make_macro(node, frame));
        return Flow::kNormal;
      }
      case StmtKind::kCallBlock:
        exec_call_block(as<CallBlockStmt>(stmt), frame);
        return Flow::kNormal;
      case StmtKind::kFilterBlock: {
        const auto& node = as<FilterBlockStmt>(stmt);
        Value text(capture(node.body, std::make_shared<Frame>(frame)));
        out_ += to_str(apply_filter_chain(*node.filter, std::move(text), frame));
        return Flow::kNormal;
      }
      case StmtKind::kWith: {
        const auto& node = as<WithStmt>(stmt);
        auto scope = std::make_shared<Frame>(frame);
        for (const auto& [target, value] : node.assignments)
          assign(target, eval(*value, frame), scope);
        return exec(node.body, scope);
      }
      case StmtKind::kScope:
        return exec(as<ScopeStmt>(stmt).body, std::make_shared<Frame>(frame));
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
    }
  } catch (const TemplateRaised& e) {
    throw SourceError(stmt.offset, e.what(), e.message());
  } catch (const EvalError& e) {
    throw SourceError(stmt.offset, e.what());
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_for(const ForStmt& stmt, const FramePtr& frame) {
  std::vector<Value> items = iterate(eval(*stmt.iterable, frame));
  if (stmt.filter) {
    std::vector<Value> kept;
    for (Value& item : items) {
      auto scope = std::make_shared<Frame>(frame);
      assign(stmt.target, item, scope);
      if (truthy(eval(*stmt.filter, scope))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec(stmt.otherwise, frame);
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    auto scope = std::make_shared<Frame>(frame);
    assign(stmt.target, items[i], scope);
    Dict loop;
    loop.set(Value("index"), Value(i + 1));
    loop.set(Value("index0"), Value(i));
    loop.set(Value("revindex"), Value(n - i));
    loop.set(Value("revindex0"), Value(n - i - 1));
    loop.set(Value("first"), Value(i == 0));
    loop.set(Value("last"), Value(i == n - 1));
    loop.set(Value("length"), Value(n));
    loop.set(Value("depth"), Value(1));
    loop.set(Value("depth0"), Value(0));
    if (i > 0) loop.set(Value("previtem"), items[i - 1]);
    if (i + 1 < n) loop.set(Value("nextitem"), items[i + 1]);
    loop.set(Value("cycle"), Value::callable("loop.cycle", [i](Interpreter&, const CallArgs& args) {
               if (args.positional.empty()) eval_fail("no items for cycling given");
               return args.positional[i % args.positional.size()];
             }));
    scope->set("loop", Value::dict(std::move(loop)));
    if (exec(stmt.body, scope) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

void Interpreter::exec_call_block(const CallBlockStmt& stmt, const FramePtr& frame) {
  const CallBlockStmt* node = &stmt;
  pinned_frames_.push_back(frame);
  std::weak_ptr<Frame> closure = frame;
  const Value caller =
      Value::callable("caller", [node, closure](Interpreter& interp, const CallArgs& args) {
        auto scope = std::make_shared<Frame>(closure.lock());
        for (size_t i = 0; i < node->caller_params.size(); ++i) {
          const Param& param = node->caller_params[i];
          Value v = i < args.positional.size() ? args.positional[i]
                    : param.default_value
                        ? interp.eval(*param.default_value, scope)
                        : Value::undefined("parameter '" + param.name + "' was not provided");
          for (const auto& [k, kv] : args.keyword) {
            if (k == param.name) v = kv;
          }
          scope->set(param.name, v);
        }
        return Value(interp.capture(node->body, scope));
      });
  out_ += to_str(eval_call(*stmt.call, frame, &caller));
}

std::string Interpreter::capture(const Body& body, const FramePtr& frame) {
  std::string saved;
  std::swap(saved, out_);
  exec(body, frame);
  std::swap(saved, out_);
  return saved;
}

void Interpreter::assign(const Target& target, const Value& value, const FramePtr& frame) {
  if (!target.attr.empty()) {
    const Value* ns = frame->find(target.names[0]);
    if (!ns) eval_fail("'{}' is undefined", target.names[0]);
    if (!ns->is_namespace()) eval_fail("cannot assign attribute on non-namespace object");
    ns->as_namespace().attrs.set(Value(target.attr), value);
    return;
  }
  if (!target.is_tuple) {
    frame->set(target.names[0], value);
    return;
  }
  const std::vector<Value> items = iterate(value);
  if (items.size() != target.names.size()) {
    if (items.size() > target.names.size()) {
      eval_fail("too many values to unpack (expected {})", target.names.size());
    }
    eval_fail("not enough values to unpack (expected {}, got {})", target.names.size(),
              items.size());
  }
  for (size_t i = 0; i < items.size(); ++i) frame->set(target.names[i], items[i]);
}

Value Interpreter::eval(const Expr& expr, const FramePtr& frame) {
  try {
    return eval_node(expr, frame);
  } catch (const TemplateRaised& e) {
    throw SourceError(expr.offset, e.what(), e.message());
  } catch (const EvalError& e) {
    throw SourceError(expr.offset, e.what());
  }
}

Value Interpreter::eval_node(const Expr& expr, const FramePtr& frame) {
  switch (expr.kind) {
    case ExprKind::kLiteral:
      return as<LiteralExpr>(expr).value;
    case ExprKind::kName:
      return lookup(as<NameExpr>(expr).name, frame);
    case ExprKind::kList: {
      const auto& node = as<ListExpr>(expr);
      std::vector<Value> items;
      for (const ExprPtr& item : node.items) items.push_back(eval(*item, frame));
      return Value::list(std::move(items), node.is_tuple);
    }
    case ExprKind::kDict: {
      Dict dict;
      for (const auto& [k, v] : as<DictExpr>(expr).items) {
        Value key = eval(*k, frame);
        if (!is_hashable(key)) eval_fail("unhashable type: '{}'", type_name(key));
        dict.set(std::move(key), eval(*v, frame));
      }
      return Value::dict(std::move(dict));
    }
    case ExprKind::kGetattr: {
      const auto& node = as<GetattrExpr>(expr);
      return get_attr(eval(*node.object, frame), node.attr);
    }
    case ExprKind::kGetitem: {
      const auto& node = as<GetitemExpr>(expr);
      Value object = eval(*node.object, frame);
      return get_item(object, eval(*node.key, frame));
    }
    case ExprKind::kSlice: {
      const auto& node = as<SliceExpr>(expr);
      Value object = eval(*node.object, frame);
      auto part = [&](const ExprPtr& e) { return e ? eval(*e, frame) : Value(None{}); };
      return get_slice(object, part(node.start), part(node.stop), part(node.step));
    }
    case ExprKind::kUnary: {
      const auto& node = as<UnaryExpr>(expr);
      return unary_op(node.op, eval(*node.operand, frame));
    }
    case ExprKind::kBinary:
      return eval_binary(as<BinaryExpr>(expr), frame);
    case ExprKind::kCompare: {
      const auto& node = as<CompareExpr>(expr);
      Value left = eval(*node.first, frame);
      for (const auto& [op, right_expr] : node.rest) {
        Value right = eval(*right_expr, frame);
        if (!compare(op, left, right)) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case ExprKind::kCall:
      return eval_call(as<CallExpr>(expr), frame, nullptr);
    case ExprKind::kFilter: {
      const auto& node = as<FilterExpr>(expr);
      Value operand = node.operand ? eval(*node.operand, frame) : *block_input_;
      return apply_filter(*this, node.name, operand, eval_args(node.args, frame));
    }
    case ExprKind::kTest: {
      const auto& node = as<TestExpr>(expr);
      Value operand = eval(*node.operand, frame);
      return Value(apply_test(*this, node.name, operand, eval_args(node.args, frame)) !=
                   node.negated);
    }
    case ExprKind::kCondition: {
      const auto& node = as<ConditionExpr>(expr);
      if (truthy(eval(*node.condition, frame))) return eval(*node.then, frame);
      if (node.otherwise) return eval(*node.otherwise, frame);
      return Value::undefined(
          "the inline if-expression evaluated to false and no else section was defined.");
    }
  }
  eval_fail("internal error: unknown expression");
}

Value Interpreter::eval_binary(const BinaryExpr& expr, const FramePtr& frame) {
  Value left = eval(*expr.left, frame);
  // and/or return an operand, as in Python.
  if (expr.op == BinaryOp::kAnd) return truthy(left) ? eval(*expr.right, frame) : left;
  if (expr.op == BinaryOp::kOr) return truthy(left) ? left : eval(*expr.right, frame);
  Value right = eval(*expr.right, frame);
  return binary_op(expr.op, left, right);
}

CallArgs Interpreter::eval_args(const Args& args, const FramePtr& frame) {
  CallArgs out;
  for (const ExprPtr& e : args.positional) out.positional.push_back(eval(*e, frame));
  for (const auto& [k, e] : args.keyword) out.keyword.emplace_back(k, eval(*e, frame));
  return out;
}

Value Interpreter::eval_call(const CallExpr& expr, const FramePtr& frame, const Value* caller) {
  const Value callee = eval(*expr.callee, frame);
  CallArgs args = eval_args(expr.args, frame);
  if (caller) args.keyword.emplace_back("caller", *caller);
  try {
    if (callee.is_undefined()) fail_undefined(callee);
    if (!callee.is_callable()) eval_fail("'{}' object is not callable", type_name(callee));
    return callee.as_callable().call(*this, args);
  } catch (const TemplateRaised& e) {
    throw SourceError(expr.offset, e.what(), e.message());
  } catch (const EvalError& e) {
    throw SourceError(expr.offset, e.what());
  }
}

Value Interpreter::lookup(const std::string& name, const FramePtr& frame) {
  if (const Value* v = frame->find(name)) return *v;
  if (const Value* v = builtin_global(name)) return *v;
  return missing_name(name);
}

Value Interpreter::apply_filter_chain(const Expr& chain, Value input, const FramePtr& frame) {
  const Value* saved = block_input_;
  block_input_ = &input;
  Value result = eval(chain, frame);
  block_input_ = saved;
  return result;
}

Value Interpreter::make_macro(const MacroStmt& macro, const FramePtr& closure) {
  const MacroStmt* node = &macro;
  pinned_frames_.push_back(closure);
  std::weak_ptr<Frame> weak = closure;
  return Value::callable(macro.name, [node, weak](Interpreter& interp, const CallArgs& args) {
    return interp.call_macro(*node, weak.lock(), args);
  });
}

Value Interpreter::call_macro(const MacroStmt& macro, const FramePtr& closure,
                              const CallArgs& args) {
  if (call_depth_ >= kMaxCallDepth) eval_fail("macro '{}' recursed too deeply", macro.name);
  auto scope = std::make_shared<Frame>(closure);
  std::vector<bool> bound(macro.params.size(), false);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < macro.params.size()) {
      scope->set(macro.params[i].name, args.positional[i]);
      bound[i] = true;
    } else {
      varargs.push_back(args.positional[i]);
    }
  }
  Dict kwargs;
  for (const auto& [key, value] : args.keyword) {
    size_t i = 0;
    while (i < macro.params.size() && macro.params[i].name != key) ++i;
    if (i < macro.params.size()) {
      if (bound[i]) eval_fail("macro '{}' got multiple values for argument '{}'", macro.name, key);
      scope->set(key, value);
      bound[i] = true;
    } else if (key == "caller") {
      scope->set("caller", value);
    } else {
      kwargs.set(Value(key), value);
    }
  }
  for (size_t i = 0; i < macro.params.size(); ++i) {
    if (bound[i]) continue;
    const Param& param = macro.params[i];
    scope->set(param.name, param.default_value ? eval(*param.default_value, scope)
                                               : Value::undefined("parameter '" + param.name +
                                                                  "' was not provided"));
  }
  scope->set("varargs", Value::list(std::move(varargs), true));
  scope->set("kwargs", Value::dict(std::move(kwargs)));
  ++call_depth_;
  std::string text = capture(macro.body, scope);
  --call_depth_;
  return Value(std::move(text));
}

}  // namespace lowbit::jinja
