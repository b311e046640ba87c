// The parsed form of a template. Nodes keep the byte offset of their first token so that
// errors at render time can name LINE:COL. The tree is immutable after parsing, which is what
// lets one ChatTemplate render from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace lowbit::jinja {

enum class ExprKind {
  kLiteral,
  kName,
  kList,  // also tuples
  kDict,
  kGetattr,
  kGetitem,
  kSlice,
  kUnary,
  kBinary,
  kCompare,
  kCall,
  kFilter,
  kTest,
  kCondition,
};

struct Expr {
  Expr(ExprKind k, uint32_t off) : kind(k), offset(off) {}
  virtual ~Expr() = default;
  ExprKind kind;
  uint32_t offset;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Args {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

struct LiteralExpr : Expr {
  LiteralExpr(uint32_t off, Value v) : Expr(ExprKind::kLiteral, off), value(std::move(v)) {}
  Value value;
};

struct NameExpr : Expr {
  NameExpr(uint32_t off, std::string n) : Expr(ExprKind::kName, off), name(std::move(n)) {}
  std::string name;
};

struct ListExpr : Expr {
  ListExpr(uint32_t off, bool tuple) : Expr(ExprKind::kList, off), is_tuple(tuple) {}
  std::vector<ExprPtr> items;
  bool is_tuple;
};

struct DictExpr : Expr {
  explicit DictExpr(uint32_t off) : Expr(ExprKind::kDict, off) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

struct GetattrExpr : Expr {
  GetattrExpr(uint32_t off, ExprPtr o, std::string a)
      : Expr(ExprKind::kGetattr, off), object(std::move(o)), attr(std::move(a)) {}
  ExprPtr object;
  std::string attr;
};

struct GetitemExpr : Expr {
  GetitemExpr(uint32_t off, ExprPtr o, ExprPtr k)
      : Expr(ExprKind::kGetitem, off), object(std::move(o)), key(std::move(k)) {}
  ExprPtr object;
  ExprPtr key;
};

struct SliceExpr : Expr {
  SliceExpr(uint32_t off, ExprPtr o) : Expr(ExprKind::kSlice, off), object(std::move(o)) {}
  ExprPtr object;
  ExprPtr start, stop, step;  // each may be null
};

enum class UnaryOp { kNot, kNeg, kPos };
struct UnaryExpr : Expr {
  UnaryExpr(uint32_t off, UnaryOp o, ExprPtr e)
      : Expr(ExprKind::kUnary, off), op(o), operand(std::move(e)) {}
  UnaryOp op;
  ExprPtr operand;
};

enum class BinaryOp { kAnd, kOr, kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow, kConcat };
struct BinaryExpr : Expr {
  BinaryExpr(uint32_t off, BinaryOp o, ExprPtr l, ExprPtr r)
      : Expr(ExprKind::kBinary, off), op(o), left(std::move(l)), right(std::move(r)) {}
  BinaryOp op;
  ExprPtr left, right;
};

enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };
struct CompareExpr : Expr {
  CompareExpr(uint32_t off, ExprPtr f) : Expr(ExprKind::kCompare, off), first(std::move(f)) {}
  ExprPtr first;
  std::vector<std::pair<CompareOp, ExprPtr>> rest;  // a < b < c chains like Python
};

struct CallExpr : Expr {
  CallExpr(uint32_t off, ExprPtr c) : Expr(ExprKind::kCall, off), callee(std::move(c)) {}
  ExprPtr callee;
  Args args;
};

// `operand | name(args)`. The operand is null in `{% filter %}` and `{% set x | f %}` blocks.
struct FilterExpr : Expr {
  FilterExpr(uint32_t off, ExprPtr o, std::string n)
      : Expr(ExprKind::kFilter, off), operand(std::move(o)), name(std::move(n)) {}
  ExprPtr operand;
  std::string name;
  Args args;
};

// `operand is [not] name(args)`.
struct TestExpr : Expr {
  TestExpr(uint32_t off, ExprPtr o, std::string n, bool neg)
      : Expr(ExprKind::kTest, off), operand(std::move(o)), name(std::move(n)), negated(neg) {}
  ExprPtr operand;
  std::string name;
  Args args;
  bool negated;
};

// `then if condition else otherwise`; a missing else yields Undefined.
struct ConditionExpr : Expr {
  ConditionExpr(uint32_t off, ExprPtr c, ExprPtr t, ExprPtr o)
      : Expr(ExprKind::kCondition, off),
        condition(std::move(c)),
        then(std::move(t)),
        otherwise(std::move(o)) {}
  ExprPtr condition, then, otherwise;
};

enum class StmtKind {
  kText,
  kOutput,
  kIf,
  kFor,
  kSet,
  kSetBlock,
  kMacro,
  kCallBlock,
  kFilterBlock,
  kWith,
  kBreak,
  kContinue,
  kScope,  // {% generation %}: transformers' assistant-mask marker, renders its body
};

struct Stmt {
  Stmt(StmtKind k, uint32_t off) : kind(k), offset(off) {}
  virtual ~Stmt() = default;
  StmtKind kind;
  uint32_t offset;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Assignment target: a name, a tuple of names, or `namespace.attr`.
struct Target {
  std::vector<std::string> names;  // one name, or several for tuple unpacking
  bool is_tuple = false;
  std::string attr;  // non-empty for `ns.attr`; then names[0] is the namespace variable
};

struct TextStmt : Stmt {
  TextStmt(uint32_t off, std::string t) : Stmt(StmtKind::kText, off), text(std::move(t)) {}
  std::string text;
};

struct OutputStmt : Stmt {
  OutputStmt(uint32_t off, ExprPtr e) : Stmt(StmtKind::kOutput, off), expr(std::move(e)) {}
  ExprPtr expr;
};

struct IfStmt : Stmt {
  explicit IfStmt(uint32_t off) : Stmt(StmtKind::kIf, off) {}
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body otherwise;
};

struct ForStmt : Stmt {
  explicit ForStmt(uint32_t off) : Stmt(StmtKind::kFor, off) {}
  Target target;
  ExprPtr iterable;
  ExprPtr filter;  // `for x in xs if cond`, may be null
  Body body;
  Body otherwise;  // runs when nothing was iterated
};

struct SetStmt : Stmt {
  explicit SetStmt(uint32_t off) : Stmt(StmtKind::kSet, off) {}
  Target target;
  ExprPtr value;
};

struct SetBlockStmt : Stmt {
  explicit SetBlockStmt(uint32_t off) : Stmt(StmtKind::kSetBlock, off) {}
  Target target;
  ExprPtr filter;  // chain of FilterExpr whose innermost operand is null; may be null
  Body body;
};

struct Param {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct MacroStmt : Stmt {
  explicit MacroStmt(uint32_t off) : Stmt(StmtKind::kMacro, off) {}
  std::string name;
  std::vector<Param> params;
  Body body;
};

struct CallBlockStmt : Stmt {
  explicit CallBlockStmt(uint32_t off) : Stmt(StmtKind::kCallBlock, off) {}
  std::vector<Param> caller_params;
  std::unique_ptr<CallExpr> call;
  Body body;
};

struct FilterBlockStmt : Stmt {
  explicit FilterBlockStmt(uint32_t off) : Stmt(StmtKind::kFilterBlock, off) {}
  ExprPtr filter;  // chain of FilterExpr whose innermost operand is null
  Body body;
};

struct WithStmt : Stmt {
  explicit WithStmt(uint32_t off) : Stmt(StmtKind::kWith, off) {}
  std::vector<std::pair<Target, ExprPtr>> assignments;
  Body body;
};

struct ScopeStmt : Stmt {
  explicit ScopeStmt(uint32_t off) : Stmt(StmtKind::kScope, off) {}
  Body body;
};

struct Template {
  std::string label;   // names the template in error messages
  std::string source;  // newline-normalised, for LINE:COL
  Body body;
};

}  // namespace lowbit::jinja
