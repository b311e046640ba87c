// Incremental server-sent-events parser: bytes arrive in whatever pieces the socket delivers
// (an event may be split anywhere, even inside "\r\n"), events come out whole.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace lowbit::bench_serving {

struct SseEvent {
  std::string data;   // the event's data lines joined by '\n' (SSE rules)
  std::string error;  // an "error:" field: not standard SSE, but llama.cpp's server sends it
};

class SseParser {
 public:
  using EventFn = std::function<void(const SseEvent&)>;
  // Parses `bytes`, calling on_event for each event a blank line completes.
  void feed(std::string_view bytes, const EventFn& on_event);
  // At end of stream: an event left without its closing blank line is still delivered.
  void finish(const EventFn& on_event);

 private:
  void line(std::string_view text, const EventFn& on_event);
  void dispatch(const EventFn& on_event);

  std::string partial_;   // an unterminated line
  bool after_cr_ = false;  // the last byte was '\r': a '\n' right after it ends nothing new
  SseEvent event_;
  bool has_field_ = false;
  bool has_data_ = false;
};

}  // namespace lowbit::bench_serving
