#include "core/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace lowbit {

namespace {
// Workers spin this long after a job before sleeping: decode issues hundreds of small ops
// per token, and a futex wake for each would cost more than the ops themselves.
constexpr auto kSpin = std::chrono::microseconds(100);
// Pause iterations (~10-40 ns each) the caller spins before sleeping on unfinished workers.
constexpr int kWaitSpins = 4000;
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::range_for(int thread, int64_t& begin, int64_t& end) const {
  const int64_t blocks = (job_n_ + job_grain_ - 1) / job_grain_;
  const int64_t b0 = blocks * thread / num_threads_, b1 = blocks * (thread + 1) / num_threads_;
  begin = std::min(job_n_, b0 * job_grain_);
  end = std::min(job_n_, b1 * job_grain_);
}

void ThreadPool::run(int64_t n, int64_t grain, Trampoline fn, void* ctx) {
  job_n_ = n;
  job_grain_ = std::max<int64_t>(1, grain);
  // One block of work (e.g. a per-token op during decode): no point waking anyone.
  if (num_threads_ == 1 || n <= job_grain_) {
    fn(ctx, 0, n, 0);
    return;
  }
  job_fn_ = fn;
  job_ctx_ = ctx;
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  int64_t b, e;
  range_for(0, b, e);
  if (b < e) fn(ctx, b, e, 0);
  // Spin briefly (workers usually finish within microseconds of us), then sleep on the
  // counter: on an oversubscribed machine a spinning waiter would burn the time slice the
  // descheduled worker needs.
  int spins = 0;
  for (int p; (p = pending_.load(std::memory_order_acquire)) != 0;) {
    if (++spins < kWaitSpins) {
      _mm_pause();
    } else {
      pending_.wait(p, std::memory_order_acquire);
    }
  }
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;
  for (;;) {
    auto spin_until = std::chrono::steady_clock::now() + kSpin;
    uint32_t g;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (std::chrono::steady_clock::now() > spin_until) {
        generation_.wait(seen, std::memory_order_acquire);
      } else {
        for (int i = 0; i < 64; ++i) _mm_pause();
      }
    }
    seen = g;
    if (stop_.load()) return;
    int64_t b, e;
    range_for(index, b, e);
    if (b < e) job_fn_(job_ctx_, b, e, index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

}  // namespace lowbit
