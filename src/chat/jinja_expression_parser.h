// Jinja expressions, rule for rule as jinja2/parser.py parses them: conditional expressions,
// or/and/not, comparison chains, + -, ~, * / // %, **, unary minus, then postfix access,
// filters and tests. Filter and test names are checked here, at load time.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "chat/jinja_ast.h"
#include "chat/jinja_token_cursor.h"

namespace lowbit::jinja {

class ExpressionParser {
 public:
  explicit ExpressionParser(TokenCursor& cursor) : c_(cursor) {}

  // An expression, or a tuple when commas separate several ("a, b"). `extra_end` names
  // keywords that end the tuple (e.g. "recursive" in for loops).
  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                      bool explicit_parentheses);
  ExprPtr parse_expression(bool with_condexpr);
  // `| f(args) | g`; with a null `node` this is a {% filter %} / {% set x | f %} chain.
  ExprPtr parse_filter(ExprPtr node, bool start_inline);

 private:
  bool is_tuple_end(std::initializer_list<std::string_view> extra_end) const;
  ExprPtr parse_condexpr();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_binary_level(std::initializer_list<std::pair<std::string_view, BinaryOp>> ops,
                             ExprPtr (ExpressionParser::*next)());
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary_filtered();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node);
  Args parse_call_args();
  ExprPtr parse_call(ExprPtr callee);
  std::string parse_dotted_name();
  ExprPtr parse_test(ExprPtr node);

  TokenCursor& c_;
};

}  // namespace lowbit::jinja
