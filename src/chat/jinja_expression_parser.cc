#include "chat/jinja_expression_parser.h"

#include <fmt/format.h>

#include "chat/jinja_filters.h"

namespace lowbit::jinja {

bool ExpressionParser::is_tuple_end(std::initializer_list<std::string_view> extra_end) const {
  if (c_.cur().type == TokenType::kVarEnd || c_.cur().type == TokenType::kBlockEnd ||
      c_.is_op(")")) {
    return true;
  }
  for (std::string_view name : extra_end) {
    if (c_.is_name(name)) return true;
  }
  return false;
}

ExprPtr ExpressionParser::parse_tuple(bool with_condexpr,
                                      std::initializer_list<std::string_view> extra_end,
                                      bool explicit_parentheses) {
  const uint32_t offset = c_.cur().offset;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) c_.expect_op(",");
    if (is_tuple_end(extra_end)) break;
    items.push_back(parse_expression(with_condexpr));
    if (c_.is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parentheses) {
      c_.fail("expected an expression, got " + TokenCursor::describe(c_.cur()));
    }
  }
  auto tuple = std::make_unique<ListExpr>(offset, true);
  tuple->items = std::move(items);
  return tuple;
}

ExprPtr ExpressionParser::parse_expression(bool with_condexpr) {
  TokenCursor::DepthGuard guard(c_);
  return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr ExpressionParser::parse_condexpr() {
  ExprPtr expr = parse_or();
  while (c_.is_name("if")) {
    const uint32_t offset = c_.cur().offset;
    c_.advance();
    ExprPtr condition = parse_or();
    ExprPtr otherwise = c_.skip_name("else") ? parse_condexpr() : nullptr;
    expr = std::make_unique<ConditionExpr>(offset, std::move(condition), std::move(expr),
                                           std::move(otherwise));
  }
  return expr;
}

ExprPtr ExpressionParser::parse_or() {
  ExprPtr left = parse_and();
  while (c_.is_name("or")) {
    const uint32_t offset = c_.cur().offset;
    c_.advance();
    left = std::make_unique<BinaryExpr>(offset, BinaryOp::kOr, std::move(left), parse_and());
  }
  return left;
}

ExprPtr ExpressionParser::parse_and() {
  ExprPtr left = parse_not();
  while (c_.is_name("and")) {
    const uint32_t offset = c_.cur().offset;
    c_.advance();
    left = std::make_unique<BinaryExpr>(offset, BinaryOp::kAnd, std::move(left), parse_not());
  }
  return left;
}

ExprPtr ExpressionParser::parse_not() {
  if (c_.is_name("not")) {
    const uint32_t offset = c_.cur().offset;
    c_.advance();
    return std::make_unique<UnaryExpr>(offset, UnaryOp::kNot, parse_not());
  }
  return parse_compare();
}

ExprPtr ExpressionParser::parse_compare() {
  ExprPtr first = parse_math1();
  std::unique_ptr<CompareExpr> compare;
  while (true) {
    const uint32_t offset = c_.cur().offset;
    CompareOp op;
    if (c_.skip_op("==")) {
      op = CompareOp::kEq;
    } else if (c_.skip_op("!=")) {
      op = CompareOp::kNe;
    } else if (c_.skip_op("<")) {
      op = CompareOp::kLt;
    } else if (c_.skip_op("<=")) {
      op = CompareOp::kLe;
    } else if (c_.skip_op(">")) {
      op = CompareOp::kGt;
    } else if (c_.skip_op(">=")) {
      op = CompareOp::kGe;
    } else if (c_.skip_name("in")) {
      op = CompareOp::kIn;
    } else if (c_.is_name("not") && c_.peek().type == TokenType::kName && c_.peek().text == "in") {
      c_.advance();
      c_.advance();
      op = CompareOp::kNotIn;
    } else {
      break;
    }
    if (!compare) compare = std::make_unique<CompareExpr>(offset, std::move(first));
    compare->rest.emplace_back(op, parse_math1());
  }
  if (!compare) return first;
  return compare;
}

ExprPtr ExpressionParser::parse_binary_level(
    std::initializer_list<std::pair<std::string_view, BinaryOp>> ops,
    ExprPtr (ExpressionParser::*next)()) {
  ExprPtr left = (this->*next)();
  while (true) {
    bool matched = false;
    for (const auto& [spelling, op] : ops) {
      if (!c_.is_op(spelling)) continue;
      const uint32_t offset = c_.cur().offset;
      c_.advance();
      left = std::make_unique<BinaryExpr>(offset, op, std::move(left), (this->*next)());
      matched = true;
      break;
    }
    if (!matched) return left;
  }
}

ExprPtr ExpressionParser::parse_math1() {
  return parse_binary_level({{"+", BinaryOp::kAdd}, {"-", BinaryOp::kSub}},
                            &ExpressionParser::parse_concat);
}
ExprPtr ExpressionParser::parse_concat() {
  return parse_binary_level({{"~", BinaryOp::kConcat}}, &ExpressionParser::parse_math2);
}
ExprPtr ExpressionParser::parse_math2() {
  return parse_binary_level({{"*", BinaryOp::kMul},
                             {"/", BinaryOp::kDiv},
                             {"//", BinaryOp::kFloorDiv},
                             {"%", BinaryOp::kMod}},
                            &ExpressionParser::parse_pow);
}
ExprPtr ExpressionParser::parse_pow() {
  return parse_binary_level({{"**", BinaryOp::kPow}}, &ExpressionParser::parse_unary_filtered);
}
ExprPtr ExpressionParser::parse_unary_filtered() { return parse_unary(true); }

ExprPtr ExpressionParser::parse_unary(bool with_filter) {
  TokenCursor::DepthGuard guard(c_);
  const uint32_t offset = c_.cur().offset;
  ExprPtr node;
  if (c_.skip_op("-")) {
    node = std::make_unique<UnaryExpr>(offset, UnaryOp::kNeg, parse_unary(false));
  } else if (c_.skip_op("+")) {
    node = std::make_unique<UnaryExpr>(offset, UnaryOp::kPos, parse_unary(false));
  } else {
    node = parse_primary();
  }
  node = parse_postfix(std::move(node));
  if (with_filter) node = parse_filter_expr(std::move(node));
  return node;
}

ExprPtr ExpressionParser::parse_primary() {
  const Token& t = c_.cur();
  const uint32_t offset = t.offset;
  switch (t.type) {
    case TokenType::kName: {
      const std::string name = t.text;
      c_.advance();
      if (name == "true" || name == "True") return std::make_unique<LiteralExpr>(offset, true);
      if (name == "false" || name == "False") {
        return std::make_unique<LiteralExpr>(offset, false);
      }
      if (name == "none" || name == "None") {
        return std::make_unique<LiteralExpr>(offset, Value(None{}));
      }
      return std::make_unique<NameExpr>(offset, name);
    }
    case TokenType::kString: {
      std::string text;
      while (c_.cur().type == TokenType::kString) {  // adjacent literals concatenate
        text += c_.cur().text;
        c_.advance();
      }
      return std::make_unique<LiteralExpr>(offset, Value(std::move(text)));
    }
    case TokenType::kInteger: {
      const int64_t v = t.int_value;
      c_.advance();
      return std::make_unique<LiteralExpr>(offset, Value(v));
    }
    case TokenType::kFloat: {
      const double v = t.float_value;
      c_.advance();
      return std::make_unique<LiteralExpr>(offset, Value(v));
    }
    default:
      break;
  }
  if (c_.skip_op("(")) {
    ExprPtr inner = parse_tuple(true, {}, true);
    c_.expect_op(")");
    return inner;
  }
  if (c_.skip_op("[")) {
    auto list = std::make_unique<ListExpr>(offset, false);
    while (!c_.is_op("]")) {
      if (!list->items.empty()) c_.expect_op(",");
      if (c_.is_op("]")) break;
      list->items.push_back(parse_expression(true));
    }
    c_.expect_op("]");
    return list;
  }
  if (c_.skip_op("{")) {
    auto dict = std::make_unique<DictExpr>(offset);
    while (!c_.is_op("}")) {
      if (!dict->items.empty()) c_.expect_op(",");
      if (c_.is_op("}")) break;
      ExprPtr key = parse_expression(true);
      c_.expect_op(":");
      dict->items.emplace_back(std::move(key), parse_expression(true));
    }
    c_.expect_op("}");
    return dict;
  }
  c_.fail("unexpected " + TokenCursor::describe(t));
}

ExprPtr ExpressionParser::parse_postfix(ExprPtr node) {
  while (true) {
    if (c_.is_op(".") || c_.is_op("[")) {
      node = parse_subscript(std::move(node));
    } else if (c_.is_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr ExpressionParser::parse_filter_expr(ExprPtr node) {
  while (true) {
    if (c_.is_op("|")) {
      node = parse_filter(std::move(node), false);
    } else if (c_.is_name("is")) {
      node = parse_test(std::move(node));
    } else if (c_.is_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr ExpressionParser::parse_subscript(ExprPtr node) {
  const uint32_t offset = c_.cur().offset;
  if (c_.skip_op(".")) {
    if (c_.cur().type == TokenType::kName) {
      return std::make_unique<GetattrExpr>(offset, std::move(node), c_.expect_name());
    }
    if (c_.cur().type != TokenType::kInteger) c_.fail("expected name or number after '.'");
    auto key = std::make_unique<LiteralExpr>(c_.cur().offset, Value(c_.cur().int_value));
    c_.advance();
    return std::make_unique<GetitemExpr>(offset, std::move(node), std::move(key));
  }
  c_.expect_op("[");
  ExprPtr result;
  if (!c_.is_op(":")) {
    ExprPtr key = parse_expression(true);
    if (!c_.is_op(":")) {
      if (c_.is_op(",")) c_.fail("tuple subscripts (a[x, y]) are not supported");
      c_.expect_op("]");
      return std::make_unique<GetitemExpr>(offset, std::move(node), std::move(key));
    }
    auto slice = std::make_unique<SliceExpr>(offset, std::move(node));
    slice->start = std::move(key);
    result = std::move(slice);
  } else {
    result = std::make_unique<SliceExpr>(offset, std::move(node));
  }
  auto* slice = static_cast<SliceExpr*>(result.get());
  c_.expect_op(":");
  if (!c_.is_op("]") && !c_.is_op(":")) slice->stop = parse_expression(true);
  if (c_.skip_op(":") && !c_.is_op("]")) slice->step = parse_expression(true);
  c_.expect_op("]");
  return result;
}

Args ExpressionParser::parse_call_args() {
  Args args;
  c_.expect_op("(");
  bool need_comma = false;
  while (!c_.is_op(")")) {
    if (need_comma) {
      c_.expect_op(",");
      if (c_.is_op(")")) break;
    }
    if (c_.is_op("*") || c_.is_op("**")) c_.fail("*args / **kwargs in calls are not supported");
    if (c_.cur().type == TokenType::kName && c_.peek().type == TokenType::kOperator &&
        c_.peek().text == "=") {
      std::string key = c_.expect_name();
      c_.advance();
      args.keyword.emplace_back(std::move(key), parse_expression(true));
    } else {
      if (!args.keyword.empty()) c_.fail("positional argument follows keyword argument");
      args.positional.push_back(parse_expression(true));
    }
    need_comma = true;
  }
  c_.expect_op(")");
  return args;
}

ExprPtr ExpressionParser::parse_call(ExprPtr callee) {
  auto call = std::make_unique<CallExpr>(c_.cur().offset, std::move(callee));
  call->args = parse_call_args();
  return call;
}

std::string ExpressionParser::parse_dotted_name() {
  std::string name = c_.expect_name();
  while (c_.skip_op(".")) {
    name += '.';
    name += c_.expect_name();
  }
  return name;
}

ExprPtr ExpressionParser::parse_filter(ExprPtr node, bool start_inline) {
  while (c_.is_op("|") || start_inline) {
    if (!start_inline) c_.advance();
    start_inline = false;
    const uint32_t offset = c_.cur().offset;
    const std::string name = parse_dotted_name();
    if (!is_supported_filter(name)) {
      c_.fail_at(offset, is_jinja_filter(name)
                             ? fmt::format("the '{}' filter is not supported by lowbit's "
                                           "chat-template interpreter",
                                           name)
                             : fmt::format("no filter named '{}'", name));
    }
    auto filter = std::make_unique<FilterExpr>(offset, std::move(node), name);
    if (c_.is_op("(")) filter->args = parse_call_args();
    node = std::move(filter);
  }
  return node;
}

ExprPtr ExpressionParser::parse_test(ExprPtr node) {
  c_.advance();  // 'is'
  const bool negated = c_.skip_name("not");
  const uint32_t offset = c_.cur().offset;
  const std::string name = parse_dotted_name();
  if (!is_supported_test(name)) {
    c_.fail_at(offset, is_jinja_test(name)
                           ? fmt::format("the '{}' test is not supported by lowbit's "
                                         "chat-template interpreter",
                                         name)
                           : fmt::format("no test named '{}'", name));
  }
  auto test = std::make_unique<TestExpr>(offset, std::move(node), name, negated);
  const Token& t = c_.cur();
  const bool bare_argument = (t.type == TokenType::kName || t.type == TokenType::kString ||
                              t.type == TokenType::kInteger || t.type == TokenType::kFloat ||
                              c_.is_op("[") || c_.is_op("{")) &&
                             !c_.is_name("else") && !c_.is_name("or") && !c_.is_name("and");
  if (c_.is_op("(")) {
    test->args = parse_call_args();
  } else if (bare_argument) {
    if (c_.is_name("is")) c_.fail("you cannot chain multiple tests with 'is'");
    test->args.positional.push_back(parse_postfix(parse_primary()));
  }
  return test;
}

}  // namespace lowbit::jinja
