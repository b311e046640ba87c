#include "server/tool_call_parser.h"

#include <nlohmann/json.hpp>

#include <random>

#include "server/text_hold.h"

namespace lowbit {

namespace {
constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

std::string new_call_id() {
  static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlnum[rng() % (sizeof(kAlnum) - 1)];
  return id;
}
}  // namespace

void ToolCallParser::emit_content(Delta& d, std::string_view text) {
  if (text.empty()) return;
  if (calls_seen_ > 0 && is_blank(text)) {
    blank_ += text;  // the newline between two calls is not an answer
    return;
  }
  d.content += blank_;
  blank_.clear();
  d.content += text;
}

void ToolCallParser::close_call(Delta& d, std::string_view body, bool closed) {
  const auto j = nlohmann::ordered_json::parse(trim_blank(body), nullptr, false);
  if (j.is_object() && j.contains("name") && j["name"].is_string()) {
    const auto args = j.contains("arguments") ? j["arguments"] : (j.contains("parameters") ? j["parameters"] : nlohmann::ordered_json::object());
    if (args.is_object() || args.is_string()) {
      blank_.clear();
      d.calls.push_back({new_call_id(), j["name"].get<std::string>(),
                         args.is_string() ? args.get<std::string>() : args.dump()});
      ++calls_seen_;
      return;
    }
  }
  emit_content(d, std::string(kOpen) + std::string(body) + (closed ? std::string(kClose) : std::string()));
}

ToolCallParser::Delta ToolCallParser::push(std::string_view text) {
  Delta d;
  held_ += text;
  for (;;) {
    if (!in_call_) {
      const size_t open = held_.find(kOpen);
      if (open != std::string::npos) {
        emit_content(d, std::string_view(held_).substr(0, open));
        held_.erase(0, open + kOpen.size());
        in_call_ = true;
        continue;
      }
      const size_t keep = partial_tag_suffix(held_, kOpen);
      emit_content(d, std::string_view(held_).substr(0, held_.size() - keep));
      held_.erase(0, held_.size() - keep);
      return d;
    }
    const size_t close = held_.find(kClose);
    if (close == std::string::npos) return d;
    close_call(d, std::string_view(held_).substr(0, close), true);
    held_.erase(0, close + kClose.size());
    in_call_ = false;
  }
}

ToolCallParser::Delta ToolCallParser::finish() {
  Delta d;
  if (in_call_)
    close_call(d, held_, false);  // generation ended before </tool_call>: a complete JSON still counts
  else
    emit_content(d, held_);
  held_.clear();
  in_call_ = false;
  return d;
}

}  // namespace lowbit
