// Splits a template into text and tag tokens the way Jinja's lexer does under transformers'
// settings (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False), so that the
// whitespace around tags comes out exactly as in Python.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_value.h"

namespace lowbit::jinja {

enum class TokenType {
  kData,        // literal template text, whitespace control already applied
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,    // text holds the unescaped value
  kInteger,   // int_value
  kFloat,     // float_value
  kOperator,  // text holds the spelling: "+", "//", "==", "(", ...
  kEof
};

struct Token {
  TokenType type;
  uint32_t offset;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
};

// Jinja normalises \r\n and \r to \n and drops one trailing newline before lexing; positions
// refer to this normalised text.
std::string normalize_source(std::string_view source);

// Throws SourceError on unterminated tags, comments, strings or unbalanced brackets.
std::vector<Token> tokenize(std::string_view normalized_source);

// 1-based line and column (in code points) of a byte offset, for error messages.
std::pair<int, int> line_column(std::string_view normalized_source, uint32_t offset);

}  // namespace lowbit::jinja
