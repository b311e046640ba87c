// The KV budget as a pool of fixed-size pages (ids 0..num_pages-1), each with a reference count.
// A request holds one reference on every page of its KV; the prefix cache (runtime/radix_cache)
// holds one more on every page it stores, so a page shared by the cache and two requests has
// count 3. A page is free exactly when its count is 0. The allocator only does the bookkeeping:
// the KV memory itself is indexed by page id elsewhere.
//
// Not thread-safe: the engine thread owns it.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit {

// Told when a watched page starts or stops being shared, i.e. its count crosses between 1 and
// 2. The prefix cache watches the pages it holds so it knows, without scanning, which of them
// only it references (those are the ones it may evict).
class PageWatcher {
 public:
  virtual void on_page_shared(int32_t page, bool shared) = 0;

 protected:
  ~PageWatcher() = default;
};

class PageAllocator {
 public:
  explicit PageAllocator(int64_t num_pages);
  PageAllocator(const PageAllocator&) = delete;
  PageAllocator& operator=(const PageAllocator&) = delete;

  int64_t total_pages() const { return static_cast<int64_t>(counts_.size()); }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_pages() const { return total_pages() - free_pages(); }

  // Takes n free pages, each with count 1, appended to out; false (and nothing taken) if fewer
  // than n are free. Lowest ids first on a fresh pool; recently freed pages are reused first.
  bool allocate(int64_t n, std::vector<int32_t>& out);
  void ref(int32_t page);    // count+1 (the page must be in use)
  void unref(int32_t page);  // count-1; at 0 the page is free again
  int32_t ref_count(int32_t page) const;

  // One watcher (or none) for the pool; watch() marks the pages it is told about. A page's
  // watch mark is cleared when the page becomes free.
  void set_watcher(PageWatcher* watcher) { watcher_ = watcher; }
  PageWatcher* watcher() const { return watcher_; }
  void watch(int32_t page, bool on);

 private:
  void check_page(int32_t page, const char* what) const;

  std::vector<int32_t> counts_;
  std::vector<uint8_t> watched_;
  std::vector<int32_t> free_;  // a stack: back() is handed out next
  PageWatcher* watcher_ = nullptr;
};

}  // namespace lowbit
