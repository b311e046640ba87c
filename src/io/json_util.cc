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

// Streams parser events to bound nesting depth (nlohmann's dump, copy and comparison recurse,
// so a deeply nested untrusted value would overflow the stack later) and, optionally, to
// reject duplicate keys. The top of frames_ is always the innermost open object, because
// keys only occur directly in objects.
class JsonChecker {
 public:
  JsonChecker(std::string_view label, bool unique_keys, std::string_view top_level_kind)
      : label_(label), top_level_kind_(top_level_kind), unique_keys_(unique_keys) {}

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        enter();
        if (unique_keys_) frames_.push_back(Frame{last_key_, {}});
        break;
      case json::parse_event_t::array_start:
        enter();
        break;
      case json::parse_event_t::object_end:
        --depth_;
        if (unique_keys_ && !frames_.empty()) frames_.pop_back();
        break;
      case json::parse_event_t::array_end:
        --depth_;
        break;
      case json::parse_event_t::key:
        if (unique_keys_) check_key(parsed.get<std::string>());
        break;
      default:
        break;
    }
    return true;
  }

 private:
  void enter() {
    if (++depth_ > kMaxJsonDepth)
      fail("{}: JSON nested deeper than {} levels", label_, kMaxJsonDepth);
  }
  void check_key(std::string key) {
    if (!frames_.empty() && !frames_.back().keys.insert(key).second) {
      if (frames_.size() == 1) fail("{}: duplicate {} '{}'", label_, top_level_kind_, key);
      fail("{}: duplicate key '{}' in '{}'", label_, key, frames_.back().parent_key);
    }
    last_key_ = std::move(key);
  }

  struct Frame {
    std::string parent_key;
    std::unordered_set<std::string> keys;
  };
  std::string label_, top_level_kind_, last_key_;
  bool unique_keys_;
  int depth_ = 0;
  std::vector<Frame> frames_;
};

json parse_checked(std::string_view text, std::string_view label, bool unique_keys,
                   std::string_view top_level_kind) {
  JsonChecker checker(label, unique_keys, top_level_kind);
  try {
    // std::ref: nlohmann copies the callback, and the checker's state must be shared.
    return json::parse(text.begin(), text.end(), std::ref(checker));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", label, e.what());
  }
}

}  // namespace

json parse_json_unique_keys(std::string_view text, std::string_view label,
                            std::string_view top_level_kind) {
  return parse_checked(text, label, true, top_level_kind);
}

json parse_json(std::string_view text, std::string_view label) {
  return parse_checked(text, label, false, "key");
}

std::string json_excerpt(const json& j, size_t max_chars) {
  std::string s = j.dump();
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "...";
  return s;
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
