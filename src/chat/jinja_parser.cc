#include "chat/jinja_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "chat/jinja_filters.h"
#include "chat/jinja_lexer.h"

namespace lowbit::jinja {
namespace {

// Tags Jinja knows but lowbit does not implement; named in the error instead of "unknown tag".
constexpr std::string_view kUnsupportedTags[] = {"block", "extends", "include", "import",
                                                 "from", "autoescape", "do", "trans"};

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::kData: return "template text";
    case TokenType::kVarBegin: return "'{{'";
    case TokenType::kVarEnd: return "end of print statement '}}'";
    case TokenType::kBlockBegin: return "'{%'";
    case TokenType::kBlockEnd: return "end of statement block '%}'";
    case TokenType::kEof: return "end of template";
    case TokenType::kString: return "string literal";
    case TokenType::kInteger:
    case TokenType::kFloat: return "number " + t.text;
    default: return "'" + t.text + "'";
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse_all() {
    Body body = subparse({});
    if (cur().type != TokenType::kEof) fail("unexpected tag '" + cur().text + "'");
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return tokens_[pos_]; }
  const Token& peek(size_t n = 1) const { return tokens_[std::min(pos_ + n, tokens_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool is_op(std::string_view op) const {
    return cur().type == TokenType::kOperator && cur().text == op;
  }
  bool is_name(std::string_view name) const {
    return cur().type == TokenType::kName && cur().text == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  [[noreturn]] void fail(const std::string& message) const { fail_at(cur().offset, message); }
  [[noreturn]] void fail_at(uint32_t offset, const std::string& message) const {
    throw SourceError(offset, message);
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail(fmt::format("expected '{}', got {}", op, describe(cur())));
  }
  void expect(TokenType type, std::string_view what) {
    if (cur().type != type) fail(fmt::format("expected {}, got {}", what, describe(cur())));
    advance();
  }
  std::string expect_name() {
    if (cur().type != TokenType::kName) fail("expected a name, got " + describe(cur()));
    std::string name = cur().text;
    advance();
    return name;
  }

  // ---- statements ----
  Body subparse(std::initializer_list<std::string_view> end_tags) {
    Body body;
    while (cur().type != TokenType::kEof) {
      const Token& t = cur();
      if (t.type == TokenType::kData) {
        body.push_back(std::make_unique<TextStmt>(t.offset, t.text));
        advance();
      } else if (t.type == TokenType::kVarBegin) {
        advance();
        body.push_back(std::make_unique<OutputStmt>(t.offset, parse_tuple(true, {}, false)));
        expect(TokenType::kVarEnd, "'}}'");
      } else if (t.type == TokenType::kBlockBegin) {
        advance();
        const bool is_end = cur().type == TokenType::kName &&
                            std::find(end_tags.begin(), end_tags.end(), cur().text) !=
                                end_tags.end();
        if (is_end) return body;
        parse_statement(body);
        expect(TokenType::kBlockEnd, "'%}'");
      } else {
        fail("unexpected " + describe(t));
      }
    }
    return body;
  }

  // Parses `%}` body `{% end... %}`; `opener` is the offset and name of the opening tag.
  Body parse_body(std::initializer_list<std::string_view> end_tags, bool drop_end,
                  uint32_t opener, std::string_view tag) {
    expect(TokenType::kBlockEnd, "'%}'");
    Body body = subparse(end_tags);
    if (cur().type == TokenType::kEof) {
      fail_at(opener, fmt::format("'{}' tag is never closed: expected {{% end{} %}}", tag, tag));
    }
    if (drop_end) advance();
    return body;
  }

  void parse_statement(Body& out) {
    DepthGuard guard(*this);
    if (cur().type != TokenType::kName) fail("expected a tag name, got " + describe(cur()));
    const uint32_t offset = cur().offset;
    const std::string tag = cur().text;
    if (tag == "if") return out.push_back(parse_if());
    if (tag == "for") return out.push_back(parse_for());
    if (tag == "set") return out.push_back(parse_set());
    if (tag == "macro") return out.push_back(parse_macro());
    if (tag == "call") return out.push_back(parse_call_block());
    if (tag == "filter") return out.push_back(parse_filter_block());
    if (tag == "with") return out.push_back(parse_with());
    if (tag == "generation") {
      advance();
      auto scope = std::make_unique<ScopeStmt>(offset);
      scope->body = parse_body({"endgeneration"}, true, offset, tag);
      return out.push_back(std::move(scope));
    }
    if (tag == "print") {
      advance();
      while (cur().type != TokenType::kBlockEnd) {
        out.push_back(std::make_unique<OutputStmt>(cur().offset, parse_expression(true)));
        if (!skip_op(",")) break;
      }
      return;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside of a for loop", tag));
      advance();
      return out.push_back(std::make_unique<Stmt>(
          tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, offset));
    }
    for (std::string_view unsupported : kUnsupportedTags) {
      if (tag == unsupported) {
        fail(fmt::format("the '{}' tag is not supported by lowbit's chat-template interpreter",
                         tag));
      }
    }
    if (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif") {
      fail(fmt::format("unexpected tag '{}' (no open block expects it here)", tag));
    }
    fail(fmt::format("unknown tag '{}'", tag));
  }

  StmtPtr parse_if() {
    auto node = std::make_unique<IfStmt>(cur().offset);
    const uint32_t opener = cur().offset;
    advance();
    while (true) {
      ExprPtr test = parse_tuple(false, {}, false);
      Body body = parse_body({"elif", "else", "endif"}, false, opener, "if");
      node->branches.emplace_back(std::move(test), std::move(body));
      const std::string end = cur().text;
      advance();
      if (end == "elif") continue;
      if (end == "else") node->otherwise = parse_body({"endif"}, true, opener, "if");
      break;
    }
    return node;
  }

  StmtPtr parse_for() {
    auto node = std::make_unique<ForStmt>(cur().offset);
    const uint32_t opener = cur().offset;
    advance();
    node->target = parse_target(false);
    if (!skip_name("in")) fail("expected 'in' in for loop, got " + describe(cur()));
    node->iterable = parse_tuple(false, {"recursive"}, false);
    if (skip_name("if")) node->filter = parse_expression(true);
    if (is_name("recursive")) fail("recursive for loops are not supported");
    ++loop_depth_;
    node->body = parse_body({"endfor", "else"}, false, opener, "for");
    --loop_depth_;
    const std::string end = cur().text;
    advance();
    if (end == "else") node->otherwise = parse_body({"endfor"}, true, opener, "for");
    return node;
  }

  // Names, `a, b` tuples (optionally parenthesised) or, for set, `namespace.attr`.
  Target parse_target(bool allow_namespace) {
    Target target;
    if (allow_namespace && cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
        peek().text == ".") {
      target.names.push_back(expect_name());
      advance();
      target.attr = expect_name();
      return target;
    }
    const bool parens = skip_op("(");
    while (true) {
      target.names.push_back(expect_name());
      if (!skip_op(",")) break;
      target.is_tuple = true;
      if (cur().type != TokenType::kName) break;  // trailing comma
    }
    if (parens) {
      target.is_tuple = true;
      expect_op(")");
    }
    for (const std::string& name : target.names) {
      if (name == "true" || name == "false" || name == "none" || name == "True" ||
          name == "False" || name == "None") {
        fail(fmt::format("can't assign to constant '{}'", name));
      }
    }
    return target;
  }

  StmtPtr parse_set() {
    const uint32_t opener = cur().offset;
    advance();
    Target target = parse_target(true);
    if (skip_op("=")) {
      auto node = std::make_unique<SetStmt>(opener);
      node->target = std::move(target);
      node->value = parse_tuple(true, {}, false);
      return node;
    }
    auto node = std::make_unique<SetBlockStmt>(opener);
    node->target = std::move(target);
    node->filter = parse_filter(nullptr, false);
    node->body = parse_body({"endset"}, true, opener, "set");
    return node;
  }

  std::vector<Param> parse_signature() {
    std::vector<Param> params;
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      Param param;
      param.name = expect_name();
      if (skip_op("=")) {
        param.default_value = parse_expression(true);
      } else if (!params.empty() && params.back().default_value) {
        fail("non-default argument follows default argument");
      }
      params.push_back(std::move(param));
    }
    expect_op(")");
    return params;
  }

  StmtPtr parse_macro() {
    auto node = std::make_unique<MacroStmt>(cur().offset);
    advance();
    node->name = expect_name();
    node->params = parse_signature();
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot cross a macro boundary
    node->body = parse_body({"endmacro"}, true, node->offset, "macro");
    loop_depth_ = saved_depth;
    return node;
  }

  StmtPtr parse_call_block() {
    auto node = std::make_unique<CallBlockStmt>(cur().offset);
    advance();
    if (is_op("(")) node->caller_params = parse_signature();
    ExprPtr call = parse_expression(true);
    if (call->kind != ExprKind::kCall) fail_at(call->offset, "expected a macro call in {% call %}");
    node->call.reset(static_cast<CallExpr*>(call.release()));
    node->body = parse_body({"endcall"}, true, node->offset, "call");
    return node;
  }

  StmtPtr parse_filter_block() {
    auto node = std::make_unique<FilterBlockStmt>(cur().offset);
    advance();
    node->filter = parse_filter(nullptr, true);
    node->body = parse_body({"endfilter"}, true, node->offset, "filter");
    return node;
  }

  StmtPtr parse_with() {
    auto node = std::make_unique<WithStmt>(cur().offset);
    advance();
    while (cur().type != TokenType::kBlockEnd) {
      if (!node->assignments.empty()) expect_op(",");
      Target target = parse_target(false);
      expect_op("=");
      node->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    node->body = parse_body({"endwith"}, true, node->offset, "with");
    return node;
  }

  // ---- expressions (jinja2/parser.py order) ----
  bool is_tuple_end(std::initializer_list<std::string_view> extra_end) const {
    if (cur().type == TokenType::kVarEnd || cur().type == TokenType::kBlockEnd || is_op(")")) {
      return true;
    }
    for (std::string_view name : extra_end) {
      if (is_name(name)) return true;
    }
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                      bool explicit_parentheses) {
    const uint32_t offset = cur().offset;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail("expected an expression, got " + describe(cur()));
    }
    auto tuple = std::make_unique<ListExpr>(offset, true);
    tuple->items = std::move(items);
    return tuple;
  }

  // Bounds recursion so a pathological template cannot overflow the stack.
  class DepthGuard {
   public:
    explicit DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) p_.fail("template nested too deeply");
    }
    ~DepthGuard() { --p_.depth_; }

   private:
    Parser& p_;
  };

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      const uint32_t offset = cur().offset;
      advance();
      ExprPtr condition = parse_or();
      ExprPtr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
      expr = std::make_unique<ConditionExpr>(offset, std::move(condition), std::move(expr),
                                             std::move(otherwise));
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const uint32_t offset = cur().offset;
      advance();
      left = std::make_unique<BinaryExpr>(offset, BinaryOp::kOr, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const uint32_t offset = cur().offset;
      advance();
      left = std::make_unique<BinaryExpr>(offset, BinaryOp::kAnd, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const uint32_t offset = cur().offset;
      advance();
      return std::make_unique<UnaryExpr>(offset, UnaryOp::kNot, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    std::unique_ptr<CompareExpr> compare;
    while (true) {
      const uint32_t offset = cur().offset;
      CompareOp op;
      if (skip_op("==")) {
        op = CompareOp::kEq;
      } else if (skip_op("!=")) {
        op = CompareOp::kNe;
      } else if (skip_op("<")) {
        op = CompareOp::kLt;
      } else if (skip_op("<=")) {
        op = CompareOp::kLe;
      } else if (skip_op(">")) {
        op = CompareOp::kGt;
      } else if (skip_op(">=")) {
        op = CompareOp::kGe;
      } else if (skip_name("in")) {
        op = CompareOp::kIn;
      } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
        advance();
        advance();
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

  ExprPtr parse_binary_level(std::initializer_list<std::pair<std::string_view, BinaryOp>> ops,
                             ExprPtr (Parser::*next)()) {
    ExprPtr left = (this->*next)();
    while (true) {
      bool matched = false;
      for (const auto& [spelling, op] : ops) {
        if (!is_op(spelling)) continue;
        const uint32_t offset = cur().offset;
        advance();
        left = std::make_unique<BinaryExpr>(offset, op, std::move(left), (this->*next)());
        matched = true;
        break;
      }
      if (!matched) return left;
    }
  }

  ExprPtr parse_math1() {
    return parse_binary_level({{"+", BinaryOp::kAdd}, {"-", BinaryOp::kSub}},
                              &Parser::parse_concat);
  }
  ExprPtr parse_concat() {
    return parse_binary_level({{"~", BinaryOp::kConcat}}, &Parser::parse_math2);
  }
  ExprPtr parse_math2() {
    return parse_binary_level({{"*", BinaryOp::kMul},
                               {"/", BinaryOp::kDiv},
                               {"//", BinaryOp::kFloorDiv},
                               {"%", BinaryOp::kMod}},
                              &Parser::parse_pow);
  }
  ExprPtr parse_pow() {
    return parse_binary_level({{"**", BinaryOp::kPow}}, &Parser::parse_unary_filtered);
  }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    const uint32_t offset = cur().offset;
    ExprPtr node;
    if (skip_op("-")) {
      node = std::make_unique<UnaryExpr>(offset, UnaryOp::kNeg, parse_unary(false));
    } else if (skip_op("+")) {
      node = std::make_unique<UnaryExpr>(offset, UnaryOp::kPos, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    const uint32_t offset = t.offset;
    switch (t.type) {
      case TokenType::kName: {
        const std::string name = t.text;
        advance();
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
        while (cur().type == TokenType::kString) {  // adjacent literals concatenate
          text += cur().text;
          advance();
        }
        return std::make_unique<LiteralExpr>(offset, Value(std::move(text)));
      }
      case TokenType::kInteger: {
        const int64_t v = t.int_value;
        advance();
        return std::make_unique<LiteralExpr>(offset, Value(v));
      }
      case TokenType::kFloat: {
        const double v = t.float_value;
        advance();
        return std::make_unique<LiteralExpr>(offset, Value(v));
      }
      default: break;
    }
    if (skip_op("(")) {
      ExprPtr inner = parse_tuple(true, {}, true);
      expect_op(")");
      return inner;
    }
    if (skip_op("[")) {
      auto list = std::make_unique<ListExpr>(offset, false);
      while (!is_op("]")) {
        if (!list->items.empty()) expect_op(",");
        if (is_op("]")) break;
        list->items.push_back(parse_expression(true));
      }
      expect_op("]");
      return list;
    }
    if (skip_op("{")) {
      auto dict = std::make_unique<DictExpr>(offset);
      while (!is_op("}")) {
        if (!dict->items.empty()) expect_op(",");
        if (is_op("}")) break;
        ExprPtr key = parse_expression(true);
        expect_op(":");
        dict->items.emplace_back(std::move(key), parse_expression(true));
      }
      expect_op("}");
      return dict;
    }
    fail("unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const uint32_t offset = cur().offset;
    if (skip_op(".")) {
      if (cur().type == TokenType::kName) {
        return std::make_unique<GetattrExpr>(offset, std::move(node), expect_name());
      }
      if (cur().type != TokenType::kInteger) fail("expected name or number after '.'");
      auto key = std::make_unique<LiteralExpr>(cur().offset, Value(cur().int_value));
      advance();
      return std::make_unique<GetitemExpr>(offset, std::move(node), std::move(key));
    }
    expect_op("[");
    ExprPtr result;
    if (!is_op(":")) {
      ExprPtr key = parse_expression(true);
      if (!is_op(":")) {
        if (is_op(",")) fail("tuple subscripts (a[x, y]) are not supported");
        expect_op("]");
        return std::make_unique<GetitemExpr>(offset, std::move(node), std::move(key));
      }
      auto slice = std::make_unique<SliceExpr>(offset, std::move(node));
      slice->start = std::move(key);
      result = std::move(slice);
    } else {
      result = std::make_unique<SliceExpr>(offset, std::move(node));
    }
    auto* slice = static_cast<SliceExpr*>(result.get());
    expect_op(":");
    if (!is_op("]") && !is_op(":")) slice->stop = parse_expression(true);
    if (skip_op(":") && !is_op("]")) slice->step = parse_expression(true);
    expect_op("]");
    return result;
  }

  Args parse_call_args() {
    Args args;
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail("*args / **kwargs in calls are not supported");
      if (cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
          peek().text == "=") {
        std::string key = expect_name();
        advance();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!args.keyword.empty()) fail("positional argument follows keyword argument");
        args.positional.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    expect_op(")");
    return args;
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto call = std::make_unique<CallExpr>(cur().offset, std::move(callee));
    call->args = parse_call_args();
    return call;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name();
    while (skip_op(".")) {
      name += '.';
      name += expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) advance();
      start_inline = false;
      const uint32_t offset = cur().offset;
      const std::string name = parse_dotted_name();
      if (!is_supported_filter(name)) {
        fail_at(offset, is_jinja_filter(name)
                            ? fmt::format("the '{}' filter is not supported by lowbit's "
                                          "chat-template interpreter", name)
                            : fmt::format("no filter named '{}'", name));
      }
      auto filter = std::make_unique<FilterExpr>(offset, std::move(node), name);
      if (is_op("(")) filter->args = parse_call_args();
      node = std::move(filter);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    advance();  // 'is'
    const bool negated = skip_name("not");
    const uint32_t offset = cur().offset;
    const std::string name = parse_dotted_name();
    if (!is_supported_test(name)) {
      fail_at(offset, is_jinja_test(name)
                          ? fmt::format("the '{}' test is not supported by lowbit's "
                                        "chat-template interpreter", name)
                          : fmt::format("no test named '{}'", name));
    }
    auto test = std::make_unique<TestExpr>(offset, std::move(node), name, negated);
    const Token& t = cur();
    const bool bare_argument =
        (t.type == TokenType::kName || t.type == TokenType::kString ||
         t.type == TokenType::kInteger || t.type == TokenType::kFloat || is_op("[") ||
         is_op("{")) &&
        !is_name("else") && !is_name("or") && !is_name("and");
    if (is_op("(")) {
      test->args = parse_call_args();
    } else if (bare_argument) {
      if (is_name("is")) fail("you cannot chain multiple tests with 'is'");
      test->args.positional.push_back(parse_postfix(parse_primary()));
    }
    return test;
  }

  static constexpr int kMaxDepth = 300;

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
  int depth_ = 0;
};

}  // namespace

Template parse_template(std::string_view source) {
  Template tmpl;
  tmpl.source = normalize_source(source);
  tmpl.body = Parser(tokenize(tmpl.source)).parse_all();
  return tmpl;
}

}  // namespace lowbit::jinja
