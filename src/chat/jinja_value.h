// The values a Jinja template computes with. They model the Python objects Jinja would see
// (str, int, float, bool, None, list, tuple, dict, Undefined, namespace, callables), because
// chat templates print them with Python's str()/repr() and compare them with Python's rules.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lowbit::jinja {

// A rendering failure whose template position is not known yet; the interpreter attaches
// LABEL:LINE:COL of the innermost node being evaluated.
class EvalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void eval_fail(fmt::format_string<Args...> format, Args&&... args) {
  throw EvalError(fmt::format(format, std::forward<Args>(args)...));
}

// raise_exception(message) from inside a template; kept apart so the caller can show the
// template's own message.
class TemplateRaised : public EvalError {
 public:
  explicit TemplateRaised(std::string message)
      : EvalError("raise_exception: " + message), message_(std::move(message)) {}
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

// A syntax or rendering error at a byte offset of the (newline-normalised) template source.
// `raised` holds the message when the template itself called raise_exception().
class SourceError : public std::runtime_error {
 public:
  SourceError(uint32_t offset, const std::string& message,
              std::optional<std::string> raised = std::nullopt)
      : std::runtime_error(message), offset_(offset), raised_(std::move(raised)) {}
  uint32_t offset() const { return offset_; }
  const std::optional<std::string>& raised() const { return raised_; }

 private:
  uint32_t offset_;
  std::optional<std::string> raised_;
};

class Value;
class Interpreter;

// Jinja's default Undefined: prints as "", is falsy and iterates as empty, but any attribute,
// item or arithmetic use raises. `hint` is the Jinja-style message for that error.
struct Undefined {
  std::string hint;
};
struct None {};

struct List {
  std::vector<Value> items;
  bool is_tuple = false;
};

// Insertion-ordered like a Python dict. Chat-template dicts are small, so lookup is linear.
class Dict {
 public:
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  const Value* find(const std::string& key) const { return find(std::string_view(key)); }
  const Value* find(const char* key) const { return find(std::string_view(key)); }
  void set(Value key, Value value);
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  std::vector<std::pair<Value, Value>> entries_;
};

// Jinja's namespace(): the one mutable object, so `{% set ns.x = ... %}` escapes loop scopes.
struct Namespace {
  Dict attrs;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Callable {
  std::string name;
  std::function<Value(Interpreter&, const CallArgs&)> call;
};

enum class Kind {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,
  kDict,
  kNamespace,
  kCallable
};

class Value {
 public:
  Value() : v_(Undefined{}) {}
  Value(Undefined u) : v_(std::move(u)) {}
  Value(None) : v_(None{}) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::shared_ptr<const Callable> c) : v_(std::move(c)) {}
  Value(std::shared_ptr<Namespace> ns) : v_(std::move(ns)) {}

  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value list(std::vector<Value> items, bool is_tuple = false);
  static Value dict(Dict dict);
  static Value callable(std::string name, std::function<Value(Interpreter&, const CallArgs&)> call);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_namespace() const { return kind() == Kind::kNamespace; }
  bool is_callable() const { return kind() == Kind::kCallable; }
  // bool is an int subclass in Python, and int/float arithmetic mixes freely.
  bool is_number() const { return is_bool() || is_int() || is_float(); }
  bool is_integral() const { return is_bool() || is_int(); }

  const std::string& undefined_hint() const { return std::get<Undefined>(v_).hint; }
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;    // bool or int
  double as_double() const;  // any number
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const { return *std::get<std::shared_ptr<const List>>(v_); }
  const Dict& as_dict() const { return *std::get<std::shared_ptr<const Dict>>(v_); }
  Namespace& as_namespace() const { return *std::get<std::shared_ptr<Namespace>>(v_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(v_); }
  // Identity for Python's `is` on containers.
  const void* identity() const;

 private:
  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<const List>,
               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>,
               std::shared_ptr<const Callable>>
      v_;
};

// Python truthiness (Undefined is falsy).
bool truthy(const Value& v);
// Python str() as Jinja prints it; Undefined prints as "".
std::string to_str(const Value& v);
// Python repr(), used for containers and their elements.
std::string repr(const Value& v);
// Python type name for error messages ("str", "int", "dict", "NoneType", ...).
std::string type_name(const Value& v);
// Python ==.
bool equals(const Value& a, const Value& b);
// Python <, for ordering comparisons and sorting; fails on unorderable types.
bool less(const Value& a, const Value& b, std::string_view op = "<");
// Whether Python could use the value as a dict key / set member (no lists, dicts, namespaces).
bool is_hashable(const Value& v);
// Python iter(): list items, dict keys, string characters; Undefined iterates as empty.
std::vector<Value> iterate(const Value& v);
// Python len().
int64_t length(const Value& v);
// The error Jinja raises when an Undefined is used as an object.
[[noreturn]] void fail_undefined(const Value& v);

Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);

}  // namespace lowbit::jinja

namespace lowbit::jinja {

// Binds call arguments to a Python-style parameter list (positional or keyword), failing with
// Python-like messages that name the function.
class Params {
 public:
  Params(std::string_view function, const CallArgs& args, std::vector<std::string_view> names,
         size_t required = 0);
  bool has(size_t i) const { return given_[i]; }
  const Value& get(size_t i) const { return bound_[i]; }
  Value get_or(size_t i, Value fallback) const { return given_[i] ? bound_[i] : fallback; }
  // Argument i as an int / str / bool, with a type error naming the parameter.
  int64_t get_int(size_t i, int64_t fallback) const;
  std::string get_string(size_t i, std::string fallback) const;

 private:
  std::string function_;
  std::vector<std::string_view> names_;
  std::vector<Value> bound_;
  std::vector<bool> given_;
};

}  // namespace lowbit::jinja
