// Python's json.dumps over template values: transformers replaces Jinja's `tojson` filter with
// json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False), and tool
// schemas rendered into prompts must match it byte for byte (", " and ": " separators, float
// repr, key order as given).
#pragma once

#include <optional>
#include <string>

#include "chat/jinja_value.h"

namespace lowbit::jinja {

struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;          // unset: single line; set: newline + indent per level
  std::optional<std::string> item_separator;  // default ", " (or "," when indenting)
  std::optional<std::string> key_separator;   // default ": "
  bool sort_keys = false;
};

std::string json_dumps(const Value& value, const JsonDumpOptions& options);

}  // namespace lowbit::jinja
