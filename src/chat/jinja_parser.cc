#include "chat/jinja_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "chat/jinja_expression_parser.h"
#include "chat/jinja_token_cursor.h"

namespace lowbit::jinja {
namespace {

// Tags Jinja knows but lowbit does not implement; named in the error instead of "unknown tag".
constexpr std::string_view kUnsupportedTags[] = {"block", "extends",    "include", "import",
                                                 "from",  "autoescape", "do",      "trans"};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : c_(std::move(tokens)), expr_(c_) {}

  Body parse_all() {
    Body body = subparse({});
    if (c_.cur().type != TokenType::kEof) c_.fail("unexpected tag '" + c_.cur().text + "'");
    return body;
  }

 private:
  Body subparse(std::initializer_list<std::string_view> end_tags) {
    Body body;
    while (c_.cur().type != TokenType::kEof) {
      const Token& t = c_.cur();
      if (t.type == TokenType::kData) {
        body.push_back(std::make_unique<TextStmt>(t.offset, t.text));
        c_.advance();
      } else if (t.type == TokenType::kVarBegin) {
        c_.advance();
        body.push_back(std::make_unique<OutputStmt>(t.offset, expr_.parse_tuple(true, {}, false)));
        c_.expect(TokenType::kVarEnd, "'}}'");
      } else if (t.type == TokenType::kBlockBegin) {
        c_.advance();
        const bool is_end =
            c_.cur().type == TokenType::kName &&
            std::find(end_tags.begin(), end_tags.end(), c_.cur().text) != end_tags.end();
        if (is_end) return body;
        parse_statement(body);
        c_.expect(TokenType::kBlockEnd, "'%}'");
      } else {
        c_.fail("unexpected " + TokenCursor::describe(t));
      }
    }
    return body;
  }

  // Parses `%}` body `{% end... %}`; `opener` is the offset and name of the opening tag.
  Body parse_body(std::initializer_list<std::string_view> end_tags, bool drop_end, uint32_t opener,
                  std::string_view tag) {
    c_.expect(TokenType::kBlockEnd, "'%}'");
    Body body = subparse(end_tags);
    if (c_.cur().type == TokenType::kEof) {
      c_.fail_at(opener, fmt::format("'{}' tag is never closed: expected {{% end{} %}}", tag, tag));
    }
    if (drop_end) c_.advance();
    return body;
  }

  void parse_statement(Body& out) {
    TokenCursor::DepthGuard guard(c_);
    if (c_.cur().type != TokenType::kName) {
      c_.fail("expected a tag name, got " + TokenCursor::describe(c_.cur()));
    }
    const uint32_t offset = c_.cur().offset;
    const std::string tag = c_.cur().text;
    if (tag == "if") return out.push_back(parse_if());
    if (tag == "for") return out.push_back(parse_for());
    if (tag == "set") return out.push_back(parse_set());
    if (tag == "macro") return out.push_back(parse_macro());
    if (tag == "call") return out.push_back(parse_call_block());
    if (tag == "filter") return out.push_back(parse_filter_block());
    if (tag == "with") return out.push_back(parse_with());
    if (tag == "generation") {
      c_.advance();
      auto scope = std::make_unique<ScopeStmt>(offset);
      scope->body = parse_body({"endgeneration"}, true, offset, tag);
      return out.push_back(std::move(scope));
    }
    if (tag == "print") {
      c_.advance();
      while (c_.cur().type != TokenType::kBlockEnd) {
        out.push_back(std::make_unique<OutputStmt>(c_.cur().offset, expr_.parse_expression(true)));
        if (!c_.skip_op(",")) break;
      }
      return;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) c_.fail(fmt::format("'{}' outside of a for loop", tag));
      c_.advance();
      return out.push_back(
          std::make_unique<Stmt>(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, offset));
    }
    for (std::string_view unsupported : kUnsupportedTags) {
      if (tag == unsupported) {
        c_.fail(fmt::format("the '{}' tag is not supported by lowbit's chat-template interpreter",
                            tag));
      }
    }
    if (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif") {
      c_.fail(fmt::format("unexpected tag '{}' (no open block expects it here)", tag));
    }
    c_.fail(fmt::format("unknown tag '{}'", tag));
  }

  StmtPtr parse_if() {
    auto node = std::make_unique<IfStmt>(c_.cur().offset);
    const uint32_t opener = c_.cur().offset;
    c_.advance();
    while (true) {
      ExprPtr test = expr_.parse_tuple(false, {}, false);
      Body body = parse_body({"elif", "else", "endif"}, false, opener, "if");
      node->branches.emplace_back(std::move(test), std::move(body));
      const std::string end = c_.cur().text;
      c_.advance();
      if (end == "elif") continue;
      if (end == "else") node->otherwise = parse_body({"endif"}, true, opener, "if");
      break;
    }
    return node;
  }

  StmtPtr parse_for() {
    auto node = std::make_unique<ForStmt>(c_.cur().offset);
    const uint32_t opener = c_.cur().offset;
    c_.advance();
    node->target = parse_target(false);
    if (!c_.skip_name("in")) {
      c_.fail("expected 'in' in for loop, got " + TokenCursor::describe(c_.cur()));
    }
    node->iterable = expr_.parse_tuple(false, {"recursive"}, false);
    if (c_.skip_name("if")) node->filter = expr_.parse_expression(true);
    if (c_.is_name("recursive")) c_.fail("recursive for loops are not supported");
    ++loop_depth_;
    node->body = parse_body({"endfor", "else"}, false, opener, "for");
    --loop_depth_;
    const std::string end = c_.cur().text;
    c_.advance();
    if (end == "else") node->otherwise = parse_body({"endfor"}, true, opener, "for");
    return node;
  }

  // Names, `a, b` tuples (optionally parenthesised) or, for set, `namespace.attr`.
  Target parse_target(bool allow_namespace) {
    Target target;
    if (allow_namespace && c_.cur().type == TokenType::kName &&
        c_.peek().type == TokenType::kOperator && c_.peek().text == ".") {
      target.names.push_back(c_.expect_name());
      c_.advance();
      target.attr = c_.expect_name();
      return target;
    }
    const bool parens = c_.skip_op("(");
    while (true) {
      target.names.push_back(c_.expect_name());
      if (!c_.skip_op(",")) break;
      target.is_tuple = true;
      if (c_.cur().type != TokenType::kName) break;  // trailing comma
    }
    if (parens) {
      target.is_tuple = true;
      c_.expect_op(")");
    }
    for (const std::string& name : target.names) {
      if (name == "true" || name == "false" || name == "none" || name == "True" ||
          name == "False" || name == "None") {
        c_.fail(fmt::format("can't assign to constant '{}'", name));
      }
    }
    return target;
  }

  StmtPtr parse_set() {
    const uint32_t opener = c_.cur().offset;
    c_.advance();
    Target target = parse_target(true);
    if (c_.skip_op("=")) {
      auto node = std::make_unique<SetStmt>(opener);
      node->target = std::move(target);
      node->value = expr_.parse_tuple(true, {}, false);
      return node;
    }
    auto node = std::make_unique<SetBlockStmt>(opener);
    node->target = std::move(target);
    node->filter = expr_.parse_filter(nullptr, false);
    node->body = parse_body({"endset"}, true, opener, "set");
    return node;
  }

  std::vector<Param> parse_signature() {
    std::vector<Param> params;
    c_.expect_op("(");
    while (!c_.is_op(")")) {
      if (!params.empty()) c_.expect_op(",");
      if (c_.is_op(")")) break;
      Param param;
      param.name = c_.expect_name();
      if (c_.skip_op("=")) {
        param.default_value = expr_.parse_expression(true);
      } else if (!params.empty() && params.back().default_value) {
        c_.fail("non-default argument follows default argument");
      }
      params.push_back(std::move(param));
    }
    c_.expect_op(")");
    return params;
  }

  StmtPtr parse_macro() {
    auto node = std::make_unique<MacroStmt>(c_.cur().offset);
    c_.advance();
    node->name = c_.expect_name();
    node->params = parse_signature();
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot cross a macro boundary
    node->body = parse_body({"endmacro"}, true, node->offset, "macro");
    loop_depth_ = saved_depth;
    return node;
  }

  StmtPtr parse_call_block() {
    auto node = std::make_unique<CallBlockStmt>(c_.cur().offset);
    c_.advance();
    if (c_.is_op("(")) node->caller_params = parse_signature();
    ExprPtr call = expr_.parse_expression(true);
    if (call->kind != ExprKind::kCall) {
      c_.fail_at(call->offset, "expected a macro call in {% call %}");
    }
    node->call.reset(static_cast<CallExpr*>(call.release()));
    node->body = parse_body({"endcall"}, true, node->offset, "call");
    return node;
  }

  StmtPtr parse_filter_block() {
    auto node = std::make_unique<FilterBlockStmt>(c_.cur().offset);
    c_.advance();
    node->filter = expr_.parse_filter(nullptr, true);
    node->body = parse_body({"endfilter"}, true, node->offset, "filter");
    return node;
  }

  StmtPtr parse_with() {
    auto node = std::make_unique<WithStmt>(c_.cur().offset);
    c_.advance();
    while (c_.cur().type != TokenType::kBlockEnd) {
      if (!node->assignments.empty()) c_.expect_op(",");
      Target target = parse_target(false);
      c_.expect_op("=");
      node->assignments.emplace_back(std::move(target), expr_.parse_expression(true));
    }
    node->body = parse_body({"endwith"}, true, node->offset, "with");
    return node;
  }

  TokenCursor c_;
  ExpressionParser expr_;
  int loop_depth_ = 0;
};

}  // namespace

Template parse_template(std::string_view source) {
  Template tmpl;
  tmpl.source = normalize_source(source);
  tmpl.body = Parser(tokenize(tmpl.source)).parse_all();
  return tmpl;
}

}  // namespace lowbit::jinja
