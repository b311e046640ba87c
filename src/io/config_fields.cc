#include "io/config_fields.h"

#include <limits>

#include "core/error.h"
#include "io/json_util.h"

namespace lowbit {

using nlohmann::json;

ConfigFields::ConfigFields(const json& object, std::string_view label, std::string prefix)
    : object_(object), label_(label), prefix_(std::move(prefix)) {
  if (!object_.is_object())
    fail("{}: {} must be a JSON object, got {}", label_,
         prefix_.empty() ? std::string("the file")
                         : "'" + prefix_.substr(0, prefix_.size() - 1) + "'",
         json_type_name(object_));
}

void ConfigFields::fail_field(std::string_view key, std::string_view message) const {
  fail("{}: field '{}{}' {}", label_, prefix_, key, message);
}

const json* ConfigFields::find(std::string_view key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool ConfigFields::contains(std::string_view key) const { return object_.contains(key); }

int64_t ConfigFields::to_int(std::string_view key, const json& v) const {
  // nlohmann: is_number_integer() also holds for unsigned values, so test unsigned first.
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      fail_field(key, fmt::format("= {} is out of range", json_excerpt(v)));
    return v.get<int64_t>();
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  fail_field(key, fmt::format("must be an integer, got {} {}", json_type_name(v), json_excerpt(v)));
}

std::optional<int64_t> ConfigFields::opt_int(std::string_view key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  return to_int(key, *v);
}

std::optional<double> ConfigFields::opt_number(std::string_view key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_number())
    fail_field(key,
               fmt::format("must be a number, got {} {}", json_type_name(*v), json_excerpt(*v)));
  return v->get<double>();
}

std::optional<bool> ConfigFields::opt_bool(std::string_view key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean())
    fail_field(
        key, fmt::format("must be true or false, got {} {}", json_type_name(*v), json_excerpt(*v)));
  return v->get<bool>();
}

std::optional<std::string> ConfigFields::opt_string(std::string_view key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_string())
    fail_field(key,
               fmt::format("must be a string, got {} {}", json_type_name(*v), json_excerpt(*v)));
  return v->get<std::string>();
}

std::optional<std::vector<int32_t>> ConfigFields::opt_token_ids(std::string_view key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  std::vector<int32_t> ids;
  auto add = [&](const json& item) {
    if (!item.is_number_integer())  // includes unsigned
      fail_field(
          key, fmt::format("must be a token id or a list of token ids, got {}", json_excerpt(*v)));
    const int64_t id = to_int(key, item);
    if (id < 0 || id > std::numeric_limits<int32_t>::max())
      fail_field(key, fmt::format("has token id {} out of range", id));
    ids.push_back(int32_t(id));
  };
  if (v->is_array()) {
    for (const json& item : *v) add(item);
  } else {
    add(*v);
  }
  return ids;
}

int64_t ConfigFields::required_int(std::string_view key) const {
  if (auto v = opt_int(key)) return *v;
  fail_field(key, "is missing");
}

int64_t ConfigFields::required_positive(std::string_view key) const {
  const int64_t v = required_int(key);
  if (v <= 0) fail_field(key, fmt::format("must be positive, got {}", v));
  return v;
}

double ConfigFields::required_number(std::string_view key) const {
  if (auto v = opt_number(key)) return *v;
  fail_field(key, "is missing");
}

}  // namespace lowbit
