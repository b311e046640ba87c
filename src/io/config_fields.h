// Typed, validated reads of one JSON object's fields for config files. A field that is
// absent or null reads as nullopt (transformers treats both as "use the default"); a
// present field of the wrong type or range is an Error naming the file and the field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

class ConfigFields {
 public:
  // `prefix` qualifies field names in messages, e.g. "rope_scaling." for a nested object.
  ConfigFields(const nlohmann::json& object, std::string_view label, std::string prefix = "");

  // nullptr when absent or null.
  const nlohmann::json* find(std::string_view key) const;
  bool contains(std::string_view key) const;  // present, even if null

  std::optional<int64_t> opt_int(std::string_view key) const;
  std::optional<double> opt_number(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  std::optional<std::string> opt_string(std::string_view key) const;
  // An int or a list of ints, each within int32 and non-negative (token ids).
  std::optional<std::vector<int32_t>> opt_token_ids(std::string_view key) const;

  int64_t required_int(std::string_view key) const;
  // Required and > 0.
  int64_t required_positive(std::string_view key) const;
  double required_number(std::string_view key) const;

  // fail() with "LABEL: field 'PREFIX.KEY' <message>".
  [[noreturn]] void fail_field(std::string_view key, std::string_view message) const;
  std::string_view label() const { return label_; }
  const std::string& prefix() const { return prefix_; }

 private:
  int64_t to_int(std::string_view key, const nlohmann::json& v) const;

  const nlohmann::json& object_;
  std::string label_, prefix_;
};

}  // namespace lowbit
