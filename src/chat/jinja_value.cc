#include "chat/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "chat/py_text.h"

namespace lowbit::jinja {

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : entries_) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k.is_string() && k.as_string() == key) return &v;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  for (auto& [k, v] : entries_) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

Value Value::list(std::vector<Value> items, bool is_tuple) {
  Value v;
  v.v_ = std::make_shared<const List>(List{std::move(items), is_tuple});
  return v;
}

Value Value::dict(Dict dict) {
  Value v;
  v.v_ = std::make_shared<const Dict>(std::move(dict));
  return v;
}

Value Value::callable(std::string name, std::function<Value(Interpreter&, const CallArgs&)> call) {
  return Value(std::make_shared<const Callable>(Callable{std::move(name), std::move(call)}));
}

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::get<int64_t>(v_);
}

double Value::as_double() const {
  if (is_float()) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

const void* Value::identity() const {
  switch (kind()) {
    case Kind::kList:
      return std::get<std::shared_ptr<const List>>(v_).get();
    case Kind::kDict:
      return std::get<std::shared_ptr<const Dict>>(v_).get();
    case Kind::kNamespace:
      return std::get<std::shared_ptr<Namespace>>(v_).get();
    case Kind::kCallable:
      return std::get<std::shared_ptr<const Callable>>(v_).get();
    default:
      return nullptr;
  }
}

void fail_undefined(const Value& v) {
  const std::string& hint = v.undefined_hint();
  eval_fail("{}", hint.empty() ? std::string("value is undefined") : hint);
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return v.as_bool();
    case Kind::kInt:
      return v.as_int() != 0;
    case Kind::kFloat:
      return v.as_double() != 0.0;
    case Kind::kString:
      return !v.as_string().empty();
    case Kind::kList:
      return !v.as_list().items.empty();
    case Kind::kDict:
      return v.as_dict().size() != 0;
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

namespace {

constexpr int kMaxReprDepth = 1000;

std::string repr_at(const Value& v, int depth);

std::string repr_dict(const Dict& dict, int depth) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : dict.entries()) {
    if (!first) out += ", ";
    first = false;
    out += repr_at(k, depth + 1) + ": " + repr_at(v, depth + 1);
  }
  return out + "}";
}

std::string repr_at(const Value& v, int depth) {
  if (depth > kMaxReprDepth) eval_fail("value nested too deeply to print");
  switch (v.kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.as_int());
    case Kind::kFloat:
      return py::float_repr(v.as_double());
    case Kind::kString:
      return py::repr(v.as_string());
    case Kind::kList: {
      const List& list = v.as_list();
      std::string out = list.is_tuple ? "(" : "[";
      for (size_t i = 0; i < list.items.size(); ++i) {
        if (i) out += ", ";
        out += repr_at(list.items[i], depth + 1);
      }
      if (list.is_tuple && list.items.size() == 1) out += ",";
      return out + (list.is_tuple ? ")" : "]");
    }
    case Kind::kDict:
      return repr_dict(v.as_dict(), depth);
    case Kind::kNamespace:
      return "<Namespace " + repr_dict(v.as_namespace().attrs, depth) + ">";
    case Kind::kCallable:
      return "<function " + v.as_callable().name + ">";
  }
  return "";
}

}  // namespace

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return v.as_string();
    default:
      return repr(v);
  }
}

std::string repr(const Value& v) { return repr_at(v, 0); }

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return v.as_list().is_tuple ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.as_string() == b.as_string();
    case Kind::kList: {
      const List& x = a.as_list();
      const List& y = b.as_list();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!equals(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* other = y.find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

bool less(const Value& a, const Value& b, std::string_view op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order
  if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less(x[i], y[i], op);
    }
    return x.size() < y.size();
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  eval_fail("'{}' not supported between instances of '{}' and '{}'", op, type_name(a),
            type_name(b));
}

bool is_hashable(const Value& v) {
  switch (v.kind()) {
    case Kind::kDict:
    case Kind::kNamespace:
      return false;
    case Kind::kList:
      if (!v.as_list().is_tuple) return false;
      for (const Value& item : v.as_list().items) {
        if (!is_hashable(item)) return false;
      }
      return true;
    default:
      return true;
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kList:
      return v.as_list().items;
    case Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& entry : v.as_dict().entries()) keys.push_back(entry.first);
      return keys;
    }
    case Kind::kString: {
      std::vector<Value> chars;
      std::string one;
      for (char32_t cp : py::decode(v.as_string())) {
        one.clear();
        py::append_utf8(one, cp);
        chars.emplace_back(one);
      }
      return chars;
    }
    default:
      eval_fail("'{}' object is not iterable", type_name(v));
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(py::length(v.as_string()));
    case Kind::kList:
      return static_cast<int64_t>(v.as_list().items.size());
    case Kind::kDict:
      return static_cast<int64_t>(v.as_dict().size());
    default:
      eval_fail("object of type '{}' has no len()", type_name(v));
  }
}

namespace {

// Context JSON comes from API clients; bound recursion so nesting cannot overflow the stack.
constexpr int kMaxJsonDepth = 512;

template <class Json>
Value convert(const Json& j, int depth) {
  if (depth > kMaxJsonDepth) eval_fail("the template context is nested too deeply");
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value(None{});
    case nlohmann::json::value_t::boolean:
      return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        eval_fail("integer {} in the context is too large (lowbit uses 64-bit integers)", u);
      }
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(convert(item, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict dict;
      for (auto it = j.begin(); it != j.end(); ++it)
        dict.set(Value(it.key()), convert(it.value(), depth + 1));
      return Value::dict(std::move(dict));
    }
    default:
      eval_fail("unsupported JSON value in the template context");
  }
}

}  // namespace

Value from_json(const nlohmann::ordered_json& j) { return convert(j, 0); }
Value from_json(const nlohmann::json& j) { return convert(j, 0); }

}  // namespace lowbit::jinja

namespace lowbit::jinja {

Params::Params(std::string_view function, const CallArgs& args, std::vector<std::string_view> names,
               size_t required)
    : function_(function), names_(std::move(names)) {
  bound_.resize(names_.size());
  given_.assign(names_.size(), false);
  if (args.positional.size() > names_.size()) {
    eval_fail("{}() takes at most {} argument(s) ({} given)", function_, names_.size(),
              args.positional.size());
  }
  for (size_t i = 0; i < args.positional.size(); ++i) {
    bound_[i] = args.positional[i];
    given_[i] = true;
  }
  for (const auto& [key, value] : args.keyword) {
    const auto it = std::find(names_.begin(), names_.end(), key);
    if (it == names_.end()) {
      eval_fail("{}() got an unexpected keyword argument '{}'", function_, key);
    }
    const size_t i = static_cast<size_t>(it - names_.begin());
    if (given_[i]) eval_fail("{}() got multiple values for argument '{}'", function_, key);
    bound_[i] = value;
    given_[i] = true;
  }
  for (size_t i = 0; i < required; ++i) {
    if (!given_[i]) eval_fail("{}() missing required argument '{}'", function_, names_[i]);
  }
}

int64_t Params::get_int(size_t i, int64_t fallback) const {
  if (!given_[i] || bound_[i].is_none()) return fallback;
  if (!bound_[i].is_integral()) {
    eval_fail("{}(): argument '{}' must be an integer, not {}", function_, names_[i],
              type_name(bound_[i]));
  }
  return bound_[i].as_int();
}

std::string Params::get_string(size_t i, std::string fallback) const {
  if (!given_[i]) return fallback;
  if (!bound_[i].is_string()) {
    eval_fail("{}(): argument '{}' must be a string, not {}", function_, names_[i],
              type_name(bound_[i]));
  }
  return bound_[i].as_string();
}

}  // namespace lowbit::jinja
