// Jinja's built-in filters and tests, with transformers' replacement `tojson`. Names are checked
// at parse time, so an unsupported filter fails when the template is loaded, not mid-render.
#pragma once

#include <string_view>

#include "chat/jinja_value.h"

namespace lowbit::jinja {

class Interpreter;

bool is_supported_filter(std::string_view name);
bool is_jinja_filter(std::string_view name);  // any filter stock Jinja has
bool is_supported_test(std::string_view name);
bool is_jinja_test(std::string_view name);

Value apply_filter(Interpreter& interp, std::string_view name, const Value& operand,
                   const CallArgs& args);
bool apply_test(Interpreter& interp, std::string_view name, const Value& operand,
                const CallArgs& args);

}  // namespace lowbit::jinja
