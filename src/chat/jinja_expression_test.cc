// Expressions, filters, tests and methods. Expected strings are what Jinja2 (as configured by
// transformers) renders; tests/python/test_chat_template_jinja.py checks many more against it.
#include <gtest/gtest.h>

#include "chat/chat_template.h"

namespace lowbit {
namespace {

std::string render(const std::string& source, const std::string& variables = "{}") {
  return ChatTemplate(source).render_jinja(nlohmann::ordered_json::parse(variables));
}

TEST(JinjaExpression, Literals) {
  EXPECT_EQ(render("{{ 'a\\n\\x41\\u00e9' }}|{{ \"q\\\"\" }}|{{ 'a' 'b' }}"), "a\nAé|q\"|ab");
  EXPECT_EQ(render("{{ 42 }} {{ 1_000 }} {{ 0x10 }} {{ 1.5 }} {{ 1e3 }} {{ 2.5e-7 }}"),
            "42 1000 16 1.5 1000.0 2.5e-07");
  EXPECT_EQ(render("{{ true }} {{ False }} {{ none }} {{ None }}"), "True False None None");
  EXPECT_EQ(render("{{ [1, 'a', none, {'k': \"it's\"}] }} {{ (1,) }} {{ () }}"),
            "[1, 'a', None, {'k': \"it's\"}] (1,) ()");
}

TEST(JinjaExpression, Arithmetic) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}"),
            "5.0 3 -4 2 1024");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 2 ** -1 }} {{ true + 1 }}"),
            "0.30000000000000004 2.5 0.5 2");
  EXPECT_EQ(render("{{ 'ab' * 2 }} {{ [0] * 2 }} {{ [1] + [2] }} {{ 'a' + 'b' }}"),
            "abab [0, 0] [1, 2] ab");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ missing ~ true }}"), "a1NoneTrue");
  EXPECT_EQ(render("{{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ -n|abs }}", R"({"n": 3})"), "4 64 3");
}

TEST(JinjaExpression, ComparisonsAndLogic) {
  EXPECT_EQ(
      render(
          "{{ 1 == 1.0 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }}"),
      "True True False True True");
  EXPECT_EQ(
      render("{{ 'a' in 'cat' }} {{ 2 not in [1] }} {{ 'k' in {'k': 1} }} {{ 'x' in missing }}"),
      "True True True False");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 'y' and 0 }} {{ not none }} {{ 1 if 0 else 2 if 0 else 3 }}"),
            "x 0 True 3");
  EXPECT_EQ(render("[{{ 'a' if false }}]"), "[]");
}

TEST(JinjaExpression, AttributeItemAndSlices) {
  const std::string vars =
      R"({"m": [{"role": "user", "content": "hi"}], "d": {"items": 5, "a": {"b": [10, 20]}}})";
  EXPECT_EQ(
      render("{{ m[0].role }} {{ m[-1]['content'] }} {{ d.a.b.1 }} {{ d['a']['b'][0] }}", vars),
      "user hi 20 10");
  EXPECT_EQ(render("[{{ d.missing }}][{{ m[5] }}][{{ 'abc'[9] }}]", vars), "[][][]");
  // Attribute syntax finds dict methods first, item syntax finds keys first (as in Jinja).
  EXPECT_EQ(render("{{ d['items'] }} {{ d.items() | list | length }}", vars), "5 2");
  EXPECT_EQ(
      render(
          "{{ 'abcdef'[::-1] }} {{ 'héllo'[1:4] }} {{ [1, 2, 3, 4][1::2] }} {{ [1, 2, 3][-2:] }}"),
      "fedcba éll [2, 4] [2, 3]");
}

TEST(JinjaExpression, StringMethods) {
  EXPECT_EQ(render("{{ '<think>a</think>\\n\\nb'.split('</think>')[-1].lstrip('\\n') }}"), "b");
  EXPECT_EQ(render("{{ ' a b '.split() }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'xxhixx'.strip('x') }}"),
            "['a', 'b'] ['a,b', 'c'] hi");
  EXPECT_EQ(
      render("{{ 'ab'.startswith('a') }} {{ 'ab'.endswith(('x', 'b')) }} {{ 'Hi'.upper() }}"
             "{{ 'Hi'.lower() }} {{ 'hello world'.title() }} {{ 'aaa'.replace('a', 'b', 2) }}"),
      "True True HIhi Hello World bba");
  EXPECT_EQ(
      render("{{ ', '.join(['a', 'b']) }} {{ '{} {x}'.format(1, x=2) }} {{ 'abc'.find('c') }}"),
      "a, b 1 2 2");
  EXPECT_EQ(render("{{ '%s=%d' % ('n', 3) }} {{ '%05.1f' % 2.25 }}"), "n=3 002.2");
}

TEST(JinjaExpression, DictMethods) {
  const std::string vars = R"({"d": {"b": 1, "a": 2}})";
  EXPECT_EQ(render("{{ d.items() | list }} {{ d.keys() | list }} {{ d.values() | list }}", vars),
            "[('b', 1), ('a', 2)] ['b', 'a'] [1, 2]");
  EXPECT_EQ(render("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 9) }}", vars), "2 None 9");
}

TEST(JinjaExpression, Filters) {
  const std::string vars =
      R"({"m": [{"role": "system"}, {"role": "user", "x": 1}, {"role": "user"}], "s": "  Hi  "})";
  EXPECT_EQ(
      render(
          "{{ m | length }} {{ m | selectattr('role', 'equalto', 'user') | list | length }}"
          " {{ m | map(attribute='role') | join(',') }} {{ m | rejectattr('x') | list | length }}",
          vars),
      "3 2 system,user,user 2");
  EXPECT_EQ(render("[{{ s | trim }}] {{ s | upper | trim }} {{ 'hELLO' | capitalize }} {{ 'a-b c' "
                   "| title }}",
                   vars),
            "[Hi] HI Hello A-B C");
  EXPECT_EQ(
      render(
          "{{ missing | default('d') }} {{ '' | default('e', true) }} {{ none | default('n') }}"),
      "d e None");
  EXPECT_EQ(render("{{ [3, 1, 2] | sort }} {{ ['b', 'A'] | sort }} {{ [1, 2] | reverse | list }} "
                   "{{ [1, 2] | first }}"
                   " {{ [1, 2] | last }} {{ 'ab' | list }} {{ [1, 1, 2] | unique | list }}"),
            "[1, 2, 3] ['A', 'b'] [2, 1] 1 2 ['a', 'b'] [1, 2]");
  EXPECT_EQ(render("{{ '3.7' | int }} {{ 'x' | int }} {{ 2.9 | int }} {{ '2.5' | float }} {{ 5 | "
                   "string + '!' }}"),
            "3 0 2 2.5 5!");
  EXPECT_EQ(render("{{ {'a': 1} | items | list }} {{ 'x.y' | replace('.', '_') }} {{ [1, 2] | sum "
                   "}} {{ [3, 9] | max }}"),
            "[('a', 1)] x_y 3 9");
  EXPECT_EQ(render("{{ '%s-%s' | format('a', 'b') }} {{ 'a\\nb' | indent(2) }} {{ '<&>' | e }}"),
            "a-b a\n  b &lt;&amp;&gt;");
}

TEST(JinjaExpression, TojsonMatchesPythonJsonDumps) {
  const std::string vars =
      R"({"t": {"name": "f", "desc": "é \"q\"\n", "n": [1, 2.0, null, true], "o": {}, "z": 1e20}})";
  EXPECT_EQ(
      render("{{ t | tojson }}", vars),
      R"({"name": "f", "desc": "é \"q\"\n", "n": [1, 2.0, null, true], "o": {}, "z": 1e+20})");
  EXPECT_EQ(render("{{ t.n | tojson(indent=2) }}", vars), "[\n  1,\n  2.0,\n  null,\n  true\n]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }} {{ 'é🙂' | "
                   "tojson(ensure_ascii=true) }}"),
            R"({"a": 2, "b": 1} "\u00e9\ud83d\ude42")");
  EXPECT_EQ(render("{{ {'a': [1]} | tojson(separators=(',', ':')) }}"), R"({"a":[1]})");
}

TEST(JinjaExpression, Tests) {
  EXPECT_EQ(
      render("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 1 is not none }}"),
      "False True True True");
  EXPECT_EQ(
      render("{{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is sequence }}"
             " {{ 1 is sequence }} {{ true is number }} {{ 1.0 is integer }} {{ 1 is integer }}"),
      "True True True True False True False True");
  EXPECT_EQ(
      render("{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 4 is even }} {{ 9 is "
             "divisibleby 3 }}"
             " {{ 2 is in [1, 2] }} {{ 3 is gt 2 }} {{ 'ab' is lower }} {{ range is callable }}"),
      "True False True True True True True True True");
}

TEST(JinjaExpression, Globals) {
  EXPECT_EQ(render("{{ range(3) | list }} {{ range(1, 6, 2) | list }} {{ dict(a=1) }} {{ "
                   "namespace(x=1).x }}"),
            "[0, 1, 2] [1, 3, 5] {'a': 1} 1");
  const std::string year = render("{{ strftime_now('%Y') }}");
  EXPECT_EQ(year.size(), 4u);
  EXPECT_EQ(render("{{ strftime_now('') }}"), "");
}

}  // namespace
}  // namespace lowbit
