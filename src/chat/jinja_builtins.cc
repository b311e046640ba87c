#include "chat/jinja_builtins.h"

#include <utf8proc.h>

#include <algorithm>
#include <ctime>
#include <string>

#include "chat/jinja_interpreter.h"
#include "chat/jinja_ops.h"
#include "chat/py_text.h"

namespace lowbit::jinja {
namespace {

// Every method of Python's str. Those lowbit does not implement fail when called, naming the
// method, instead of silently rendering as undefined.
constexpr std::string_view kStrMethods[] = {
    "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
    "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
    "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
    "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
    "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
    "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
    "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
    "swapcase",     "title",       "translate", "upper",      "zfill"};
constexpr std::string_view kDictMethods[] = {"copy", "fromkeys", "get", "items", "keys", "values"};
constexpr std::string_view kUnsafeDictMethods[] = {"clear", "pop", "popitem", "setdefault",
                                                   "update"};
constexpr std::string_view kListMethods[] = {"copy", "count", "index"};
constexpr std::string_view kNumberMethods[] = {
    "as_integer_ratio", "bit_count", "bit_length", "conjugate", "denominator", "from_bytes",
    "fromhex",          "hex",       "is_integer", "numerator", "to_bytes"};
constexpr std::string_view kUnsafeListMethods[] = {"append", "clear",  "extend",  "insert",
                                                   "pop",    "remove", "reverse", "sort"};

template <size_t N>
bool one_of(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

std::optional<std::string> optional_string(const Params& p, size_t i, std::string_view what) {
  if (!p.has(i) || p.get(i).is_none()) return std::nullopt;
  if (!p.get(i).is_string()) eval_fail("{} must be str or None, not {}", what, type_name(p.get(i)));
  return p.get(i).as_string();
}

bool all_code_points(const std::string& s, bool (*pred)(char32_t)) {
  const std::u32string cps = py::decode(s);
  return !cps.empty() && std::all_of(cps.begin(), cps.end(), pred);
}

bool is_alpha(char32_t cp) {
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}
bool is_digit(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp)) == UTF8PROC_CATEGORY_ND;
}
bool is_numeric(char32_t cp) {
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

// startswith/endswith accept a str or a tuple of str.
bool affix_matches(const std::string& self, const Value& affix, bool prefix) {
  auto one = [&](const Value& v) {
    if (!v.is_string()) eval_fail("startswith/endswith argument must be str or a tuple of str");
    const std::string& a = v.as_string();
    if (a.size() > self.size()) return false;
    return prefix ? self.compare(0, a.size(), a) == 0
                  : self.compare(self.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_list() && affix.as_list().is_tuple) {
    return std::any_of(affix.as_list().items.begin(), affix.as_list().items.end(), one);
  }
  return one(affix);
}

std::string pad(const std::string& s, int64_t width, const std::string& fill, char align) {
  const int64_t len = static_cast<int64_t>(py::length(s));
  if (width <= len) return s;
  const int64_t total = width - len;
  int64_t left = align == '<' ? 0 : align == '>' ? total : total / 2 + (total & width & 1);
  auto repeat = [&](int64_t n) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += fill;
    return out;
  };
  return repeat(left) + s + repeat(total - left);
}

int64_t find_index(const std::string& self, const std::string& sub, bool reverse) {
  const size_t at = reverse ? self.rfind(sub) : self.find(sub);
  if (at == std::string::npos) return -1;
  return static_cast<int64_t>(py::code_point_index(self, at));
}

Value list_of_strings(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.emplace_back(std::move(p));
  return Value::list(std::move(items));
}

Value call_str_method(const std::string& self, const std::string& name, const CallArgs& args) {
  const std::string fn = "str." + name;
  if (name == "format") return Value(str_format(self, args));
  if (name == "split" || name == "rsplit") {
    Params p(fn, args, {"sep", "maxsplit"});
    const auto sep = optional_string(p, 0, "sep");
    if (sep && sep->empty()) eval_fail("empty separator");
    const int64_t maxsplit = p.get_int(1, -1);
    return list_of_strings(name == "split" ? py::split(self, sep, maxsplit)
                                           : py::rsplit(self, sep, maxsplit));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Params p(fn, args, {"chars"});
    return Value(
        py::strip(self, optional_string(p, 0, "chars"), name != "rstrip", name != "lstrip"));
  }
  if (name == "startswith" || name == "endswith") {
    Params p(fn, args, {"affix"}, 1);
    return Value(affix_matches(self, p.get(0), name == "startswith"));
  }
  if (name == "replace") {
    Params p(fn, args, {"old", "new", "count"}, 2);
    return Value(py::replace(self, p.get_string(0, ""), p.get_string(1, ""), p.get_int(2, -1)));
  }
  if (name == "upper") return Value(py::upper(self));
  if (name == "lower") return Value(py::lower(self));
  if (name == "title") return Value(py::title(self));
  if (name == "capitalize") return Value(py::capitalize(self));
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    Params p(fn, args, {"sub"}, 1);
    const int64_t at = find_index(self, p.get_string(0, ""), name[0] == 'r');
    if (at < 0 && (name == "index" || name == "rindex")) eval_fail("substring not found");
    return Value(at);
  }
  if (name == "count") {
    Params p(fn, args, {"sub"}, 1);
    const std::string sub = p.get_string(0, "");
    if (sub.empty()) return Value(static_cast<int64_t>(py::length(self)) + 1);
    int64_t n = 0;
    for (size_t at = self.find(sub); at != std::string::npos; at = self.find(sub, at + sub.size()))
      ++n;
    return Value(n);
  }
  if (name == "join") {
    Params p(fn, args, {"iterable"}, 1);
    std::string out;
    int64_t i = 0;
    for (const Value& item : iterate(p.get(0))) {
      if (!item.is_string()) {
        eval_fail("sequence item {}: expected str instance, {} found", i, type_name(item));
      }
      if (i++) out += self;
      out += item.as_string();
    }
    return Value(std::move(out));
  }
  if (name == "splitlines") {
    Params p(fn, args, {"keepends"});
    return list_of_strings(py::splitlines(self, truthy(p.get_or(0, false))));
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    Params p(fn, args, {"width", "fillchar"}, 1);
    const char align = name == "center" ? '^' : name == "ljust" ? '<' : '>';
    return Value(pad(self, p.get_int(0, 0), p.get_string(1, " "), align));
  }
  if (name == "zfill") {
    Params p(fn, args, {"width"}, 1);
    const bool sign = !self.empty() && (self[0] == '-' || self[0] == '+');
    const std::string digits =
        pad(self.substr(sign ? 1 : 0), p.get_int(0, 0) - (sign ? 1 : 0), "0", '>');
    return Value((sign ? self.substr(0, 1) : "") + digits);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    Params p(fn, args, {"affix"}, 1);
    const std::string affix = p.get_string(0, "");
    const bool prefix = name == "removeprefix";
    if (!affix_matches(self, Value(affix), prefix)) return Value(self);
    return Value(prefix ? self.substr(affix.size()) : self.substr(0, self.size() - affix.size()));
  }
  if (name == "partition" || name == "rpartition") {
    Params p(fn, args, {"sep"}, 1);
    const std::string sep = p.get_string(0, "");
    if (sep.empty()) eval_fail("empty separator");
    const size_t at = name == "partition" ? self.find(sep) : self.rfind(sep);
    std::vector<Value> parts;
    if (at == std::string::npos) {
      parts = name == "partition" ? std::vector<Value>{Value(self), Value(""), Value("")}
                                  : std::vector<Value>{Value(""), Value(""), Value(self)};
    } else {
      parts = {Value(self.substr(0, at)), Value(sep), Value(self.substr(at + sep.size()))};
    }
    return Value::list(std::move(parts), true);
  }
  if (name == "isspace") return Value(all_code_points(self, py::is_space));
  if (name == "isalpha") return Value(all_code_points(self, is_alpha));
  if (name == "isdigit" || name == "isdecimal") return Value(all_code_points(self, is_digit));
  if (name == "isnumeric") return Value(all_code_points(self, is_numeric));
  if (name == "isalnum") {
    return Value(all_code_points(self, [](char32_t c) { return is_alpha(c) || is_numeric(c); }));
  }
  if (name == "islower") return Value(py::is_lower(self));
  if (name == "isupper") return Value(py::is_upper(self));
  if (name == "isascii") return Value(py::is_ascii(self));
  eval_fail("the str method '{}' is not supported by lowbit's chat-template interpreter", name);
}

Value call_dict_method(const Value& self, const std::string& name, const CallArgs& args) {
  const Dict& dict = self.as_dict();
  const std::string fn = "dict." + name;
  if (name == "get") {
    Params p(fn, args, {"key", "default"}, 1);
    const Value* v = dict.find(p.get(0));
    return v ? *v : p.get_or(1, Value(None{}));
  }
  Params p(fn, args, {});
  if (name == "copy") return self;
  std::vector<Value> out;
  for (const auto& [k, v] : dict.entries()) {
    if (name == "keys") {
      out.push_back(k);
    } else if (name == "values") {
      out.push_back(v);
    } else if (name == "items") {
      out.push_back(Value::list({k, v}, true));
    } else {
      eval_fail("the dict method '{}' is not supported by lowbit's chat-template interpreter",
                name);
    }
  }
  return Value::list(std::move(out));
}

Value call_list_method(const Value& self, const std::string& name, const CallArgs& args) {
  const std::vector<Value>& items = self.as_list().items;
  const std::string fn = "list." + name;
  if (name == "copy") {
    Params p(fn, args, {});
    return self;
  }
  Params p(fn, args, {"value"}, 1);
  int64_t count = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!equals(items[i], p.get(0))) continue;
    if (name == "index") return Value(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") eval_fail("{} is not in list", repr(p.get(0)));
  return Value(count);
}

Value unsafe_method(const Value& self, std::string_view name) {
  return Value::undefined(fmt::format(
      "access to attribute '{}' of '{}' object is unsafe (templates cannot modify values)", name,
      type_name(self)));
}

Value unsupported_method(const Value& self, std::string_view name) {
  std::string method(name);
  std::string type = type_name(self);
  return Value::callable(
      type + "." + method, [method, type](Interpreter&, const CallArgs&) -> Value {
        eval_fail("the {} method '{}' is not supported by lowbit's chat-template interpreter", type,
                  method);
      });
}

Value make_range(Interpreter&, const CallArgs& args) {
  Params p("range", args, {"start", "stop", "step"}, 1);
  for (size_t i = 0; i < 3; ++i) {
    if (p.has(i) && !p.get(i).is_integral()) {
      eval_fail("'{}' object cannot be interpreted as an integer", type_name(p.get(i)));
    }
  }
  int64_t start = 0, stop = 0, step = 1;
  if (p.has(1)) {
    start = p.get(0).as_int();
    stop = p.get(1).as_int();
    step = p.get_int(2, 1);
  } else {
    stop = p.get(0).as_int();
  }
  if (step == 0) eval_fail("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    // Jinja's sandbox refuses ranges over MAX_RANGE items.
    if (out.size() >= 100000) {
      eval_fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    out.emplace_back(i);
  }
  return Value::list(std::move(out));
}

// dict(mapping_or_pairs, **kwargs), shared by dict() and namespace().
Dict build_dict(std::string_view fn, const CallArgs& args) {
  if (args.positional.size() > 1) eval_fail("{} expected at most 1 argument", fn);
  Dict out;
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      out = src.as_dict();
    } else if (src.is_namespace()) {
      out = src.as_namespace().attrs;
    } else {
      for (const Value& pair : iterate(src)) {
        if (!pair.is_list() || pair.as_list().items.size() != 2) {
          eval_fail("{}: each element must be a sequence of length 2", fn);
        }
        out.set(pair.as_list().items[0], pair.as_list().items[1]);
      }
    }
  }
  for (const auto& [k, v] : args.keyword) out.set(Value(k), v);
  return out;
}

Value make_namespace(Interpreter& interp, const CallArgs& args) {
  auto ns = std::make_shared<Namespace>();
  interp.track(ns);
  ns->attrs = build_dict("namespace", args);
  return Value(std::move(ns));
}

Value raise_exception(Interpreter&, const CallArgs& args) {
  Params p("raise_exception", args, {"message"}, 1);
  throw TemplateRaised(to_str(p.get(0)));
}

Value strftime_now(Interpreter&, const CallArgs& args) {
  Params p("strftime_now", args, {"format"}, 1);
  const std::string format = p.get_string(0, "") + "\x01";  // strftime returns 0 for ""
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string buf(format.size() * 4 + 64, '\0');
  size_t n = 0;
  while ((n = std::strftime(buf.data(), buf.size(), format.c_str(), &local)) == 0) {
    if (buf.size() > (1u << 20)) eval_fail("strftime_now: result too long");
    buf.resize(buf.size() * 2);
  }
  buf.resize(n - 1);
  return Value(std::move(buf));
}

}  // namespace

std::optional<Value> bound_method(const Value& self, std::string_view name) {
  std::string method(name);
  if (self.is_string() && one_of(kStrMethods, name)) {
    return Value::callable("str." + method, [self, method](Interpreter&, const CallArgs& args) {
      return call_str_method(self.as_string(), method, args);
    });
  }
  if (self.is_dict()) {
    if (one_of(kUnsafeDictMethods, name)) return unsafe_method(self, name);
    if (one_of(kDictMethods, name)) {
      return Value::callable("dict." + method, [self, method](Interpreter&, const CallArgs& a) {
        return call_dict_method(self, method, a);
      });
    }
  }
  if (self.is_number()) {
    // int/float attributes a template could read; their methods are not supported.
    if (name == "real") return self.is_bool() ? Value(self.as_int()) : self;
    if (name == "imag") return self.is_float() ? Value(0.0) : Value(int64_t{0});
    if (self.is_integral() && name == "numerator") return Value(self.as_int());
    if (self.is_integral() && name == "denominator") return Value(int64_t{1});
    if (one_of(kNumberMethods, name)) return unsupported_method(self, name);
  }
  if (self.is_list()) {
    if (one_of(kUnsafeListMethods, name)) return unsafe_method(self, name);
    if (one_of(kListMethods, name)) {
      return Value::callable("list." + method, [self, method](Interpreter&, const CallArgs& a) {
        return call_list_method(self, method, a);
      });
    }
  }
  return std::nullopt;
}

const Value* builtin_global(std::string_view name) {
  static const auto* globals = new std::vector<std::pair<std::string_view, Value>>{
      {"range", Value::callable("range", make_range)},
      {"dict", Value::callable("dict",
                               [](Interpreter&, const CallArgs& a) {
                                 return Value::dict(build_dict("dict", a));
                               })},
      {"namespace", Value::callable("namespace", make_namespace)},
      {"raise_exception", Value::callable("raise_exception", raise_exception)},
      {"strftime_now", Value::callable("strftime_now", strftime_now)},
  };
  for (const auto& [n, v] : *globals) {
    if (n == name) return &v;
  }
  return nullptr;
}

Value missing_name(std::string_view name) {
  if (name == "lipsum" || name == "cycler" || name == "joiner") {
    return Value::undefined(fmt::format(
        "the Jinja global '{}' is not supported by lowbit's chat-template interpreter", name));
  }
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

std::string str_format(const std::string& format, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  bool manual = false;
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      eval_fail("Single '}}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = format.find('}', i);
    if (close == std::string::npos) eval_fail("Single '{{' encountered in format string");
    std::string field = format.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 's';
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 's';
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos || field.find('.') != std::string::npos ||
        field.find('[') != std::string::npos) {
      eval_fail(
          "str.format field '{{{}}}' uses format specs or attribute access, which lowbit "
          "does not support",
          field);
    }
    const Value* arg = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), ::isdigit)) {
      if (field.empty() ? manual : auto_index > 0) {
        eval_fail("cannot switch between manual field specification and automatic field numbering");
      }
      manual = !field.empty();
      const size_t index = field.empty() ? auto_index++ : std::stoul(field);
      if (index >= args.positional.size()) {
        eval_fail("Replacement index {} out of range for positional args tuple", index);
      }
      arg = &args.positional[index];
    } else {
      for (const auto& [k, v] : args.keyword) {
        if (k == field) arg = &v;
      }
      if (!arg) eval_fail("str.format: missing keyword argument '{}'", field);
    }
    out += conversion == 's' ? to_str(*arg) : repr(*arg);
  }
  return out;
}

}  // namespace lowbit::jinja
