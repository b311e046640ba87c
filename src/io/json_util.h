// JSON helpers shared by the io readers: whole-file reads and a parser that rejects
// duplicate object keys (nlohmann keeps the last duplicate silently, which would let an
// untrusted safetensors header or shard index describe one tensor twice).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lowbit {

// The whole file as bytes; Error naming the path if it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

// Nesting limit for every JSON file we read: real headers and configs use a handful of
// levels, and nlohmann's dump/copy/compare recurse, so deep untrusted input must stop here.
inline constexpr int kMaxJsonDepth = 64;

// Parses `text` as JSON; any syntax error, invalid UTF-8, nesting beyond kMaxJsonDepth or
// duplicate key is an Error that starts with `label`. Duplicates in the outermost object are
// reported as "duplicate <top_level_kind> 'NAME'", deeper ones as "duplicate key 'K' in 'PARENT'".
nlohmann::json parse_json_unique_keys(std::string_view text, std::string_view label,
                                      std::string_view top_level_kind = "key");

// Parses `text` as JSON with ordinary (last duplicate wins) semantics, as Python's json
// module does for config files; same errors otherwise.
nlohmann::json parse_json(std::string_view text, std::string_view label);

// `j` serialised for an error message, cut to `max_chars`.
std::string json_excerpt(const nlohmann::json& j, size_t max_chars = 80);

// The JSON type name used in error messages ("string", "number", "object", ...).
std::string_view json_type_name(const nlohmann::json& j);

}  // namespace lowbit
