// Everything lowbit does not support, and every template failure, must be a lowbit::Error that
// names LABEL:LINE:COL and the construct, never silently different text.
#include <gtest/gtest.h>

#include "chat/chat_template.h"

namespace lowbit {
namespace {

// The message of the Error that parsing or rendering throws ("" if none).
std::string error_of(const std::string& source, const std::string& variables = "{}") {
  try {
    ChatTemplate(source, "tpl").render_jinja(nlohmann::ordered_json::parse(variables));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& source, const std::string& prefix, const std::string& fragment,
                  const std::string& variables = "{}") {
  const std::string message = error_of(source, variables);
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << "source: " << source << "\nmessage: " << message;
  EXPECT_NE(message.find(fragment), std::string::npos)
      << "source: " << source << "\nmessage: " << message;
}

TEST(JinjaError, UnsupportedConstructsNamePosition) {
  expect_error("ok\n  {% include 'x.jinja' %}", "tpl:2:6: ", "'include' tag is not supported");
  expect_error("{% extends 'base' %}", "tpl:1:4: ", "'extends'");
  expect_error("{{ x | batch(2) }}", "tpl:1:8: ", "'batch' filter is not supported");
  expect_error("{{ x | no_such_filter }}", "tpl:1:8: ", "no filter named 'no_such_filter'");
  expect_error("{{ x is no_such_test }}", "tpl:1:9: ", "no test named 'no_such_test'");
  expect_error("{% frobnicate %}", "tpl:1:4: ", "unknown tag 'frobnicate'");
  expect_error("{% for x in y recursive %}{% endfor %}", "tpl:1:15: ", "recursive");
  expect_error("{{ f(*args) }}", "tpl:1:6: ", "*args");
  expect_error("{{ cycler('a') }}", "tpl:1:10: ", "'cycler' is not supported");
  expect_error("{{ 'x'.zfill(3) + 'y'.swapcase() }}", "tpl:1:", "'swapcase' is not supported");
}

TEST(JinjaError, SyntaxErrors) {
  expect_error("a {{ x ", "tpl:1:3: ", "unterminated '{{'");
  expect_error("\n{% if x", "tpl:2:1: ", "unterminated '{%'");
  expect_error("{% if x %}never closed", "tpl:1:4: ", "'if' tag is never closed");
  expect_error("{% for x in y %}{% endif %}", "tpl:1:20: ", "unexpected tag 'endif'");
  expect_error("{# open comment", "tpl:1:1: ", "missing end of comment");
  expect_error("{{ 'abc }}", "tpl:1:4: ", "unterminated string");
  expect_error("{{ (1 }}", "tpl:1:", "unexpected '}'");
  expect_error("{{ }}", "tpl:1:4: ", "expected an expression");
  expect_error("{% break %}", "tpl:1:4: ", "outside of a for loop");
  expect_error("{{ 99999999999999999999 }}", "tpl:1:4: ", "too large");
}

TEST(JinjaError, RuntimeErrorsNamePosition) {
  expect_error("line1\n{{ missing.attr }}", "tpl:2:", "'missing' is undefined");
  expect_error("{{ d.a.b }}", "tpl:1:", "'dict object' has no attribute 'a'", R"({"d": {}})");
  expect_error("{{ 1 + 'a' }}", "tpl:1:", "unsupported operand type(s) for +: 'int' and 'str'");
  expect_error("{{ 'a' + missing }}", "tpl:1:", "'missing' is undefined");
  expect_error("{{ 1 // 0 }}", "tpl:1:", "division or modulo by zero");
  expect_error("{{ 1 < 'a' }}", "tpl:1:", "'<' not supported");
  expect_error("{{ 5 | length }}", "tpl:1:", "has no len()");
  expect_error("{{ x | tojson }}", "tpl:1:", "not JSON serializable");
  expect_error("{{ [].append(1) }}", "tpl:1:", "unsafe");
  expect_error("{% set x = 1 %}{% set x.y = 2 %}", "tpl:1:", "non-namespace");
  expect_error("{{ range(200000) | length }}", "tpl:1:", "Range too big");
  expect_error("{{ 9223372036854775807 + 1 }}", "tpl:1:", "overflow");
  expect_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "tpl:1:", "recursed too deeply");
}

TEST(JinjaError, RaiseExceptionCarriesTemplateMessage) {
  const ChatTemplate tmpl(
      "{% if messages[0].role != 'user' %}\n"
      "  {{- raise_exception('Conversation roles must alternate') }}\n"
      "{% endif %}ok");
  try {
    tmpl.render(nlohmann::ordered_json::parse(R"({"messages": [{"role": "system"}]})"));
    FAIL() << "expected ChatTemplateRaised";
  } catch (const ChatTemplateRaised& e) {
    EXPECT_EQ(e.message(), "Conversation roles must alternate");
    EXPECT_EQ(std::string(e.what()).rfind("chat_template:2:", 0), 0u) << e.what();
  }
  EXPECT_EQ(tmpl.render(nlohmann::ordered_json::parse(R"({"messages": [{"role": "user"}]})")),
            "ok");
}

TEST(JinjaError, UndefinedIsEmptyAndFalsyWhereJinjaAllowsIt) {
  const ChatTemplate tmpl(
      "[{{ x }}]{% if x %}T{% else %}F{% endif %}{{ x | length }}{{ x ~ 'a' }}"
      "{% for i in x %}i{% endfor %}{{ 'a' in x }}");
  EXPECT_EQ(tmpl.render_jinja(nlohmann::ordered_json::object()), "[]F0aFalse");
}

}  // namespace
}  // namespace lowbit
