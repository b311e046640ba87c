// A fixed pool of worker threads, created once per process and reused for every op.
// parallel_for splits [0, n) into one contiguous range per thread; the calling thread
// takes the first range, so a pool of size 1 runs inline with no synchronisation.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace lowbit {

class ThreadPool {
 public:
  // num_threads <= 0 means "all hardware threads".
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return num_threads_; }

  // fn(begin, end, thread_index) over a partition of [0, n). Ranges are multiples of
  // `grain` (except the last) so SIMD tiles are not split across threads.
  template <class Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    if (n <= 0) return;
    run(n, grain, &invoke<Fn>, &fn);
  }

 private:
  using Trampoline = void (*)(void* ctx, int64_t begin, int64_t end, int thread);
  template <class Fn>
  static void invoke(void* ctx, int64_t b, int64_t e, int t) {
    (*static_cast<Fn*>(ctx))(b, e, t);
  }
  void run(int64_t n, int64_t grain, Trampoline fn, void* ctx);
  void worker_loop(int index);
  void range_for(int thread, int64_t& begin, int64_t& end) const;

  int num_threads_;
  std::vector<std::thread> workers_;
  // Current job, published by bumping generation_.
  Trampoline job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace lowbit
