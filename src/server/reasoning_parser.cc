#include "server/reasoning_parser.h"

#include "server/text_hold.h"

namespace lowbit {

namespace {
constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";
}  // namespace

ReasoningParser::ReasoningParser(bool starts_in_reasoning)
    : state_(starts_in_reasoning ? State::kReasoning : State::kStart) {}

bool ReasoningParser::prompt_opens_reasoning(std::string_view prompt) {
  const size_t open = prompt.rfind(kOpen);
  if (open == std::string_view::npos) return false;
  const size_t close = prompt.rfind(kClose);
  if (close != std::string_view::npos && close > open) return false;
  return is_blank(prompt.substr(open + kOpen.size()));
}

void ReasoningParser::emit_reasoning(Delta& d, std::string_view text) {
  if (!reasoning_started_) {
    while (!text.empty() && (text.front() == '\n' || text.front() == ' ' || text.front() == '\r')) text.remove_prefix(1);
    if (text.empty()) return;
    reasoning_started_ = true;
  }
  d.reasoning += text;
}

void ReasoningParser::emit_content(Delta& d, std::string_view text) {
  if (after_think_ && !content_started_) {
    while (!text.empty() && (text.front() == '\n' || text.front() == ' ' || text.front() == '\r')) text.remove_prefix(1);
    if (text.empty()) return;
  }
  content_started_ = true;
  d.content += text;
}

ReasoningParser::Delta ReasoningParser::push(std::string_view text) {
  Delta d;
  held_ += text;
  for (;;) {
    if (state_ == State::kStart) {
      // Leading whitespace before the tag does not decide anything yet.
      size_t i = 0;
      while (i < held_.size() && (held_[i] == ' ' || held_[i] == '\n' || held_[i] == '\r')) ++i;
      std::string_view rest = std::string_view(held_).substr(i);
      if (rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return d;  // undecided
      if (rest.substr(0, kOpen.size()) == kOpen) {
        held_.erase(0, i + kOpen.size());
        state_ = State::kReasoning;
      } else {
        state_ = State::kContent;
      }
      continue;
    }
    if (state_ == State::kReasoning) {
      const size_t close = held_.find(kClose);
      if (close != std::string::npos) {
        emit_reasoning(d, std::string_view(held_).substr(0, close));
        held_.erase(0, close + kClose.size());
        state_ = State::kContent;
        after_think_ = true;
        continue;
      }
      const size_t keep = partial_tag_suffix(held_, kClose);
      emit_reasoning(d, std::string_view(held_).substr(0, held_.size() - keep));
      held_.erase(0, held_.size() - keep);
      return d;
    }
    emit_content(d, held_);
    held_.clear();
    return d;
  }
}

ReasoningParser::Delta ReasoningParser::finish() {
  Delta d;
  if (state_ == State::kReasoning)
    emit_reasoning(d, held_);
  else
    emit_content(d, held_);
  held_.clear();
  return d;
}

}  // namespace lowbit
