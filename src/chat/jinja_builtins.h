// Methods of str / dict / list values, and the global functions a chat template can call
// (Jinja's range/dict/namespace plus transformers' raise_exception and strftime_now).
#pragma once

#include <optional>
#include <string_view>

#include "chat/jinja_value.h"

namespace lowbit::jinja {

// `self.name` when it names a Python method of self's type: a bound callable; for methods the
// sandbox forbids (list.append, dict.update, ...) an Undefined that fails when called.
// std::nullopt when `name` is not a method, so lookup falls back to items.
std::optional<Value> bound_method(const Value& self, std::string_view name);

// range, dict, namespace, raise_exception, strftime_now.
const Value* builtin_global(std::string_view name);

// The Undefined for a name missing from the context; names Jinja globals lowbit lacks.
Value missing_name(std::string_view name);

// Python str.format (auto/explicit numbering and names, no format specs).
std::string str_format(const std::string& format, const CallArgs& args);

}  // namespace lowbit::jinja
