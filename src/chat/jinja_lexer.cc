#include "chat/jinja_lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "chat/py_text.h"

namespace lowbit::jinja {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;  // non-ASCII identifiers, leniently
}
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Longest operators first, as Jinja's operator regex does.
constexpr std::array<std::string_view, 25> kOperators = {
    "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
    "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ","};

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) lex_text();
    tokens_.push_back(Token{TokenType::kEof, static_cast<uint32_t>(src_.size()), {}});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(size_t offset, const std::string& message) {
    throw SourceError(static_cast<uint32_t>(offset), message);
  }

  bool starts_with(size_t at, std::string_view s) const {
    return src_.compare(at, s.size(), s) == 0;
  }

  // Skips Python `\s*` from `at`; returns the new offset.
  size_t skip_space(size_t at) const {
    while (at < src_.size()) {
      size_t next = at;
      if (!py::is_space(py::next_code_point(src_, next))) break;
      at = next;
    }
    return at;
  }

  void emit(TokenType type, size_t offset, std::string text = {}) {
    tokens_.push_back(Token{type, static_cast<uint32_t>(offset), std::move(text)});
  }

  // Applies `{%-` / lstrip_blocks to the text in front of a tag, then emits it.
  void emit_text(size_t begin, size_t end, char sign, bool is_variable) {
    std::string text(src_.substr(begin, end - begin));
    if (sign == '-') {
      text = py::strip(text, std::nullopt, false, true);
    } else if (sign != '+' && !is_variable) {
      const size_t line_begin = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
      const std::string_view tail = std::string_view(text).substr(line_begin);
      if ((line_begin > 0 || line_starting_) && !tail.empty() &&
          py::strip(tail, std::nullopt, true, true).empty()) {
        text.resize(line_begin);
      }
    }
    if (!text.empty()) emit(TokenType::kData, begin, std::move(text));
  }

  void lex_text() {
    size_t tag = pos_;
    while (true) {
      tag = src_.find('{', tag);
      if (tag == std::string_view::npos || tag + 1 >= src_.size()) {
        emit(TokenType::kData, pos_, std::string(src_.substr(pos_)));
        pos_ = src_.size();
        return;
      }
      const char kind = src_[tag + 1];
      if (kind == '{' || kind == '%' || kind == '#') break;
      ++tag;
    }
    const char kind = src_[tag + 1];
    const char sign = (tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+'))
                          ? src_[tag + 2]
                          : '\0';
    if (kind == '%' && lex_raw(tag, sign)) return;
    emit_text(pos_, tag, sign, kind == '{');
    line_starting_ = false;
    pos_ = tag + 2 + (sign ? 1 : 0);
    if (kind == '#') {
      lex_comment(tag);
    } else {
      lex_tag(tag, kind == '%');
    }
  }

  // {% raw %}...{% endraw %}: the body is literal text.
  bool lex_raw(size_t tag, char sign) {
    size_t at = skip_space(tag + 2 + (sign ? 1 : 0));
    if (!starts_with(at, "raw")) return false;
    at = skip_space(at + 3);
    if (starts_with(at, "-%}")) {
      at = skip_space(at + 3);
    } else if (starts_with(at, "%}")) {
      at += 2;
    } else {
      return false;
    }
    emit_text(pos_, tag, sign, false);
    line_starting_ = at > 0 && src_[at - 1] == '\n';
    for (size_t end = src_.find("{%", at); end != std::string_view::npos;
         end = src_.find("{%", end + 1)) {
      const char end_sign =
          (end + 2 < src_.size() && (src_[end + 2] == '-' || src_[end + 2] == '+')) ? src_[end + 2]
                                                                                    : '\0';
      size_t p = skip_space(end + 2 + (end_sign ? 1 : 0));
      if (!starts_with(p, "endraw")) continue;
      p = skip_space(p + 6);
      if (starts_with(p, "+%}")) {
        p += 3;
      } else if (starts_with(p, "-%}")) {
        p = skip_space(p + 3);
      } else if (starts_with(p, "%}")) {
        p += 2;
        if (p < src_.size() && src_[p] == '\n') ++p;
      } else {
        continue;
      }
      emit_text(at, end, end_sign, false);
      line_starting_ = src_[p - 1] == '\n';
      pos_ = p;
      return true;
    }
    fail(tag, "missing end of raw directive ({% endraw %})");
  }

  void lex_comment(size_t tag) {
    for (size_t at = pos_; at < src_.size(); ++at) {
      size_t end = 0;
      if (starts_with(at, "+#}")) {
        end = at + 3;
      } else if (starts_with(at, "-#}")) {
        end = skip_space(at + 3);
      } else if (starts_with(at, "#}")) {
        end = at + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return;
    }
    fail(tag, "missing end of comment tag '#}'");
  }

  // Returns true when the tag ended (and emits the end token).
  bool lex_tag_end(bool is_block) {
    if (!brackets_.empty()) return false;
    const std::string_view close = is_block ? "%}" : "}}";
    const TokenType type = is_block ? TokenType::kBlockEnd : TokenType::kVarEnd;
    const size_t at = pos_;
    if (src_[pos_] == '-' && starts_with(pos_ + 1, close)) {
      pos_ = skip_space(pos_ + 3);
    } else if (is_block && src_[pos_] == '+' && starts_with(pos_ + 1, close)) {
      pos_ += 3;
    } else if (starts_with(pos_, close)) {
      pos_ += 2;
      // trim_blocks: the first newline after a block tag is dropped.
      if (is_block && pos_ < src_.size() && src_[pos_] == '\n') ++pos_;
    } else {
      return false;
    }
    line_starting_ = src_[pos_ - 1] == '\n';
    emit(type, at);
    return true;
  }

  void lex_tag(size_t tag, bool is_block) {
    emit(is_block ? TokenType::kBlockBegin : TokenType::kVarBegin, tag);
    brackets_.clear();
    while (true) {
      if (pos_ >= src_.size()) {
        fail(tag, is_block ? "unterminated '{%' tag: missing '%}'"
                           : "unterminated '{{' expression: missing '}}'");
      }
      if (lex_tag_end(is_block)) return;
      const size_t after_space = skip_space(pos_);
      if (after_space != pos_) {
        pos_ = after_space;
        continue;
      }
      const char c = src_[pos_];
      if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        const size_t begin = pos_;
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        emit(TokenType::kName, begin, std::string(src_.substr(begin, pos_ - begin)));
      } else if (c == '\'' || c == '"') {
        lex_string();
      } else {
        lex_operator();
      }
    }
  }

  // Digits with optional '_' separators between them.
  size_t scan_digits(size_t at, bool (*ok)(char)) const {
    size_t p = at;
    if (p >= src_.size() || !ok(src_[p])) return at;
    while (p < src_.size() &&
           (ok(src_[p]) || (src_[p] == '_' && p + 1 < src_.size() && ok(src_[p + 1])))) {
      ++p;
    }
    return p;
  }

  void lex_number() {
    const size_t begin = pos_;
    const size_t int_end = scan_digits(begin, is_digit);
    size_t end = int_end;
    bool is_float = false;
    const bool after_dot = begin > 0 && src_[begin - 1] == '.';  // Jinja's (?<!\.)
    if (!after_dot && end < src_.size() && src_[end] == '.' && end + 1 < src_.size() &&
        is_digit(src_[end + 1])) {
      end = scan_digits(end + 1, is_digit);
      is_float = true;
    }
    if (!after_dot && end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t p = end + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      const size_t exp_end = scan_digits(p, is_digit);
      if (exp_end != p) {
        end = exp_end;
        is_float = true;
      }
    }
    std::string text;
    for (char c : src_.substr(begin, end - begin)) {
      if (c != '_') text += c;
    }
    if (is_float) {
      Token token{TokenType::kFloat, static_cast<uint32_t>(begin), text};
      token.float_value = std::strtod(text.c_str(), nullptr);
      tokens_.push_back(std::move(token));
      pos_ = end;
      return;
    }
    lex_integer(begin);
  }

  void lex_integer(size_t begin) {
    int base = 10;
    size_t digits_begin = begin;
    if (src_[begin] == '0' && begin + 1 < src_.size()) {
      const char p = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[begin + 1])));
      if (p == 'x') base = 16;
      if (p == 'o') base = 8;
      if (p == 'b') base = 2;
      if (base != 10) digits_begin = begin + 2;
    }
    size_t end = digits_begin;
    auto in_base = [&](char c) {
      const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : std::isxdigit(static_cast<unsigned char>(c))
                        ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                        : 99;
      return d < base;
    };
    while (end < src_.size() && (in_base(src_[end]) || src_[end] == '_')) ++end;
    if (base == 10 && src_[begin] == '0') {
      // Jinja's "0(_?0)*": a leading zero only continues with zeros.
      end = begin + 1;
      while (end < src_.size() && (src_[end] == '0' || src_[end] == '_')) ++end;
    }
    std::string digits;
    for (char c : src_.substr(digits_begin, end - digits_begin)) {
      if (c != '_') digits += c;
    }
    if (digits.empty()) fail(begin, "invalid integer literal");
    errno = 0;
    const long long value = std::strtoll(digits.c_str(), nullptr, base);
    if (errno == ERANGE) fail(begin, "integer literal too large (lowbit uses 64-bit integers)");
    Token token{TokenType::kInteger, static_cast<uint32_t>(begin), digits};
    token.int_value = value;
    tokens_.push_back(std::move(token));
    pos_ = end;
  }

  void lex_string() {
    const size_t begin = pos_;
    const char quote = src_[pos_];
    size_t p = pos_ + 1;
    while (p < src_.size() && src_[p] != quote) p += src_[p] == '\\' ? 2 : 1;
    if (p >= src_.size()) fail(begin, "unterminated string literal");
    tokens_.push_back(Token{TokenType::kString, static_cast<uint32_t>(begin),
                            unescape(src_.substr(begin + 1, p - begin - 1), begin)});
    pos_ = p + 1;
  }

  // Python's "unicode-escape" decoding of a string literal body.
  std::string unescape(std::string_view body, size_t offset) {
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] != '\\' || i + 1 >= body.size()) {
        out += body[i];
        continue;
      }
      const char e = body[++i];
      auto hex = [&](int n) -> char32_t {
        if (i + n >= body.size()) {
          fail(offset, fmt::format("truncated \\{}XX escape in string literal", e));
        }
        char32_t v = 0;
        for (int k = 1; k <= n; ++k) {
          const char h = body[i + k];
          if (!std::isxdigit(static_cast<unsigned char>(h))) {
            fail(offset, fmt::format("truncated \\{} escape in string literal", e));
          }
          v = v * 16 + (std::isdigit(static_cast<unsigned char>(h))
                            ? h - '0'
                            : std::tolower(static_cast<unsigned char>(h)) - 'a' + 10);
        }
        i += n;
        return v;
      };
      switch (e) {
        case '\n':
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          py::append_utf8(out, hex(2));
          break;
        case 'u':
          py::append_utf8(out, hex(4));
          break;
        case 'U': {
          const char32_t cp = hex(8);
          if (cp > 0x10FFFF) fail(offset, "illegal Unicode character in string literal");
          py::append_utf8(out, cp);
          break;
        }
        case 'N':
          fail(offset, "\\N{...} escapes are not supported in string literals");
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = e - '0';
            for (int k = 0;
                 k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
              v = v * 8 + (body[++i] - '0');
            }
            py::append_utf8(out, v);
          } else {
            out += '\\';
            out += e;  // Python keeps unknown escapes verbatim
          }
      }
    }
    return out;
  }

  void lex_operator() {
    for (std::string_view op : kOperators) {
      if (!starts_with(pos_, op)) continue;
      check_brackets(op);
      emit(TokenType::kOperator, pos_, std::string(op));
      pos_ += op.size();
      return;
    }
    fail(pos_, fmt::format("unexpected character '{}'", src_[pos_]));
  }

  // Jinja only ends a tag on '}}' / '%}' when brackets are balanced, so '{{ {"a": {}} }}' works.
  void check_brackets(std::string_view op) {
    if (op == "{") brackets_.push_back('}');
    if (op == "(") brackets_.push_back(')');
    if (op == "[") brackets_.push_back(']');
    if (op == "}" || op == ")" || op == "]") {
      if (brackets_.empty()) fail(pos_, fmt::format("unexpected '{}'", op));
      if (brackets_.back() != op[0]) {
        fail(pos_, fmt::format("unexpected '{}', expected '{}'", op, brackets_.back()));
      }
      brackets_.pop_back();
    }
  }

  std::string_view src_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<char> brackets_;
  std::vector<Token> tokens_;
};

}  // namespace

std::string normalize_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<Token> tokenize(std::string_view normalized_source) {
  return Lexer(normalized_source).run();
}

std::pair<int, int> line_column(std::string_view source, uint32_t offset) {
  const size_t end = std::min<size_t>(offset, source.size());
  int line = 1;
  size_t line_begin = 0;
  for (size_t i = 0; i < end; ++i) {
    if (source[i] == '\n') {
      ++line;
      line_begin = i + 1;
    }
  }
  return {line, static_cast<int>(py::length(source.substr(line_begin, end - line_begin))) + 1};
}

}  // namespace lowbit::jinja
