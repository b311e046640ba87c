// Recursive-descent parser for the Jinja subset chat templates use. It follows Jinja's own
// grammar (jinja2/parser.py) rule for rule, so operator precedence, where filters and tests
// bind, and tuple rules agree with Python. Anything outside the subset is a SourceError that
// names the construct.
#pragma once

#include <string_view>

#include "chat/jinja_ast.h"

namespace lowbit::jinja {

// Lexes and parses `source` (raw template text). Throws SourceError.
Template parse_template(std::string_view source);

}  // namespace lowbit::jinja
