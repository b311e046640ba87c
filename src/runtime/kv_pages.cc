#include "runtime/kv_pages.h"

#include "core/error.h"

namespace lowbit {

PageAllocator::PageAllocator(int64_t num_pages) {
  if (num_pages < 0 || num_pages > INT32_MAX)
    fail("KV page pool: num_pages {} is out of range [0, {}]", num_pages, INT32_MAX);
  counts_.assign(static_cast<size_t>(num_pages), 0);
  watched_.assign(static_cast<size_t>(num_pages), 0);
  free_.reserve(static_cast<size_t>(num_pages));
  // Highest id at the bottom of the stack, so a fresh pool hands out 0, 1, 2, ...
  for (int64_t p = num_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

void PageAllocator::check_page(int32_t page, const char* what) const {
  LOWBIT_CHECK(page >= 0 && page < total_pages(), "{}: page {} is not in [0, {})", what, page,
               total_pages());
}

bool PageAllocator::allocate(int64_t n, std::vector<int32_t>& out) {
  LOWBIT_CHECK(n >= 0, "allocate: negative page count {}", n);
  if (n > free_pages()) return false;
  for (int64_t i = 0; i < n; ++i) {
    int32_t page = free_.back();
    free_.pop_back();
    counts_[page] = 1;
    out.push_back(page);
  }
  return true;
}

void PageAllocator::ref(int32_t page) {
  check_page(page, "ref");
  LOWBIT_CHECK(counts_[page] > 0, "ref: page {} is free", page);
  if (++counts_[page] == 2 && watched_[page] && watcher_) watcher_->on_page_shared(page, true);
}

void PageAllocator::unref(int32_t page) {
  check_page(page, "unref");
  LOWBIT_CHECK(counts_[page] > 0, "unref: page {} is already free", page);
  int32_t count = --counts_[page];
  if (count == 1 && watched_[page] && watcher_) {
    watcher_->on_page_shared(page, false);
  } else if (count == 0) {
    watched_[page] = 0;
    free_.push_back(page);
  }
}

int32_t PageAllocator::ref_count(int32_t page) const {
  check_page(page, "ref_count");
  return counts_[page];
}

void PageAllocator::watch(int32_t page, bool on) {
  check_page(page, "watch");
  LOWBIT_CHECK(!on || counts_[page] > 0, "watch: page {} is free", page);
  watched_[page] = on ? 1 : 0;
}

}  // namespace lowbit
