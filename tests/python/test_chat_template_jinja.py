"""Differential test: lowbit's Jinja interpreter against Jinja2 itself, configured exactly as
transformers configures it for chat templates (its own compiled environment: trim_blocks,
lstrip_blocks, sandbox, custom tojson, raise_exception, namespace).

Every snippet is rendered by both. When Jinja renders, lowbit must produce the same text;
when Jinja raises, lowbit must raise too (the text of the error may differ).
Drives src/chat/chat_template_tool --jsonl from $LOWBIT_BUILD_DIR (default /work/main/build).
"""
import json
import os
import pathlib
import subprocess

import pytest
import transformers.utils.chat_template_utils as transformers_chat  # must fail if missing

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the "\\d" case

BUILD = pathlib.Path(os.environ.get("LOWBIT_BUILD_DIR", "/work/main/build"))
TOOL = BUILD / "src" / "chat" / "chat_template_tool"

MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi {there} \"q\" 'x' é 🙂"},
    {"role": "assistant", "content": "<think>\nr\n</think>\n\nok", "tool_calls": None},
    {"role": "user", "content": ["a", "b"]},
]
CTX = {
    "messages": MSGS,
    "d": {"b": 1, "a": [1, 2.5, None, True], "items": "shadowed", "nested": {"k": "v"}},
    "s": "  Hello, World-wide (web) <x>  ",
    "n": 7,
    "f": 2.5,
    "e": [],
    "t": True,
    "z": None,
    "uni": "naïve café ΣΑΣ straße",
}

# (template, context) pairs; context None means CTX.
CASES = [
    # --- whitespace control, trim_blocks, lstrip_blocks, comments, raw ---
    ("  {% if true %}\n  x\n  {% endif %}\n  y\n  {{- 'z' }}  {#- c #}  w", None),
    ("a\n{# c #}\nb {%+ if true %}c{% endif %}\n", None),
    ("a  {%- if true -%}  b  {%- endif -%}  c", None),
    ("{% for i in [1,2] %}\n    {{ i }}\n{% endfor %}\n", None),
    ("{% for i in [1,2] -%}\n    {{ i }}\n{%- endfor %}", None),
    ("x {{- ' y ' -}} z\n\n", None),
    ("line\n    {# indented comment #}\nnext", None),
    ("{% raw %}{{ not parsed }}{% endraw %}\n{%- raw -%}  {% x %}  {%- endraw %}", None),
    ("\t {% if true %}tab{% endif %}", None),
    ("a\r\nb\rc\n", None),
    ("{{ 'x' }}   {% if true %}kept{% endif %}", None),
    ("text\n\n", None),
    ("{% if true %}  \n{% endif %}", None),
    ("{{ {'a': {'b': 1}} }}", None),
    ("{{- '  lead' }}", None),
    # --- literals and printing ---
    ("{{ [1, 'a', none, true, 1.5, {'k': \"it's\"}] }}", None),
    ("{{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1.0 }} {{ 2.5e-7 }} {{ 1_000 }} {{ 0x1F }}", None),
    ("{{ 0.1 + 0.2 }} {{ 1/3 }} {{ 100.0 }} {{ 1e100 }} {{ -0.0 }} {{ 123456789.125 }}", None),
    ("{{ 'a\\x41\\u00e9\\n\\t\\'' }}|{{ \"d\\\"q\" }}|{{ 'a' \"b\" }}|{{ '\\d' }}", None),
    ("{{ none }}|{{ None }}|{{ True }}|{{ false }}|{{ missing }}|{{ (1, 2) }}|{{ (1,) }}|{{ () }}", None),
    ("{{ d }}|{{ e }}|{{ z }}|{{ uni }}|{{ [uni, 'it\\'s', \"x\\ny\"] }}", None),
    ("{{ ['\\x00\\x7f\\u200b\\u00a0 é'] }}", None),
    # --- arithmetic and operators ---
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 10 / 4 }}", None),
    ("{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 3 * 'ab' }} {{ [1] * 3 }} {{ 'ab' * 0 }} {{ true + 1 }} {{ -n }} {{ +f }}", None),
    ("{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 1 ~ 2 + 3 }}", None),
    ("{{ 'a' ~ 1 ~ none ~ true ~ missing ~ [1] }}", None),
    ("{{ [1, 2] + [3] }} {{ 'a' + 'b' }} {{ n + f }} {{ n * f }}", None),
    ("{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ none == none }}", None),
    ("{{ 'a' in ['a'] }} {{ 'a' not in 'bcd' }} {{ 1 in {1:2} }} {{ 'b' in d }} {{ 'x' in missing }}", None),
    ("{{ not 1 == 2 }} {{ not t }} {{ 0 or 'x' }} {{ 'y' and 0 }} {{ e or d.b }} {{ z and 1 }}", None),
    ("{{ 1 if 0 else 2 if 0 else 3 }}|{{ 'a' if false }}|{{ 'b' if t }}", None),
    ("{{ -1|abs }} {{ -(1) }} {{ - n|abs }}", None),
    # --- attribute, item, slices ---
    ("{{ d.b }} {{ d['a'][1] }} {{ d.a.0 }} {{ d.nested.k }} {{ d['nested']['k'] }} {{ d.missing }}|", None),
    ("{{ d['items'] }}", None),
    ("{{ 'abc'[5] }}|{{ [1][3] }}|{{ 'abc'[::-1] }}|{{ 'abc'[-1] }}|{{ [1,2,3,4][1:3] }}|{{ [1,2,3,4][::2] }}", None),
    ("{{ [1,2,3,4][-2:] }}|{{ [1,2,3,4][:-1] }}|{{ 'héllo'[1:4] }}|{{ [1,2,3][5:] }}|{{ [1,2,3][::-2] }}", None),
    ("{{ messages[0].role }} {{ messages[-1]['content'] }} {{ messages[1:][0].role }}", None),
    ("{{ messages[10] }}|{{ z['x'] }}|{{ n.real }}|", None),
    # --- string methods ---
    ("{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\nx\\n'.strip('\\n') }}", None),
    ("{{ '  a b  '.split() }} {{ 'a,,b'.split(',') }} {{ 'a b c'.split(' ', 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ ' a  b '.split(None, 1) }}", None),
    ("{{ 'x</think>y</think>z'.split('</think>')[-1] }} {{ 'abc'.split('z') }}", None),
    ("{{ s.upper() }}|{{ s.lower() }}|{{ s.title() }}|{{ \"they're bill's\".title() }}|{{ uni.upper() }}|{{ uni.lower() }}|{{ uni.title() }}", None),
    ("{{ 'hello'.capitalize() }} {{ 'HELLO'.capitalize() }} {{ 'ab'.startswith('a') }} {{ 'ab'.endswith(('x', 'b')) }}", None),
    ("{{ 'aaa'.replace('a', 'b', 2) }} {{ 'abc'.replace('', '-') }} {{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} {{ 'éa'.find('a') }} {{ 'abc'.count('') }}", None),
    ("{{ ', '.join(['a', 'b']) }} {{ 'x'.center(5, '*') }} {{ 'x'.ljust(3) }}| {{ '42'.zfill(5) }} {{ '-4'.zfill(4) }}", None),
    ("{{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'k=v=w'.partition('=') }} {{ 'k=v=w'.rpartition('=') }} {{ 'pre_x'.removeprefix('pre_') }}", None),
    ("{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'ab'.islower() }} {{ 'AB'.isupper() }} {{ ''.isdigit() }}", None),
    ("{{ '{} {x} {0}'.format(1, x=2) }} {{ '{{}}'.format() }} {{ '{!r}'.format('q') }}", None),
    ("{{ '%s-%d-%05.2f|%-4s|%x' % ('a', 3, 2.5, 'b', 255) }} {{ '%s' % 5 }} {{ '%(a)s' % {'a': 1} }} {{ '100%%' % () }}", None),
    # --- filters ---
    ("{{ [3,1,2]|sort }} {{ ['b','A','a']|sort }} {{ ['b','A','a']|sort(case_sensitive=true) }} {{ [3,1,2]|sort(reverse=true) }}", None),
    ("{{ messages|sort(attribute='role')|map(attribute='role')|join(',') }}", None),
    ("{{ [1,2]|map('string')|list }} {{ 'x'|tojson }} {{ {'b':1,'a':[1,2.0,'é\\n\"', none, true]}|tojson }}", None),
    ("{{ d|tojson(indent=2) }}", None),
    ("{{ d|tojson(indent=4, sort_keys=true) }}", None),
    ("{{ {'a': [], 'b': {}, 'c': [{}]}|tojson(indent=2) }}|{{ uni|tojson(ensure_ascii=true) }}|{{ '🙂'|tojson(true) }}", None),
    ("{{ d|tojson(separators=(',', ':')) }}", None),
    ("{{ messages|tojson }}", None),
    ("{{ 5|string + 'a' }} {{ none|string }} {{ [1]|string }} {{ 3|float }} {{ '3.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '0x1A'|int(0, 16) }} {{ '  12 '|int }} {{ 2.9|int }}", None),
    ("{{ ' 2.5 '|float }} {{ 'a'|float }} {{ true|int }} {{ none|int }} {{ '1e3'|float }}", None),
    ("{{ '  x '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'Hello'|replace('l','L',1) }}|{{ 'hi'|upper }}{{ 'HI'|lower }}|{{ 'hELLO wORLD'|capitalize }}", None),
    ("{{ s|title }}|{{ 'a-b c(d [e <f'|title }}", None),
    ("{{ [1,2,3]|join(', ') }} {{ {'a':1}|join }} {{ [{'a':1},{'a':2}]|map(attribute='a')|join }} {{ messages|join(' ', attribute='role') }}", None),
    ("{{ messages|selectattr('role','equalto','user')|list|length }} {{ messages|rejectattr('role', 'eq', 'user')|map(attribute='role')|list }}", None),
    ("{{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('even')|list }} {{ [0,1,'',none,'a']|select|list }} {{ [1,5,9]|select('gt', 4)|list }}", None),
    ("{{ messages|selectattr('tool_calls')|list }} {{ messages|selectattr('tool_calls', 'defined')|list|length }}", None),
    ("{{ 'abc'|length }}{{ {'a':1}|length }}{{ missing|length }}{{ e|count }}", None),
    ("{{ 'abc'|first }} {{ 'abc'|last }} {{ [1,2]|first }} {{ []|first }}| {{ d|first }} {{ d|last }} {{ missing|first }}|", None),
    ("{{ d|list }} {{ 'ab'|list }} {{ missing|list }} {{ d|items|list }} {{ missing|items|list }} {{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }}", None),
    ("{{ missing|default('dflt') }} {{ ''|default('e', true) }} {{ ''|default('e') }} {{ none|d('n') }} {{ z|default('zz') }}", None),
    ("{{ [3,1,2]|max }} {{ [3,1,2]|min }} {{ ['b','A']|max }} {{ []|max }}| {{ [1,2.5]|sum }} {{ messages|map(attribute='role')|unique|list }}", None),
    ("{{ [1,2]|reverse|list }} {{ 'abc'|reverse }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(1, 'floor') }} {{ 3|round }}", None),
    ("{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent('> ', blank=true) }}", None),
    ("{{ '<a href=\"x\">&\\'</a>'|e }} {{ 'x'|safe }} {{ 'one two  three'|wordcount }} {{ 'x'|center(5) }}|", None),
    ("{{ '%s and %s'|format('a', 'b') }} {{ d|attr('b') }}|{{ d|attr('keys') is callable }}", None),
    ("{{ messages|map('tojson')|first }}", None),
    # --- tests ---
    ("{{ x is defined }} {{ none is none }} {{ 1 is number }} {{ true is number }} {{ 1.0 is integer }} {{ 1 is integer }} {{ 1.0 is float }}", None),
    ("{{ 'a' is string }} {{ d is mapping }} {{ e is iterable }} {{ missing is iterable }} {{ 5 is iterable }} {{ 'a' is sequence }} {{ d is sequence }} {{ n is sequence }}", None),
    ("{{ t is true }} {{ 1 is true }} {{ false is false }} {{ t is boolean }} {{ z is not none }} {{ missing is undefined }} {{ d.b is not defined }}", None),
    ("{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 2 is in [1,2] }} {{ 'a' is lower }} {{ 'A' is upper }} {{ 3 is gt 2 }} {{ 3 is == 3 }} {{ none is sameas none }}", None),
    ("{{ range is callable }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ d is eq {'b': 1, 'a': [1, 2.5, none, true], 'items': 'shadowed', 'nested': {'k': 'v'}} }}", None),
    ("{{ 1 is defined and 2 is defined }} {{ x is defined or 3 }} {{ 'a' if n is number else 'b' }}", None),
    # --- control flow ---
    ("{% for x in [1,2,3] if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ loop.first }}{{ loop.last }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.index0 }};{% endfor %}", None),
    ("{% for a in [] %}x{% else %}empty{% endfor %}{% for a in [1] if false %}x{% else %}E{% endfor %}", None),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for c in 'hé' %}[{{ c }}]{% endfor %}", None),
    ("{% for x in [1,2,3] %}{{ loop.previtem }}>{{ x }}>{{ loop.nextitem }},{{ loop.cycle('a','b') }};{% endfor %}", None),
    ("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", None),
    ("{% for i in [1,2] %}{% for j in 'ab' %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }}|{% endfor %}", None),
    ("{% for i in [1,2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}[{{ x }}]", None),
    ("{% set x = 5 %}{% for i in [1] %}{{ x }}{% set x = 6 %}{{ x }}{% endfor %}{{ x }}", None),
    ("{% if true %}{% set y = 3 %}{% endif %}{{ y }}", None),
    ("{% if n > 10 %}a{% elif n > 5 %}b{% elif n > 1 %}c{% else %}d{% endif %}", None),
    ("{% set ns = namespace(a=1, found=false) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.a = ns.a + 1 %}{% endif %}{% endfor %}{{ ns.a }} {{ ns.found }} {{ ns }}", None),
    ("{% set ns = namespace({'k': 1}, j=2) %}{{ ns.k }}{{ ns.j }}{{ ns.q }}|", None),
    ("{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}{% set t = (3, 4) %}{% set p, q = t %}{{ p + q }}", None),
    ("{% set x %}block {{ n }}{% endset %}[{{ x }}]{% set y | upper %}up{% endset %}{{ y }}", None),
    ("{% macro greet(name, greeting='Hi') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('A') }} {{ greet('B', 'Yo') }} {{ greet(greeting='G', name='C') }}", None),
    ("{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}", None),
    ("{% macro m(a, b) %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}", None),
    ("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ n }}{% endcall %}", None),
    ("{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1,2]) %}<{{ v }}>{% endcall %}", None),
    ("{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}", None),
    ("{% filter upper %}shout {{ 'x' }}{% endfilter %}{% filter replace('a', 'b')|upper %}aaa{% endfilter %}", None),
    ("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}|", None),
    ("{% print 'p', 1 %}", None),
    ("{% generation %}gen {{ n }}{% endgeneration %}", None),
    # --- globals ---
    ("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }} {{ dict(a=1, b=[2]) }} {{ dict([('x', 1)]) }}", None),
    ("{% for i in range(2) %}{{ i }}{% endfor %}{{ namespace(a=1).a }}", None),
    ("{{ messages[0]['content'] if messages[0]['role'] == 'system' else 'none' }}", None),
    ("{% for m in messages %}{{ m.content is string }}{{ m.content is not string }}{% endfor %}", None),
    ("{{ undefined_var.attr }}", None),
    ("{{ undefined_var['k'] }}", None),
    ("{{ undefined_var + 1 }}", None),
    ("{{ 1 + 'a' }}", None),
    ("{{ 'a' + 1 }}", None),
    ("{{ 1 < 'a' }}", None),
    ("{{ 1 / 0 }}", None),
    ("{{ 1 // 0 }}", None),
    ("{{ 1 % 0 }}", None),
    ("{{ n() }}", None),
    ("{{ 5|length }}", None),
    ("{{ none|tojson }}{{ missing|tojson }}", None),
    ("{{ d.pop('b') }}", None),
    ("{{ e.append(1) }}", None),
    ("{{ raise_exception('boom') }}", None),
    ("{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}", None),
    ("{% set ns = namespace(_x=1) %}", None),
    ("{% set ns = namespace() %}{% set ns._x = 1 %}", None),
    ("{% set q = 1 %}{% set q.a = 2 %}", None),
    ("{% for a, b in [1, 2] %}{% endfor %}", None),
    ("{{ 'a'.split('') }}", None),
    ("{{ range(100001)|length }}", None),
    ("{{ [1,2][::0] }}", None),
    ("{{ 'x' in 5 }}", None),
    ("{{ 1 in 'abc' }}", None),
    ("{{ '{}'.format() }}", None),
    ("{{ '%d' % 'x' }}", None),
    ("{{ messages|map(attribute='nope')|list }}", None),
    # --- corners found by random differential testing ---
    ("{{ missing|int }}", None),
    ("{{ missing|float }}", None),
    ("{{ missing is callable }} {{ 0|select|list }} {{ false|reject('none')|list }} {{ '' % [1, 2] }}|{{ 'ab' % missing }}", None),
    ("{{ [1, 2]|indent }}", None),
    ("{{ true|indent }}", None),
    ("{{ [[1], [1]]|unique|list }}", None),
    ("{{ {[1]: 2} }}", None),
    ("{{ [1] in d }}", None),
    ("{{ n[1:] }}", None),
    ("{{ d[1:] }}", None),
    ("{{ missing[1:] }}", None),
    ("{{ z[::-1] }}", None),
    ("{{ 'x'.__class__ }}|{{ {'_k': 1}._k }}|{{ {'__class__': 1}.__class__ }}|{{ d.__len__ is defined }}", None),
    ("{{ {'a': 1} | items | map('first') | list }}", None),
]


def jinja_render(template, context):
    try:
        return {"output": transformers_chat._compile_jinja_template(template).render(**context)}
    except Exception as e:  # noqa: BLE001 - any Jinja failure must be a lowbit failure too
        return {"error": f"{type(e).__name__}: {e}"}


@pytest.fixture(scope="module")
def lowbit_results():
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built: build the chat_template_tool target")
    lines = [
        json.dumps({"template": t, "context": c if c is not None else CTX, "raw": True})
        for t, c in CASES
    ]
    proc = subprocess.run([str(TOOL), "--jsonl"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(CASES)
    return results


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"case{i}" for i in range(len(CASES))])
def test_matches_jinja(index, lowbit_results):
    template, context = CASES[index]
    expected = jinja_render(template, context if context is not None else CTX)
    got = lowbit_results[index]
    if "output" in expected:
        assert "output" in got, f"lowbit failed where Jinja rendered:\n{template}\n{got['error']}"
        assert got["output"] == expected["output"], template
    else:
        assert "error" in got, (f"Jinja raised ({expected['error']}) but lowbit rendered:\n"
                                f"{template}\n{got['output']!r}")
