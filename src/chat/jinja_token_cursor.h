// The token stream shared by the statement and expression parsers, with the small helpers
// both use (peek, skip, expect) and a depth guard against pathological nesting.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/jinja_lexer.h"

namespace lowbit::jinja {

class TokenCursor {
 public:
  explicit TokenCursor(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

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

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kData:
        return "template text";
      case TokenType::kVarBegin:
        return "'{{'";
      case TokenType::kVarEnd:
        return "end of print statement '}}'";
      case TokenType::kBlockBegin:
        return "'{%'";
      case TokenType::kBlockEnd:
        return "end of statement block '%}'";
      case TokenType::kEof:
        return "end of template";
      case TokenType::kString:
        return "string literal";
      case TokenType::kInteger:
      case TokenType::kFloat:
        return "number " + t.text;
      default:
        return "'" + t.text + "'";
    }
  }

  // Bounds recursion so a pathological template cannot overflow the stack.
  class DepthGuard {
   public:
    explicit DepthGuard(TokenCursor& c) : c_(c) {
      if (++c_.depth_ > kMaxDepth) c_.fail("template nested too deeply");
    }
    ~DepthGuard() { --c_.depth_; }

   private:
    TokenCursor& c_;
  };

 private:
  static constexpr int kMaxDepth = 300;

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace lowbit::jinja
