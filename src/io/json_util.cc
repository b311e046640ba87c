#include "io/json_util.h"

#include <fstream>
#include <functional>
#include <iterator>
#include <unordered_set>
#include <vector>

#include "core/error.h"

namespace lowbit {

using nlohmann::json;

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open for reading", path.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("{}: read error", path.string());
  return text;
}

namespace {

// Tracks the keys of every open object while the parser streams events. The top of the
// stack is always the innermost open object, because keys only occur directly in objects.
class DuplicateKeyChecker {
 public:
  DuplicateKeyChecker(std::string_view label, std::string_view top_level_kind)
      : label_(label), top_level_kind_(top_level_kind) {}

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        frames_.push_back(Frame{last_key_, {}});
        break;
      case json::parse_event_t::object_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case json::parse_event_t::key: {
        std::string key = parsed.get<std::string>();
        if (!frames_.empty() && !frames_.back().keys.insert(key).second) {
          if (frames_.size() == 1) fail("{}: duplicate {} '{}'", label_, top_level_kind_, key);
          fail("{}: duplicate key '{}' in '{}'", label_, key, frames_.back().parent_key);
        }
        last_key_ = std::move(key);
        break;
      }
      default:
        break;
    }
    return true;
  }

 private:
  struct Frame {
    std::string parent_key;
    std::unordered_set<std::string> keys;
  };
  std::string label_, top_level_kind_, last_key_;
  std::vector<Frame> frames_;
};

}  // namespace

json parse_json_unique_keys(std::string_view text, std::string_view label,
                            std::string_view top_level_kind) {
  DuplicateKeyChecker checker(label, top_level_kind);
  try {
    // std::ref: nlohmann copies the callback, and the checker's stack must be shared.
    return json::parse(text.begin(), text.end(), std::ref(checker));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", label, e.what());
  }
}

json parse_json(std::string_view text, std::string_view label) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", label, e.what());
  }
}

std::string_view json_type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "object";
    case json::value_t::array:
      return "array";
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "number";
    default:
      return "value";
  }
}

}  // namespace lowbit
