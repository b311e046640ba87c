#include "tools/bench_serving/sse_parser.h"

namespace lowbit::bench_serving {

void SseParser::feed(std::string_view bytes, const EventFn& on_event) {
  for (char c : bytes) {
    if (c == '\n' && after_cr_) {  // second half of "\r\n": the line already ended at '\r'
      after_cr_ = false;
      continue;
    }
    after_cr_ = c == '\r';
    if (c == '\n' || c == '\r') {
      line(partial_, on_event);
      partial_.clear();
    } else {
      partial_.push_back(c);
    }
  }
}

void SseParser::finish(const EventFn& on_event) {
  if (!partial_.empty()) line(partial_, on_event);
  partial_.clear();
  dispatch(on_event);
}

void SseParser::line(std::string_view text, const EventFn& on_event) {
  if (text.empty()) {
    dispatch(on_event);
    return;
  }
  if (text.front() == ':') return;  // comment (keep-alive)
  const size_t colon = text.find(':');
  std::string_view name = text.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (name == "data") {
    if (has_data_) event_.data.push_back('\n');
    event_.data.append(value);
    has_data_ = has_field_ = true;
  } else if (name == "error") {
    event_.error.append(value);
    has_field_ = true;
  }
  // event:, id:, retry: carry nothing a benchmark needs.
}

void SseParser::dispatch(const EventFn& on_event) {
  if (has_field_) on_event(event_);
  event_ = SseEvent{};
  has_field_ = has_data_ = false;
}

}  // namespace lowbit::bench_serving
