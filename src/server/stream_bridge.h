// Carries engine events to the event-loop thread. The engine calls each request's sink on its
// own thread and the sink must not block; so it appends the event to a mutex-protected queue
// and wakes the loop with event_active on one user event (libevent's thread-safe way in). The
// loop then drains the whole queue in one callback, in order, and hands each event to the
// handler (which writes SSE chunks or completes a reply).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "runtime/engine.h"

struct event_base;
struct event;

namespace lowbit {

class EventBridge {
 public:
  // (job id, choice index, event), called on the loop thread.
  using Handler = std::function<void(uint64_t, int, EngineEvent&&)>;
  EventBridge(event_base* base, Handler handler);
  ~EventBridge();
  EventBridge(const EventBridge&) = delete;
  EventBridge& operator=(const EventBridge&) = delete;

  // Any thread.
  void push(uint64_t job, int choice, EngineEvent&& e);
  // A sink for one choice of one job.
  EventSink sink(uint64_t job, int choice) {
    return [this, job, choice](EngineEvent&& e) { push(job, choice, std::move(e)); };
  }

 private:
  struct Item {
    uint64_t job;
    int choice;
    EngineEvent event;
  };
  static void on_wake(int, short, void* arg);

  Handler handler_;
  event* wake_ = nullptr;
  std::mutex mu_;
  std::vector<Item> queue_;
};

}  // namespace lowbit
