#include "server/stream_bridge.h"

#include <event2/event.h>

namespace lowbit {

EventBridge::EventBridge(event_base* base, Handler handler) : handler_(std::move(handler)) {
  wake_ = event_new(base, -1, 0, on_wake, this);
  if (!wake_) fail("libevent: cannot create the engine wake-up event");
}

EventBridge::~EventBridge() { event_free(wake_); }

void EventBridge::push(uint64_t job, int choice, EngineEvent&& e) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_empty = queue_.empty();
    queue_.push_back({job, choice, std::move(e)});
  }
  // One wake-up per batch: the loop drains everything queued when it runs.
  if (was_empty) event_active(wake_, 0, 0);
}

void EventBridge::on_wake(int, short, void* arg) {
  auto* self = static_cast<EventBridge*>(arg);
  std::vector<Item> items;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    items.swap(self->queue_);
  }
  for (auto& it : items) self->handler_(it.job, it.choice, std::move(it.event));
}

}  // namespace lowbit
