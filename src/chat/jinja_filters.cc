#include "chat/jinja_filters.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "chat/jinja_builtins.h"
#include "chat/jinja_json.h"
#include "chat/jinja_ops.h"
#include "chat/py_text.h"

namespace lowbit::jinja {
namespace {

constexpr std::string_view kJinjaFilters[] = {
    "abs",       "attr",       "batch",       "capitalize", "center",  "count",
    "d",         "default",    "dictsort",    "e",          "escape",  "filesizeformat",
    "first",     "float",      "forceescape", "format",     "groupby", "indent",
    "int",       "join",       "last",        "length",     "list",    "lower",
    "items",     "map",        "min",         "max",        "pprint",  "random",
    "reject",    "rejectattr", "replace",     "reverse",    "round",   "safe",
    "select",    "selectattr", "slice",       "sort",       "string",  "striptags",
    "sum",       "title",      "trim",        "truncate",   "unique",  "upper",
    "urlencode", "urlize",     "wordcount",   "wordwrap",   "xmlattr", "tojson"};
constexpr std::string_view kUnsupportedFilters[] = {
    "batch",     "dictsort", "filesizeformat", "groupby", "pprint",   "random", "slice",
    "striptags", "truncate", "urlencode",      "urlize",  "wordwrap", "xmlattr"};
constexpr std::string_view kJinjaTests[] = {
    "odd",     "even",   "divisibleby", "defined",  "undefined", "filter", "test",    "none",
    "boolean", "false",  "true",        "integer",  "float",     "lower",  "upper",   "string",
    "mapping", "number", "sequence",    "iterable", "callable",  "sameas", "escaped", "in",
    "==",      "eq",     "equalto",     "!=",       "ne",        ">",      "gt",      "greaterthan",
    "ge",      ">=",     "<",           "lt",       "lessthan",  "<=",     "le"};

template <size_t N>
bool one_of(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

// make_attrgetter: "a.b.0" walks items (then attributes), digits become indices.
Value lookup_path(const Value& item, const std::string& path) {
  Value v = item;
  for (const std::string& part : py::split(path, std::string("."), -1)) {
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    v = get_item(v, digits ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
  }
  return v;
}

Value case_key(const Value& v, bool case_sensitive) {
  return (!case_sensitive && v.is_string()) ? Value(py::lower(v.as_string())) : v;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Value to_int(const Value& v, const Value& fallback, int64_t base) {
  if (v.is_integral()) return Value(v.as_int());
  if (v.is_float()) {
    const double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value(static_cast<int64_t>(d));
  }
  if (!v.is_string()) return fallback;
  std::string s = py::strip(v.as_string(), std::nullopt, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (!s.empty()) {
    errno = 0;
    char* end = nullptr;
    const long long parsed = std::strtoll(s.c_str(), &end, static_cast<int>(base));
    if (errno == 0 && end && *end == '\0') return Value(static_cast<int64_t>(parsed));
    errno = 0;
    const double d = std::strtod(s.c_str(), &end);  // Jinja: "42.23"|int gives 42
    if (errno == 0 && end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) {
      return Value(static_cast<int64_t>(d));
    }
  }
  return fallback;
}

Value to_float(const Value& v, const Value& fallback) {
  if (v.is_number()) return Value(v.as_double());
  if (!v.is_string()) return fallback;
  std::string s = py::strip(v.as_string(), std::nullopt, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (s.empty() || !end || *end != '\0') return fallback;
  return Value(d);
}

// select/reject/selectattr/rejectattr: (value, [attribute,] [test, test args...]).
Value select_items(Interpreter& interp, const Value& seq, const CallArgs& args, bool use_attr,
                   bool keep_if, std::string_view fn) {
  size_t next = 0;
  std::string attribute;
  if (use_attr) {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      eval_fail("{}() needs an attribute name", fn);
    }
    attribute = args.positional[next++].as_string();
  }
  std::string test;
  if (next < args.positional.size()) {
    if (!args.positional[next].is_string()) eval_fail("{}(): test name must be a string", fn);
    test = args.positional[next++].as_string();
    if (!is_supported_test(test)) eval_fail("{}(): no test named '{}'", fn, test);
  }
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + next, args.positional.end());
  test_args.keyword = args.keyword;
  std::vector<Value> out;
  if (!truthy(seq)) return Value::list({});  // Jinja: `if value:` before iterating
  for (const Value& item : iterate(seq)) {
    const Value v = use_attr ? lookup_path(item, attribute) : item;
    const bool passed = test.empty() ? truthy(v) : apply_test(interp, test, v, test_args);
    if (passed == keep_if) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value map_items(Interpreter& interp, const Value& seq, const CallArgs& args) {
  std::vector<Value> out;
  if (!truthy(seq)) return Value::list({});
  const Value* attribute = nullptr;
  const Value* fallback = nullptr;
  for (const auto& [k, v] : args.keyword) {
    if (k == "attribute") attribute = &v;
    if (k == "default") fallback = &v;
  }
  if (attribute) {
    if (!args.positional.empty()) {
      eval_fail("map(): unexpected positional arguments with attribute=");
    }
    for (const Value& item : iterate(seq)) {
      Value v = lookup_path(item, to_str(*attribute));
      if (v.is_undefined() && fallback) v = *fallback;
      out.push_back(std::move(v));
    }
    return Value::list(std::move(out));
  }
  if (args.positional.empty() || !args.positional[0].is_string()) {
    eval_fail("map() needs a filter name or attribute=");
  }
  const std::string filter = args.positional[0].as_string();
  if (!is_supported_filter(filter)) eval_fail("map(): no filter named '{}'", filter);
  CallArgs filter_args;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  filter_args.keyword = args.keyword;
  for (const Value& item : iterate(seq)) {
    out.push_back(apply_filter(interp, filter, item, filter_args));
  }
  return Value::list(std::move(out));
}

std::vector<Value> sorted_items(const Value& seq, bool reverse, bool case_sensitive,
                                const std::string& attribute) {
  std::vector<std::pair<Value, Value>> keyed;  // (key, item)
  const std::vector<std::string> paths =
      attribute.empty() ? std::vector<std::string>{} : py::split(attribute, std::string(","), -1);
  for (const Value& item : iterate(seq)) {
    Value key;
    if (paths.empty()) {
      key = case_key(item, case_sensitive);
    } else {
      std::vector<Value> parts;
      for (const std::string& path : paths) {
        parts.push_back(case_key(lookup_path(item, path), case_sensitive));
      }
      key = paths.size() == 1 ? parts[0] : Value::list(std::move(parts));
    }
    keyed.emplace_back(std::move(key), item);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& a, const auto& b) {
    return reverse ? less(b.first, a.first) : less(a.first, b.first);
  });
  std::vector<Value> out;
  for (auto& [k, item] : keyed) out.push_back(std::move(item));
  return out;
}

Value min_max(const Value& seq, const CallArgs& args, bool want_max, std::string_view fn) {
  Params p(fn, args, {"case_sensitive", "attribute"});
  const std::string attribute = p.has(1) && !p.get(1).is_none() ? to_str(p.get(1)) : "";
  const bool case_sensitive = truthy(p.get_or(0, false));
  std::optional<std::pair<Value, Value>> best;
  for (const Value& item : iterate(seq)) {
    Value key = case_key(attribute.empty() ? item : lookup_path(item, attribute), case_sensitive);
    if (!best || (want_max ? less(best->first, key) : less(key, best->first))) {
      best.emplace(std::move(key), item);
    }
  }
  if (!best) return Value::undefined("No aggregated item, sequence was empty.");
  return best->second;
}

std::string indent_text(const std::string& text, const Value& width, bool first, bool blank) {
  const std::string indention = width.is_string()
                                    ? width.as_string()
                                    : std::string(std::max<int64_t>(width.as_int(), 0), ' ');
  std::vector<std::string> lines = py::splitlines(text + "\n", false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\n";
    if (i > 0 && (blank || !lines[i].empty())) out += indention;
    out += lines[i];
  }
  return first ? indention + out : out;
}

// Jinja's title filter (not str.title): words start after '-', whitespace or ( { [ <.
std::string jinja_title(const std::string& text) {
  auto is_separator = [](char32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || py::is_space(cp);
  };
  const std::u32string cps = py::decode(text);
  std::string out;
  for (size_t i = 0; i < cps.size();) {
    size_t j = i + 1;
    while (j < cps.size() && is_separator(cps[j]) == is_separator(cps[i])) ++j;
    const std::u32string_view run = std::u32string_view(cps).substr(i, j - i);
    out += py::upper(py::encode(run.substr(0, 1))) + py::lower(py::encode(run.substr(1)));
    i = j;
  }
  return out;
}

int64_t word_count(const std::string& text) {
  int64_t count = 0;
  bool in_word = false;
  for (char32_t cp : py::decode(text)) {
    const bool word = cp == '_' || (cp < 0x80 ? std::isalnum(static_cast<int>(cp)) != 0
                                              : !py::is_space(cp) && py::is_printable(cp));
    if (word && !in_word) ++count;
    in_word = word;
  }
  return count;
}

Value json_filter(const Value& v, const CallArgs& args) {
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  Params p("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions options;
  options.ensure_ascii = truthy(p.get_or(0, false));
  if (p.has(1) && !p.get(1).is_none()) {
    const Value& indent = p.get(1);
    options.indent = indent.is_string() ? indent.as_string()
                                        : std::string(std::max<int64_t>(indent.as_int(), 0), ' ');
  }
  if (p.has(2) && !p.get(2).is_none()) {
    const Value& seps = p.get(2);
    if (!seps.is_list() || seps.as_list().items.size() != 2) {
      eval_fail("tojson(): separators must be an (item_separator, key_separator) pair");
    }
    options.item_separator = to_str(seps.as_list().items[0]);
    options.key_separator = to_str(seps.as_list().items[1]);
  }
  options.sort_keys = truthy(p.get_or(3, false));
  return Value(json_dumps(v, options));
}

Value round_filter(const Value& v, const CallArgs& args) {
  Params p("round", args, {"precision", "method"});
  const int64_t precision = p.get_int(0, 0);
  const std::string method = p.get_string(1, "common");
  if (!v.is_number()) eval_fail("round(): value must be a number, not {}", type_name(v));
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_double() * scale;
  double r = 0;
  if (method == "common") {
    r = std::nearbyint(x);  // Python's round(): half to even
  } else if (method == "ceil") {
    r = std::ceil(x);
  } else if (method == "floor") {
    r = std::floor(x);
  } else {
    eval_fail("round(): method must be 'common', 'ceil' or 'floor'");
  }
  if (method == "common" && v.is_integral() && precision >= 0) return Value(v.as_int());
  return Value(r / scale);
}

}  // namespace

bool is_jinja_filter(std::string_view name) { return one_of(kJinjaFilters, name); }
bool is_supported_filter(std::string_view name) {
  return is_jinja_filter(name) && !one_of(kUnsupportedFilters, name);
}
bool is_jinja_test(std::string_view name) { return one_of(kJinjaTests, name); }
bool is_supported_test(std::string_view name) { return is_jinja_test(name); }

Value apply_filter(Interpreter& interp, std::string_view name, const Value& v,
                   const CallArgs& args) {
  const std::string fn(name);
  if (name == "tojson") return json_filter(v, args);
  if (name == "map") return map_items(interp, v, args);
  if (name == "select" || name == "reject") {
    return select_items(interp, v, args, false, name == "select", name);
  }
  if (name == "selectattr" || name == "rejectattr") {
    return select_items(interp, v, args, true, name == "selectattr", name);
  }
  if (name == "default" || name == "d") {
    Params p(fn, args, {"default_value", "boolean"});
    const bool boolean = truthy(p.get_or(1, false));
    return (v.is_undefined() || (boolean && !truthy(v))) ? p.get_or(0, Value("")) : v;
  }
  if (name == "format") {
    if (!args.positional.empty() && !args.keyword.empty()) {
      eval_fail("format(): can't handle positional and keyword arguments at the same time");
    }
    Dict kwargs;
    for (const auto& [k, val] : args.keyword) kwargs.set(Value(k), val);
    return Value(percent_format(to_str(v), args.keyword.empty() ? Value::list(args.positional, true)
                                                                : Value::dict(std::move(kwargs))));
  }
  if (name == "round") return round_filter(v, args);
  if (name == "min" || name == "max") return min_max(v, args, name == "max", name);
  if (name == "sort") {
    Params p(fn, args, {"reverse", "case_sensitive", "attribute"});
    const std::string attribute = p.has(2) && !p.get(2).is_none() ? to_str(p.get(2)) : "";
    return Value::list(
        sorted_items(v, truthy(p.get_or(0, false)), truthy(p.get_or(1, false)), attribute));
  }
  if (name == "unique") {
    Params p(fn, args, {"case_sensitive", "attribute"});
    const std::string attribute = p.has(1) && !p.get(1).is_none() ? to_str(p.get(1)) : "";
    std::vector<Value> seen, out;
    for (const Value& item : iterate(v)) {
      const Value key = case_key(attribute.empty() ? item : lookup_path(item, attribute),
                                 truthy(p.get_or(0, false)));
      if (!is_hashable(key)) eval_fail("unhashable type: '{}'", type_name(key));
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Value::list(std::move(out));
  }
  if (name == "join") {
    Params p(fn, args, {"d", "attribute"});
    const std::string sep = to_str(p.get_or(0, Value("")));
    const std::string attribute = p.has(1) && !p.get(1).is_none() ? to_str(p.get(1)) : "";
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += to_str(attribute.empty() ? item : lookup_path(item, attribute));
    }
    return Value(std::move(out));
  }
  if (name == "sum") {
    Params p(fn, args, {"attribute", "start"});
    const std::string attribute = p.has(0) && !p.get(0).is_none() ? to_str(p.get(0)) : "";
    Value total = p.get_or(1, Value(int64_t{0}));
    for (const Value& item : iterate(v)) {
      total =
          binary_op(BinaryOp::kAdd, total, attribute.empty() ? item : lookup_path(item, attribute));
    }
    return total;
  }
  if (name == "replace") {
    Params p(fn, args, {"old", "new", "count"}, 2);
    return Value(py::replace(to_str(v), to_str(p.get(0)), to_str(p.get(1)), p.get_int(2, -1)));
  }
  if (name == "trim") {
    Params p(fn, args, {"chars"});
    std::optional<std::string> chars;
    if (p.has(0) && !p.get(0).is_none()) chars = to_str(p.get(0));
    return Value(py::strip(to_str(v), chars, true, true));
  }
  if (name == "indent") {
    Params p(fn, args, {"width", "first", "blank"});
    if (!v.is_string()) eval_fail("indent(): expected a string, not {}", type_name(v));
    return Value(indent_text(to_str(v), p.get_or(0, Value(int64_t{4})), truthy(p.get_or(1, false)),
                             truthy(p.get_or(2, false))));
  }
  if (name == "center") {
    Params p(fn, args, {"width"});
    CallArgs width;
    width.positional.push_back(Value(p.get_int(0, 80)));
    return bound_method(Value(to_str(v)), "center")->as_callable().call(interp, width);
  }
  if (name == "int" || name == "float") {
    if (v.is_undefined()) fail_undefined(v);  // Undefined.__int__/__float__ raise
  }
  if (name == "int") {
    Params p(fn, args, {"default", "base"});
    return to_int(v, p.get_or(0, Value(int64_t{0})), p.get_int(1, 10));
  }
  if (name == "float") {
    Params p(fn, args, {"default"});
    return to_float(v, p.get_or(0, Value(0.0)));
  }
  if (name == "attr") {
    Params p(fn, args, {"name"}, 1);
    const std::string attr = to_str(p.get(0));
    if (v.is_undefined()) fail_undefined(v);
    if (v.is_namespace()) {
      if (const Value* found = v.as_namespace().attrs.find(attr)) return *found;
    }
    if (std::optional<Value> method = bound_method(v, attr)) return *method;
    return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(v), attr));
  }
  // The rest take no arguments.
  Params p(fn, args, {});
  if (name == "length" || name == "count") return Value(length(v));
  if (name == "list") return Value::list(iterate(v));
  if (name == "string") return Value(to_str(v));
  if (name == "upper") return Value(py::upper(to_str(v)));
  if (name == "lower") return Value(py::lower(to_str(v)));
  if (name == "capitalize") return Value(py::capitalize(to_str(v)));
  if (name == "title") return Value(jinja_title(to_str(v)));
  if (name == "safe") return v;
  if (name == "escape" || name == "e" || name == "forceescape") {
    return Value(html_escape(to_str(v)));
  }
  if (name == "wordcount") return Value(word_count(to_str(v)));
  if (name == "abs") {
    if (!v.is_number()) eval_fail("bad operand type for abs(): '{}'", type_name(v));
    if (v.is_float()) return Value(std::fabs(v.as_double()));
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (name == "first" || name == "last") {
    std::vector<Value> items = iterate(v);
    if (items.empty()) {
      return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    }
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::u32string cps = py::decode(v.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value(py::encode(cps));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict()) eval_fail("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, val] : v.as_dict().entries()) out.push_back(Value::list({k, val}, true));
    return Value::list(std::move(out));
  }
  eval_fail("the '{}' filter is not supported by lowbit's chat-template interpreter", name);
}

bool apply_test(Interpreter& interp, std::string_view name, const Value& v, const CallArgs& args) {
  const std::string fn(name);
  auto other = [&]() -> const Value& {
    if (args.positional.size() != 1 || !args.keyword.empty()) {
      eval_fail("test '{}' takes exactly one argument", name);
    }
    return args.positional[0];
  };
  if (name == "==" || name == "eq" || name == "equalto") return equals(v, other());
  if (name == "!=" || name == "ne") return !equals(v, other());
  if (name == "<" || name == "lt" || name == "lessthan") return compare(CompareOp::kLt, v, other());
  if (name == "<=" || name == "le") return compare(CompareOp::kLe, v, other());
  if (name == ">" || name == "gt" || name == "greaterthan") {
    return compare(CompareOp::kGt, v, other());
  }
  if (name == ">=" || name == "ge") return compare(CompareOp::kGe, v, other());
  if (name == "in") return contains(other(), v);
  if (name == "divisibleby") {
    const Value& n = other();
    return equals(binary_op(BinaryOp::kMod, v, n), Value(int64_t{0}));
  }
  if (name == "sameas") {
    const Value& o = other();
    if (v.kind() != o.kind()) return false;
    switch (v.kind()) {
      case Kind::kNone:
      case Kind::kUndefined:
        return true;
      case Kind::kBool:
        return v.as_bool() == o.as_bool();
      case Kind::kInt:
        return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
      case Kind::kString:
        return v.as_string() == o.as_string();
      default:
        return v.identity() == o.identity();
    }
  }
  Params p(fn, args, {});
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  // Jinja's Undefined defines __call__ (to raise), so Python's callable() says True.
  if (name == "callable") return v.is_callable() || v.is_undefined();
  if (name == "escaped") return false;
  // Python's iter() / len()+__getitem__: Jinja's Undefined passes both.
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "sequence") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "lower") return py::is_lower(to_str(v));
  if (name == "upper") return py::is_upper(to_str(v));
  if (name == "odd" || name == "even") {
    const Value rem = binary_op(BinaryOp::kMod, v, Value(int64_t{2}));
    return equals(rem, Value(int64_t{name == "odd" ? 1 : 0}));
  }
  if (name == "filter") return v.is_string() && is_jinja_filter(v.as_string());
  if (name == "test") return v.is_string() && is_jinja_test(v.as_string());
  eval_fail("the '{}' test is not supported by lowbit's chat-template interpreter", name);
}

}  // namespace lowbit::jinja
