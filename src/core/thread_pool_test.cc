#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
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
          if (e < n) EXPECT_EQ((e - b) % 8, 0);
          for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
        });
      }
      for (auto& h : hits) ASSERT_EQ(h.load(), 50);
    }
  }
}

}  // namespace
}  // namespace lowbit
