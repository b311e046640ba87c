#include "runtime/kv_pages.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <utility>

#include "core/error.h"

namespace lowbit {
namespace {

TEST(PageAllocator, AllocatesAllOrNothing) {
  PageAllocator pool(5);
  EXPECT_EQ(pool.total_pages(), 5);
  EXPECT_EQ(pool.free_pages(), 5);
  std::vector<int32_t> a;
  ASSERT_TRUE(pool.allocate(3, a));
  EXPECT_EQ(a, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(pool.used_pages(), 3);
  for (int32_t p : a) EXPECT_EQ(pool.ref_count(p), 1);

  std::vector<int32_t> b{42};
  EXPECT_FALSE(pool.allocate(3, b));  // only 2 free: nothing taken, out untouched
  EXPECT_EQ(b, std::vector<int32_t>{42});
  EXPECT_EQ(pool.free_pages(), 2);
  EXPECT_TRUE(pool.allocate(0, b));
  ASSERT_TRUE(pool.allocate(2, b));
  EXPECT_EQ(b, (std::vector<int32_t>{42, 3, 4}));
  EXPECT_EQ(pool.free_pages(), 0);
  EXPECT_FALSE(pool.allocate(1, b));
}

TEST(PageAllocator, CountsReferencesAndReusesFreedPages) {
  PageAllocator pool(4);
  std::vector<int32_t> pages;
  ASSERT_TRUE(pool.allocate(2, pages));
  pool.ref(pages[0]);
  EXPECT_EQ(pool.ref_count(pages[0]), 2);
  pool.unref(pages[0]);
  EXPECT_EQ(pool.used_pages(), 2);  // still held once
  pool.unref(pages[0]);
  EXPECT_EQ(pool.ref_count(pages[0]), 0);
  EXPECT_EQ(pool.free_pages(), 3);
  std::vector<int32_t> again;
  ASSERT_TRUE(pool.allocate(1, again));
  EXPECT_EQ(again[0], pages[0]);  // the most recently freed page comes back first
}

TEST(PageAllocator, RejectsMisuse) {
  PageAllocator pool(2);
  EXPECT_THROW(pool.unref(0), Error);  // free
  EXPECT_THROW(pool.ref(1), Error);    // free
  EXPECT_THROW(pool.ref_count(2), Error);
  EXPECT_THROW(pool.unref(-1), Error);
  std::vector<int32_t> pages;
  EXPECT_THROW(pool.allocate(-1, pages), Error);
  ASSERT_TRUE(pool.allocate(1, pages));
  pool.unref(pages[0]);
  EXPECT_THROW(pool.unref(pages[0]), Error);  // double free
  EXPECT_EQ(pool.free_pages(), 2);
  EXPECT_THROW(PageAllocator(-3), Error);
}

struct RecordingWatcher : PageWatcher {
  std::vector<std::pair<int32_t, bool>> calls;
  void on_page_shared(int32_t page, bool shared) override { calls.emplace_back(page, shared); }
};

TEST(PageAllocator, ReportsSharingOfWatchedPagesOnly) {
  PageAllocator pool(3);
  RecordingWatcher watcher;
  pool.set_watcher(&watcher);
  std::vector<int32_t> p;
  ASSERT_TRUE(pool.allocate(2, p));
  pool.watch(p[0], true);
  pool.ref(p[0]);  // 1 -> 2: shared
  pool.ref(p[0]);  // 2 -> 3: no change
  pool.ref(p[1]);  // not watched
  pool.unref(p[0]);
  pool.unref(p[0]);  // 2 -> 1: no longer shared
  pool.unref(p[0]);  // 1 -> 0: freed, and the watch mark goes with it
  EXPECT_EQ(watcher.calls,
            (std::vector<std::pair<int32_t, bool>>{{p[0], true}, {p[0], false}}));
  std::vector<int32_t> q;
  ASSERT_TRUE(pool.allocate(1, q));
  ASSERT_EQ(q[0], p[0]);
  pool.ref(q[0]);  // reused page is not watched any more
  EXPECT_EQ(watcher.calls.size(), 2u);
  EXPECT_THROW(pool.watch(2, true), Error);  // free
}

TEST(PageAllocator, RandomisedCountsMatchAModel) {
  std::mt19937 rng(7);
  PageAllocator pool(16);
  std::vector<int32_t> held;  // one entry per reference the test holds
  for (int step = 0; step < 5000; ++step) {
    int op = static_cast<int>(rng() % 3);
    if (op == 0) {
      int64_t n = rng() % 5;
      std::vector<int32_t> got;
      const int64_t free_before = pool.free_pages();
      EXPECT_EQ(pool.allocate(n, got), n <= free_before);
      EXPECT_EQ(static_cast<int64_t>(got.size()), n <= free_before ? n : 0);
      held.insert(held.end(), got.begin(), got.end());
    } else if (op == 1 && !held.empty()) {
      int32_t p = held[rng() % held.size()];
      pool.ref(p);
      held.push_back(p);
    } else if (!held.empty()) {
      size_t i = rng() % held.size();
      pool.unref(held[i]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    }
    int64_t used = 0;
    for (int32_t p = 0; p < 16; ++p) {
      int64_t expected = std::count(held.begin(), held.end(), p);
      ASSERT_EQ(pool.ref_count(p), expected) << "page " << p << " at step " << step;
      used += expected > 0;
    }
    ASSERT_EQ(pool.used_pages(), used);
  }
  for (int32_t p : held) pool.unref(p);
  EXPECT_EQ(pool.free_pages(), 16);
}

}  // namespace
}  // namespace lowbit
