// Python's operators as Jinja applies them: arithmetic with int/float promotion and floor
// semantics, string/list concatenation and repetition, `in`, ordering, attribute and item
// lookup (sandboxed: mutating methods are refused), slicing and printf-style `%`.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace lowbit::jinja {

// Arithmetic operators (not and/or, which short-circuit in the interpreter).
Value binary_op(BinaryOp op, const Value& a, const Value& b);
Value unary_op(UnaryOp op, const Value& v);
bool compare(CompareOp op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);

// Jinja's environment.getattr / getitem: `a.b` tries the attribute (methods) first, then the
// item; `a[b]` the other way round. Missing -> Undefined; Undefined receiver -> error.
Value get_attr(const Value& object, std::string_view name);
Value get_item(const Value& object, const Value& key);
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);

// `format % args` (also the `format` filter).
std::string percent_format(const std::string& format, const Value& args);

}  // namespace lowbit::jinja
