// A fixed pool of worker threads, created once per process and reused for every op.
//
// parallel_for splits [0, n) into chunks of whole grains (equal work when the grain is a
// fixed number of bytes, e.g. 16-column weight tiles) and every participant, the calling
// thread included, claims chunks from one atomic ticket until none are left. Static splits
// stall the whole op when one worker is descheduled (2-core VMs shared with other
// processes: measured 2.6× slower than one thread); with claimed chunks the others simply
// take its share. A pool of size 1, or a job of one grain, runs inline with no
// synchronisation.
//
// Scaling: the ticket is one cache line that each participant touches once per chunk
// (≈ 4 per thread per op), so contention stays small up to tens of cores; beyond one socket
// the pool should be split per NUMA node with weights first-touched by the node that reads
// them (not done here: the machines we measure on have one node).
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
  // `grain` (except the last) so SIMD tiles are not split across threads. thread_index is
  // unique among the calls running at once (< size()), for per-thread scratch.
  template <class Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    if (n <= 0) return;
    run(n, grain, &invoke<Fn>, &fn, false);
  }

  // fn(thread_index) exactly once on every thread of the pool, all at once (peak and
  // bandwidth probes, which need every core busy at the same time; not for ordinary work).
  template <class Fn>
  void on_each_thread(Fn&& fn) {
    auto each = [&](int64_t, int64_t, int t) { fn(t); };
    run(num_threads_, 1, &invoke<decltype(each)>, &each, true);
  }

 private:
  using Trampoline = void (*)(void* ctx, int64_t begin, int64_t end, int thread);
  template <class Fn>
  static void invoke(void* ctx, int64_t b, int64_t e, int t) {
    (*static_cast<Fn*>(ctx))(b, e, t);
  }
  void run(int64_t n, int64_t grain, Trampoline fn, void* ctx, bool one_chunk_per_thread);
  void worker_loop(int index);
  // Claims and runs chunks of job `generation` until none are left.
  void work_on(uint32_t generation, int thread);

  int num_threads_;
  std::vector<std::thread> workers_;
  // Current job; written by the caller before the job's ticket is published, stable until
  // every chunk is done.
  Trampoline job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1, job_blocks_ = 0;
  bool job_per_thread_ = false;  // on_each_thread: thread t runs chunk t, no claiming
  // Ticket: generation (32 bits) | chunk count (16) | next unclaimed chunk (16). Claims CAS
  // the whole word, so a claim can only succeed for the generation it read.
  std::atomic<uint64_t> ticket_{0};
  std::atomic<uint32_t> generation_{0};  // futex word workers sleep on
  std::atomic<int64_t> chunks_done_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace lowbit
