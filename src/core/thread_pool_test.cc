#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace lowbit {
namespace {

TEST(ThreadPool, CoversRangeExactlyOnceWithGrain) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 7, 16, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (int rep = 0; rep < 50; ++rep) {
        pool.parallel_for(n, 8, [&](int64_t b, int64_t e, int t) {
          EXPECT_LT(t, threads);
          if (e < n) {
            EXPECT_EQ((e - b) % 8, 0);
            EXPECT_EQ(b % 8, 0);
          }
          for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
        });
      }
      for (auto& h : hits) ASSERT_EQ(h.load(), 50);
    }
  }
}

TEST(ThreadPool, OnEachThreadRunsEveryThreadOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 20; ++rep) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(threads));
      pool.on_each_thread([&](int t) { hits[size_t(t)]++; });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
  }
}

// A participant that sleeps mid-job (a descheduled worker) must not stall the others: the
// remaining chunks are claimed by whoever is free, and every index is still covered once.
TEST(ThreadPool, OthersTakeOverASlowThreadsChunks) {
  ThreadPool pool(3);
  const int64_t n = 64;
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int> slow_calls{0};
  pool.parallel_for(n, 1, [&](int64_t b, int64_t e, int t) {
    if (t == 1 && slow_calls++ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
  });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  // Mixed with ordinary jobs, back to back.
  for (int rep = 0; rep < 200; ++rep) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000, 16, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    ASSERT_EQ(sum.load(), 999 * 1000 / 2);
  }
}

}  // namespace
}  // namespace lowbit
