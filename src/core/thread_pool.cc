#include "core/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace lowbit {

namespace {
// Workers spin this long after a job before sleeping: decode issues hundreds of small ops
// per token, and a futex wake for each would cost more than the ops themselves.
constexpr auto kSpin = std::chrono::microseconds(100);
// Pause iterations (~10-40 ns each) the caller spins on unfinished chunks before sleeping.
constexpr int kWaitSpins = 4000;
// Chunks per thread: enough for others to take over a descheduled thread's share, few enough
// that each chunk still streams a long contiguous run of memory.
constexpr int64_t kChunksPerThread = 4;
constexpr uint64_t kMaxChunks = 0xFFFF;

constexpr uint64_t make_ticket(uint32_t gen, uint64_t chunks, uint64_t next) {
  return (uint64_t(gen) << 32) | (chunks << 16) | next;
}
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

void ThreadPool::work_on(uint32_t gen, int thread) {
  uint64_t t = ticket_.load(std::memory_order_acquire);
  if (job_per_thread_ && uint32_t(t >> 32) == gen) {
    // Chunk `thread` is this thread's alone; the job stays open until every thread ran its own.
    job_fn_(job_ctx_, thread, thread + 1, thread);
    if (chunks_done_.fetch_add(1, std::memory_order_acq_rel) + 1 == num_threads_) chunks_done_.notify_one();
    return;
  }
  for (;;) {
    const uint64_t chunks = (t >> 16) & 0xFFFF, next = t & 0xFFFF;
    if (uint32_t(t >> 32) != gen || next >= chunks) return;
    if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // Chunk `next` of this job is ours; the job's fields are stable until it is counted done.
    const int64_t b0 = job_blocks_ * int64_t(next) / int64_t(chunks);
    const int64_t b1 = job_blocks_ * int64_t(next + 1) / int64_t(chunks);
    const int64_t begin = std::min(job_n_, b0 * job_grain_), end = std::min(job_n_, b1 * job_grain_);
    if (begin < end) job_fn_(job_ctx_, begin, end, thread);
    if (chunks_done_.fetch_add(1, std::memory_order_acq_rel) + 1 == int64_t(chunks)) chunks_done_.notify_one();
    t = ticket_.load(std::memory_order_acquire);
  }
}

void ThreadPool::run(int64_t n, int64_t grain, Trampoline fn, void* ctx, bool one_chunk_per_thread) {
  grain = std::max<int64_t>(1, grain);
  const int64_t blocks = (n + grain - 1) / grain;
  // One block of work (e.g. a per-token op during decode): no point waking anyone.
  if (num_threads_ == 1 || blocks <= 1) {
    fn(ctx, 0, n, 0);
    return;
  }
  const int64_t chunks = one_chunk_per_thread
                             ? int64_t(num_threads_)
                             : std::min<int64_t>({blocks, int64_t(num_threads_) * kChunksPerThread, int64_t(kMaxChunks)});
  job_per_thread_ = one_chunk_per_thread;
  job_fn_ = fn;
  job_ctx_ = ctx;
  job_n_ = n;
  job_grain_ = grain;
  job_blocks_ = blocks;
  chunks_done_.store(0, std::memory_order_relaxed);
  const uint32_t gen = uint32_t(ticket_.load(std::memory_order_relaxed) >> 32) + 1;
  ticket_.store(make_ticket(gen, uint64_t(chunks), 0), std::memory_order_release);
  generation_.store(gen, std::memory_order_release);
  generation_.notify_all();
  work_on(gen, 0);
  // Every chunk is claimed; wait for the ones others are still running. Spin briefly, then
  // sleep on the counter: a spinning waiter would burn the time slice a descheduled worker
  // needs on an oversubscribed machine.
  int spins = 0;
  for (int64_t d; (d = chunks_done_.load(std::memory_order_acquire)) != chunks;) {
    if (++spins < kWaitSpins) {
      _mm_pause();
    } else {
      chunks_done_.wait(d, std::memory_order_acquire);
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
    work_on(g, index);
  }
}

}  // namespace lowbit
