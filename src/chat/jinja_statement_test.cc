// Statements and whitespace handling, with trim_blocks/lstrip_blocks as transformers sets them.
#include <gtest/gtest.h>

#include "chat/chat_template.h"

namespace lowbit {
namespace {

std::string render(const std::string& source, const std::string& variables = "{}") {
  return ChatTemplate(source).render_jinja(nlohmann::ordered_json::parse(variables));
}

TEST(JinjaWhitespace, TrimAndLstripBlocks) {
  // lstrip_blocks removes the indentation before a block tag, trim_blocks the newline after it.
  EXPECT_EQ(render("{% for i in [1, 2] %}\n    {{ i }}\n{% endfor %}\n"), "    1\n    2\n");
  EXPECT_EQ(render("  {% if true %}\n  x\n  {% endif %}\n  y"), "  x\n  y");
  // Not for expressions, and not with {%+.
  EXPECT_EQ(render("a\n  {{ 'x' }}\nb {%+ if true %}c{% endif %}"), "a\n  x\nb c");
  // Comments behave like block tags; one trailing newline of the template is dropped.
  EXPECT_EQ(render("a\n  {# note #}\nb\n"), "a\nb");
  EXPECT_EQ(render("text\n\n"), "text\n");
}

TEST(JinjaWhitespace, ExplicitControl) {
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("x {{- ' y ' -}} z"), "x y z");
  EXPECT_EQ(render("{%- for i in [1, 2] -%}\n  {{ i }}\n{%- endfor %}"), "12");
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");
  EXPECT_EQ(render("{% raw %}{{ kept }}{% endraw %}"), "{{ kept }}");
  EXPECT_EQ(render("{{ {'a': {'b': 1}} }}"), "{'a': {'b': 1}}");
}

TEST(JinjaStatement, ForLoop) {
  EXPECT_EQ(render("{% for x in [5, 6, 7] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                   "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "103TrueFalse3;212FalseFalse3;321FalseTrue3;");
  EXPECT_EQ(
      render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}/{{ loop.length }} {% endfor %}"),
      "2/2 4/2 ");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}{{ v }}{% endfor %}"), "a1b2");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}"
                   "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }}"
                   "{{ loop.cycle('a', 'b') }} {% endfor %}"),
            "-2a 1-3b 2-a ");
  EXPECT_EQ(render("{% for m in msgs[::-1] %}{{ m }}{% endfor %}", R"({"msgs": [1, 2, 3]})"),
            "321");
}

TEST(JinjaStatement, ScopesAndNamespace) {
  // set inside a loop does not leak (nor carry over between iterations); if shares the scope.
  EXPECT_EQ(render("{% for i in [1, 2] %}[{{ x }}]{% set x = i %}{% endfor %}[{{ x }}]"), "[][][]");
  EXPECT_EQ(render("{% if true %}{% set y = 3 %}{% endif %}{{ y }}"), "3");
  EXPECT_EQ(
      render("{% set ns = namespace(n=0, last=none) %}{% for i in [4, 5] %}"
             "{% set ns.n = ns.n + i %}{% set ns.last = i %}{% endfor %}{{ ns.n }} {{ ns.last }}"),
      "9 5");
  EXPECT_EQ(render("{% set a, b = [1, 2] %}{{ b }}{{ a }}{% set t = 1, 2 %}{{ t }}"), "21(1, 2)");
  EXPECT_EQ(
      render("{% set x %}B{{ 1 + 1 }}{% endset %}{{ x }}{% set y | upper %}u{% endset %}{{ y }}"),
      "B2U");
  EXPECT_EQ(render("{% with a = 1 %}{{ a }}{% endwith %}[{{ a }}]"), "1[]");
}

TEST(JinjaStatement, IfElif) {
  const std::string source = "{% if n > 10 %}a{% elif n > 5 %}b{% else %}c{% endif %}";
  EXPECT_EQ(render(source, R"({"n": 11})"), "a");
  EXPECT_EQ(render(source, R"({"n": 6})"), "b");
  EXPECT_EQ(render(source, R"({"n": 1})"), "c");
}

TEST(JinjaStatement, MacrosAndCallBlocks) {
  EXPECT_EQ(render("{% macro g(name, greeting='Hi') %}{{ greeting }} {{ name }}{% endmacro %}"
                   "{{ g('A') }}, {{ g('B', greeting='Yo') }}, [{{ g() }}]"),
            "Hi A, Yo B, [Hi ]");
  EXPECT_EQ(render("{% macro m(a) %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}"),
            "(2,){'k': 3}");
  EXPECT_EQ(render("{% macro wrap(t) %}<{{ t }}>{{ caller() }}</{{ t }}>{% endmacro %}"
                   "{% call wrap('b') %}in{% endcall %}"),
            "<b>in</b>");
  EXPECT_EQ(render("{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}"
                   "{% call(v) each([1, 2]) %}<{{ v }}>{% endcall %}"),
            "<1><2>");
  EXPECT_EQ(render("{% filter upper %}a{{ 'b' }}{% endfilter %}"), "AB");
  EXPECT_EQ(render("{% generation %}kept{% endgeneration %}"), "kept");
}

}  // namespace
}  // namespace lowbit
