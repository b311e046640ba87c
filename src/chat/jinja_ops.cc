#include "chat/jinja_ops.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "chat/jinja_builtins.h"
#include "chat/py_text.h"

namespace lowbit::jinja {
namespace {

// Cap on strings/lists built by `*` so a hostile context cannot exhaust memory.
constexpr int64_t kMaxRepeatBytes = int64_t{1} << 28;

const char* op_symbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd:
      return "+";
    case BinaryOp::kSub:
      return "-";
    case BinaryOp::kMul:
      return "*";
    case BinaryOp::kDiv:
      return "/";
    case BinaryOp::kFloorDiv:
      return "//";
    case BinaryOp::kMod:
      return "%";
    case BinaryOp::kPow:
      return "**";
    default:
      return "?";
  }
}

[[noreturn]] void unsupported_operands(BinaryOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (op == BinaryOp::kAdd && a.is_string()) {
    eval_fail("can only concatenate str (not \"{}\") to str", type_name(b));
  }
  eval_fail("unsupported operand type(s) for {}: '{}' and '{}'", op_symbol(op), type_name(a),
            type_name(b));
}

[[noreturn]] void overflow() {
  eval_fail("integer overflow (lowbit's template interpreter uses 64-bit integers)");
}

template <class Op>
Value checked(Op op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op(x, y, &r)) overflow();
  return Value(r);
}

Value repeat(const Value& seq, int64_t times) {
  times = std::max<int64_t>(times, 0);
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (static_cast<int64_t>(s.size()) * times > kMaxRepeatBytes) {
      eval_fail("repeated string is too large");
    }
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += s;
    return Value(std::move(out));
  }
  const List& list = seq.as_list();
  if (static_cast<int64_t>(list.items.size()) * times > kMaxRepeatBytes / 16) {
    eval_fail("repeated list is too large");
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), list.items.begin(), list.items.end());
  return Value::list(std::move(out), list.is_tuple);
}

// Python's float floor division and modulo (result takes the divisor's sign).
double py_fmod(double a, double b) {
  double r = std::fmod(a, b);
  if (r != 0.0) {
    if ((b < 0) != (r < 0)) r += b;
  } else {
    r = std::copysign(0.0, b);
  }
  return r;
}

double py_floordiv(double a, double b) {
  const double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0.0) return std::copysign(0.0, a / b);
  double floored = std::floor(div);
  if (div - floored > 0.5) floored += 1.0;
  return floored;
}

Value arithmetic(BinaryOp op, const Value& a, const Value& b) {
  const bool use_float = a.is_float() || b.is_float();
  if (use_float) {
    const double x = a.as_double();
    const double y = b.as_double();
    switch (op) {
      case BinaryOp::kAdd:
        return Value(x + y);
      case BinaryOp::kSub:
        return Value(x - y);
      case BinaryOp::kMul:
        return Value(x * y);
      case BinaryOp::kDiv:
        if (y == 0.0) eval_fail("float division by zero");
        return Value(x / y);
      case BinaryOp::kFloorDiv:
        if (y == 0.0) eval_fail("float floor division by zero");
        return Value(py_floordiv(x, y));
      case BinaryOp::kMod:
        if (y == 0.0) eval_fail("float modulo");
        return Value(py_fmod(x, y));
      case BinaryOp::kPow: {
        if (x == 0.0 && y < 0.0) eval_fail("0.0 cannot be raised to a negative power");
        if (x < 0.0 && y != std::floor(y)) eval_fail("complex results are not supported");
        return Value(std::pow(x, y));
      }
      default:
        break;
    }
  }
  const int64_t x = a.as_int();
  const int64_t y = b.as_int();
  switch (op) {
    case BinaryOp::kAdd:
      return checked(
          [](int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }, x, y);
    case BinaryOp::kSub:
      return checked(
          [](int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }, x, y);
    case BinaryOp::kMul:
      return checked(
          [](int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }, x, y);
    case BinaryOp::kDiv:
      if (y == 0) eval_fail("division by zero");
      return Value(static_cast<double>(x) / static_cast<double>(y));
    case BinaryOp::kFloorDiv: {
      if (y == 0) eval_fail("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) overflow();
      int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return Value(q);
    }
    case BinaryOp::kMod: {
      if (y == 0) eval_fail("integer modulo by zero");
      if (y == -1) return Value(int64_t{0});
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value(m);
    }
    case BinaryOp::kPow: {
      if (y < 0) {
        if (x == 0) eval_fail("0.0 cannot be raised to a negative power");
        return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
      }
      int64_t result = 1;
      int64_t base = x;
      for (int64_t e = y; e > 0;) {  // square-and-multiply with overflow checks
        if ((e & 1) && __builtin_mul_overflow(result, base, &result)) overflow();
        e >>= 1;
        if (e && __builtin_mul_overflow(base, base, &base)) overflow();
      }
      return Value(result);
    }
    default:
      break;
  }
  eval_fail("internal error: bad arithmetic operator");
}

bool ordered(CompareOp op, const Value& a, const Value& b) {
  auto pick = [op](auto x, auto y) {
    switch (op) {
      case CompareOp::kLt:
        return x < y;
      case CompareOp::kLe:
        return x <= y;
      case CompareOp::kGt:
        return x > y;
      default:
        return x >= y;
    }
  };
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return pick(a.as_double(), b.as_double());
    return pick(a.as_int(), b.as_int());
  }
  if (a.is_string() && b.is_string()) return pick(a.as_string(), b.as_string());
  if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return ordered(op, x[i], y[i]);
    }
    return pick(x.size(), y.size());
  }
  const char* symbol = op == CompareOp::kLt   ? "<"
                       : op == CompareOp::kLe ? "<="
                       : op == CompareOp::kGt ? ">"
                                              : ">=";
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  eval_fail("'{}' not supported between instances of '{}' and '{}'", symbol, type_name(a),
            type_name(b));
}

std::string no_attribute(const Value& object, std::string_view name) {
  return fmt::format("'{} object' has no attribute '{}'", type_name(object), name);
}

std::optional<int64_t> slice_bound(const Value& v) {
  if (v.is_undefined() || v.is_none()) return std::nullopt;
  if (!v.is_integral()) {
    eval_fail("slice indices must be integers or None, not {}", type_name(v));
  }
  return v.as_int();
}

}  // namespace

Value binary_op(BinaryOp op, const Value& a, const Value& b) {
  if (op == BinaryOp::kConcat) return Value(to_str(a) + to_str(b));
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  switch (op) {
    case BinaryOp::kAdd:
      if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
      if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
        std::vector<Value> items = a.as_list().items;
        items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
        return Value::list(std::move(items), a.as_list().is_tuple);
      }
      break;
    case BinaryOp::kMul:
      if ((a.is_string() || a.is_list()) && b.is_integral()) return repeat(a, b.as_int());
      if (a.is_integral() && (b.is_string() || b.is_list())) return repeat(b, a.as_int());
      break;
    case BinaryOp::kMod:
      if (a.is_string()) return Value(percent_format(a.as_string(), b));
      break;
    default:
      break;
  }
  unsupported_operands(op, a, b);
}

Value unary_op(UnaryOp op, const Value& v) {
  if (op == UnaryOp::kNot) return Value(!truthy(v));
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number()) {
    eval_fail("bad operand type for unary {}: '{}'", op == UnaryOp::kNeg ? "-" : "+", type_name(v));
  }
  if (op == UnaryOp::kPos) return v.is_bool() ? Value(v.as_int()) : v;
  if (v.is_float()) return Value(-v.as_double());
  if (v.as_int() == INT64_MIN) overflow();
  return Value(-v.as_int());
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kUndefined:
      return false;
    case Kind::kString:
      if (!item.is_string()) {
        eval_fail("'in <string>' requires string as left operand, not {}", type_name(item));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Kind::kList:
      for (const Value& v : container.as_list().items) {
        if (equals(v, item)) return true;
      }
      return false;
    case Kind::kDict:
      if (!is_hashable(item)) eval_fail("unhashable type: '{}'", type_name(item));
      return container.as_dict().find(item) != nullptr;
    default:
      eval_fail("argument of type '{}' is not iterable", type_name(container));
  }
}

bool compare(CompareOp op, const Value& a, const Value& b) {
  switch (op) {
    case CompareOp::kEq:
      return equals(a, b);
    case CompareOp::kNe:
      return !equals(a, b);
    case CompareOp::kIn:
      return contains(b, a);
    case CompareOp::kNotIn:
      return !contains(b, a);
    default:
      return ordered(op, a, b);
  }
}

Value get_attr(const Value& object, std::string_view name) {
  if (object.is_undefined()) fail_undefined(object);
  // The sandbox hides private attributes: a namespace's `_x`, and Python's dunders (which
  // every object has) on anything.
  const bool dunder =
      name.size() > 4 && name.substr(0, 2) == "__" && name.substr(name.size() - 2) == "__";
  if (dunder || (object.is_namespace() && !name.empty() && name[0] == '_')) {
    return Value::undefined(
        fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, type_name(object)));
  }
  if (std::optional<Value> method = bound_method(object, name)) return *method;
  if (object.is_dict()) {
    if (const Value* v = object.as_dict().find(name)) return *v;
  } else if (object.is_namespace()) {
    if (const Value* v = object.as_namespace().attrs.find(name)) return *v;
  }
  return Value::undefined(no_attribute(object, name));
}

Value get_item(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Kind::kUndefined:
      fail_undefined(object);
    case Kind::kDict:
      if (const Value* v = object.as_dict().find(key)) return *v;
      break;
    case Kind::kList:
    case Kind::kString:
      if (key.is_integral()) {
        const bool is_string = object.is_string();
        std::u32string chars;
        if (is_string) chars = py::decode(object.as_string());
        const int64_t size = is_string ? static_cast<int64_t>(chars.size())
                                       : static_cast<int64_t>(object.as_list().items.size());
        int64_t index = key.as_int();
        if (index < 0) index += size;
        if (index < 0 || index >= size) {
          return Value::undefined(
              fmt::format("'{} object' has no element {}", type_name(object), key.as_int()));
        }
        if (!is_string) return object.as_list().items[index];
        return Value(py::encode(std::u32string_view(chars).substr(index, 1)));
      }
      break;
    default:
      break;
  }
  if (key.is_string()) return get_attr(object, key.as_string());
  return Value::undefined(
      fmt::format("'{} object' has no element {}", type_name(object), repr(key)));
}

Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step) {
  if (object.is_undefined()) fail_undefined(object);
  const std::optional<int64_t> step_value = slice_bound(step);
  if (step_value && *step_value == 0) eval_fail("slice step cannot be zero");
  if (object.is_string()) {
    const std::u32string chars = py::decode(object.as_string());
    std::u32string out;
    for (int64_t i : py::slice_positions(static_cast<int64_t>(chars.size()), slice_bound(start),
                                         slice_bound(stop), step_value)) {
      out += chars[i];
    }
    return Value(py::encode(out));
  }
  if (object.is_list()) {
    const List& list = object.as_list();
    std::vector<Value> out;
    for (int64_t i : py::slice_positions(static_cast<int64_t>(list.items.size()),
                                         slice_bound(start), slice_bound(stop), step_value)) {
      out.push_back(list.items[i]);
    }
    return Value::list(std::move(out), list.is_tuple);
  }
  // Jinja compiles slices to a plain Python subscript, so anything else raises.
  if (object.is_dict()) eval_fail("unhashable type: 'slice'");
  eval_fail("'{}' object is not subscriptable", type_name(object));
}

std::string percent_format(const std::string& format, const Value& args) {
  const bool is_tuple = args.is_list() && args.as_list().is_tuple;
  const std::vector<Value> positional = is_tuple ? args.as_list().items : std::vector<Value>{args};
  // CPython treats any non-tuple argument with __getitem__ (dict, list, Undefined) as a mapping,
  // which waives the "not all arguments converted" check.
  const bool mapping_like = args.is_dict() || args.is_undefined() || (args.is_list() && !is_tuple);
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    if (++i >= format.size()) eval_fail("incomplete format");
    const Value* arg = nullptr;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos) eval_fail("incomplete format key");
      if (!args.is_dict()) eval_fail("format requires a mapping");  // lists/Undefined too
      arg = args.as_dict().find(std::string_view(format).substr(i + 1, close - i - 1));
      if (!arg) eval_fail("format key '{}' not found", format.substr(i + 1, close - i - 1));
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() && std::string_view("-+ #0").find(format[i]) != std::string::npos) {
      flags += format[i++];
    }
    std::string width, precision;
    while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i])))
      width += format[i++];
    if (i < format.size() && format[i] == '.') {
      precision = ".";
      ++i;
      while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i])))
        precision += format[i++];
    }
    if (i >= format.size()) eval_fail("incomplete format");
    const char conv = format[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!arg) {
      if (next >= positional.size()) eval_fail("not enough arguments for format string");
      arg = &positional[next++];
    }
    std::string piece;
    if (conv == 's' || conv == 'r' || conv == 'a') {
      piece = conv == 's' ? to_str(*arg) : repr(*arg);
      if (precision.size() > 1) {
        const std::u32string cps = py::decode(piece);
        piece = py::encode(std::u32string_view(cps).substr(0, std::stoul(precision.substr(1))));
      }
      const size_t w = width.empty() ? 0 : std::stoul(width);
      const size_t len = py::length(piece);
      if (len < w) {
        const std::string pad(w - len, ' ');
        piece = flags.find('-') != std::string::npos ? piece + pad : pad + piece;
      }
    } else if (std::string_view("diouxXeEfFgGc").find(conv) != std::string_view::npos) {
      if (!arg->is_number()) {
        eval_fail("%{} format: a real number is required, not {}", conv, type_name(*arg));
      }
      char buf[512];
      const std::string spec = "%" + flags + width + precision;
      if (conv == 'c') {
        py::append_utf8(piece, static_cast<char32_t>(arg->as_int()));
      } else if (std::string_view("diouxX").find(conv) != std::string_view::npos) {
        const long long v =
            arg->is_float() ? static_cast<long long>(arg->as_double()) : arg->as_int();
        const char c = (conv == 'i' || conv == 'u') ? 'd' : conv;
        std::snprintf(buf, sizeof(buf), (spec + "ll" + c).c_str(), v);
        piece = buf;
      } else {
        std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), arg->as_double());
        piece = buf;
      }
    } else {
      eval_fail("unsupported format character '{}'", conv);
    }
    out += piece;
  }
  if (!used_mapping && !mapping_like && next < positional.size()) {
    eval_fail("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace lowbit::jinja
