// Walks a parsed template and produces text. Scoping follows Jinja: `for` bodies and macros get
// a fresh scope per iteration/call (so `set` inside a loop does not leak out, which is why
// templates use namespace()), while `if` shares its enclosing scope.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace lowbit::jinja {

class Frame {
 public:
  explicit Frame(std::shared_ptr<Frame> parent) : parent_(std::move(parent)) {}
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value value) { vars_[name] = std::move(value); }

 private:
  std::shared_ptr<Frame> parent_;
  std::unordered_map<std::string, Value> vars_;
};
using FramePtr = std::shared_ptr<Frame>;

// One rendering; not shared between threads (the Template is).
class Interpreter {
 public:
  explicit Interpreter(const Template& tmpl) : template_(tmpl) {}
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Namespaces may reference themselves (`set ns.me = ns`); the interpreter empties them all
  // when the render ends so such cycles do not leak.
  void track(const std::shared_ptr<Namespace>& ns) { namespaces_.push_back(ns); }

  // Throws SourceError (offset into template.source) on any failure.
  std::string render(const Dict& variables);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec(const Body& body, const FramePtr& frame);
  Flow exec_stmt(const Stmt& stmt, const FramePtr& frame);
  Flow exec_for(const ForStmt& stmt, const FramePtr& frame);
  void exec_call_block(const CallBlockStmt& stmt, const FramePtr& frame);
  std::string capture(const Body& body, const FramePtr& frame);
  void assign(const Target& target, const Value& value, const FramePtr& frame);

  Value eval(const Expr& expr, const FramePtr& frame);
  Value eval_node(const Expr& expr, const FramePtr& frame);
  Value eval_binary(const BinaryExpr& expr, const FramePtr& frame);
  Value eval_call(const CallExpr& expr, const FramePtr& frame, const Value* caller);
  CallArgs eval_args(const Args& args, const FramePtr& frame);
  Value lookup(const std::string& name, const FramePtr& frame);
  // Applies a `{% filter %}` / `{% set x | f %}` chain to captured text.
  Value apply_filter_chain(const Expr& chain, Value input, const FramePtr& frame);

  Value make_macro(const MacroStmt& macro, const FramePtr& closure);
  Value call_macro(const MacroStmt& macro, const FramePtr& closure, const CallArgs& args);

  // Frames that macros / call blocks close over. Closures hold weak pointers (a macro is stored
  // in the very frame it closes over, so a strong pointer would be a cycle); this keeps the
  // frames alive until the render ends.
  std::vector<FramePtr> pinned_frames_;
  std::vector<std::weak_ptr<Namespace>> namespaces_;

  const Template& template_;
  std::string out_;
  const Value* block_input_ = nullptr;  // input of a filter chain whose operand is null
  int call_depth_ = 0;
};

}  // namespace lowbit::jinja
