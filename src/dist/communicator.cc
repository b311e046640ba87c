// Communicator implementations: one rank (copies) and MPI with a deadline on every collective.
// A blocking MPI_Allreduce whose peer hangs never returns and MPI has no timeout of its own, so
// either a watchdog thread watches the clock (default) or the non-blocking form is polled
// with MPI_Test (see MpiCommunicator::run for why the default is the former).
#include "dist/communicator.h"

// The C API only: OpenMPI and MPICH otherwise pull in their deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <sched.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"

namespace lowbit::dist {

namespace {

using Clock = std::chrono::steady_clock;

class SingleRankCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* backend() const override { return "single"; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_reduce_max(double*, int64_t) override {}
  void all_gather(const void* send, int64_t bytes, void* recv) override { copy(recv, send, bytes); }
  void all_gather_v(const void* send, void* recv, std::span<const int64_t> counts,
                    std::span<const int64_t> displs) override {
    LOWBIT_CHECK(counts.size() == 1 && displs.size() == 1, "all_gather_v: one count per rank");
    copy(static_cast<char*>(recv) + displs[0], send, counts[0]);
  }
  void all_to_all_v(const void* send, std::span<const int64_t> send_counts, std::span<const int64_t> send_displs,
                    void* recv, std::span<const int64_t> recv_counts, std::span<const int64_t> recv_displs) override {
    LOWBIT_CHECK(send_counts.size() == 1 && recv_counts.size() == 1 && send_counts[0] == recv_counts[0],
                 "all_to_all_v: one rank sends to itself");
    copy(static_cast<char*>(recv) + recv_displs[0], static_cast<const char*>(send) + send_displs[0], send_counts[0]);
  }
  void broadcast(void*, int64_t, int root) override {
    if (root != 0) fail("broadcast: root {} out of range for 1 rank", root);
  }
  void barrier() override {}
  void set_timeout(std::chrono::milliseconds t) override { timeout_ = t; }
  std::chrono::milliseconds timeout() const override { return timeout_; }
  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "lowbit dist: rank 0 of 1: %s\n", message.c_str());
    std::exit(1);
  }

 private:
  static void copy(void* dst, const void* src, int64_t bytes) {
    if (bytes > 0 && dst != src) std::memmove(dst, src, size_t(bytes));
  }
  std::chrono::milliseconds timeout_{10000};
};

// MPI's counts are int: larger messages are refused with the collective's name.
int mpi_count(int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX) fail("{}: {} elements do not fit an MPI count (max {})", what, n, INT_MAX);
  return int(n);
}

std::vector<int> mpi_counts(std::span<const int64_t> v, int size, const char* what) {
  if (int(v.size()) != size) fail("{}: {} counts for {} ranks", what, v.size(), size);
  std::vector<int> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = mpi_count(v[i], what);
  return out;
}

// Deadline for the blocking collective in progress, watched from a second thread. The caller
// marks entry and exit (a clock read and two atomic stores); past the deadline the watchdog
// prints which collective hung and ends this process with _Exit(1): mpirun then ends every
// rank of the job. It makes no MPI call (collectives are the engine thread's alone).
class Watchdog {
 public:
  Watchdog(int rank, int size) : rank_(rank), size_(size), thread_([this] { loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void enter(const char* what, int64_t bytes, std::chrono::milliseconds timeout) {
    what_.store(what, std::memory_order_relaxed);
    bytes_.store(bytes, std::memory_order_relaxed);
    timeout_ms_.store(timeout.count(), std::memory_order_relaxed);
    deadline_.store((Clock::now() + timeout).time_since_epoch().count(), std::memory_order_release);
  }
  void leave() { deadline_.store(0, std::memory_order_release); }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100));  // the bound is timeout + 0.1 s
      const int64_t deadline = deadline_.load(std::memory_order_acquire);
      if (stop_ || deadline == 0 || Clock::now().time_since_epoch().count() < deadline) continue;
      std::fprintf(stderr,
                   "lowbit dist: rank %d of %d: %s of %lld bytes did not complete within %lld ms: a peer rank "
                   "died or hangs; ending this rank so that mpirun ends the job\n",
                   rank_, size_, what_.load(), (long long)bytes_.load(), (long long)timeout_ms_.load());
      std::fflush(stderr);
      std::_Exit(1);
    }
  }

  const int rank_, size_;
  std::atomic<int64_t> deadline_{0};  // steady_clock ticks; 0 = no collective in progress
  std::atomic<const char*> what_{""};
  std::atomic<int64_t> bytes_{0}, timeout_ms_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the fields it reads
};

int g_live_communicators = 0;  // MPI communicators alive in this process
bool g_we_initialised = false;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(std::chrono::milliseconds timeout, bool polled, bool recoverable)
      : timeout_(timeout), polled_(polled || recoverable), recoverable_(recoverable) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      int provided = 0;
      // SERIALIZED: the serving engine calls collectives from its scheduler thread, not the
      // thread that initialised MPI; calls never overlap (one engine thread per process).
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
      g_we_initialised = true;
      if (provided < MPI_THREAD_SERIALIZED)
        fail("MPI gives thread level {}, lowbit needs MPI_THREAD_SERIALIZED", provided);
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    if (!polled_) watchdog_ = std::make_unique<Watchdog>(rank_, size_);
    ++g_live_communicators;
  }
  ~MpiCommunicator() override {
    watchdog_.reset();
    MPI_Comm_free(&comm_);
    if (--g_live_communicators == 0 && g_we_initialised) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }

  void all_reduce_sum(float* data, int64_t n) override {
    const int c = mpi_count(n, "all_reduce_sum");
    run("all_reduce_sum (MPI_Allreduce)", n * 4,
        [&] { return MPI_Allreduce(MPI_IN_PLACE, data, c, MPI_FLOAT, MPI_SUM, comm_); },
        [&](MPI_Request* r) { return MPI_Iallreduce(MPI_IN_PLACE, data, c, MPI_FLOAT, MPI_SUM, comm_, r); });
  }
  void all_reduce_max(double* data, int64_t n) override {
    const int c = mpi_count(n, "all_reduce_max");
    run("all_reduce_max (MPI_Allreduce)", n * 8,
        [&] { return MPI_Allreduce(MPI_IN_PLACE, data, c, MPI_DOUBLE, MPI_MAX, comm_); },
        [&](MPI_Request* r) { return MPI_Iallreduce(MPI_IN_PLACE, data, c, MPI_DOUBLE, MPI_MAX, comm_, r); });
  }
  void all_gather(const void* send, int64_t bytes, void* recv) override {
    const int c = mpi_count(bytes, "all_gather");
    run("all_gather (MPI_Allgather)", bytes,
        [&] { return MPI_Allgather(send, c, MPI_BYTE, recv, c, MPI_BYTE, comm_); },
        [&](MPI_Request* r) { return MPI_Iallgather(send, c, MPI_BYTE, recv, c, MPI_BYTE, comm_, r); });
  }
  void all_gather_v(const void* send, void* recv, std::span<const int64_t> counts,
                    std::span<const int64_t> displs) override {
    const auto c = mpi_counts(counts, size_, "all_gather_v"), d = mpi_counts(displs, size_, "all_gather_v");
    run("all_gather_v (MPI_Allgatherv)", counts[size_t(rank_)],
        [&] { return MPI_Allgatherv(send, c[size_t(rank_)], MPI_BYTE, recv, c.data(), d.data(), MPI_BYTE, comm_); },
        [&](MPI_Request* r) {
          return MPI_Iallgatherv(send, c[size_t(rank_)], MPI_BYTE, recv, c.data(), d.data(), MPI_BYTE, comm_, r);
        });
  }
  void all_to_all_v(const void* send, std::span<const int64_t> send_counts, std::span<const int64_t> send_displs,
                    void* recv, std::span<const int64_t> recv_counts, std::span<const int64_t> recv_displs) override {
    constexpr const char* what = "all_to_all_v";
    const auto sc = mpi_counts(send_counts, size_, what), sd = mpi_counts(send_displs, size_, what);
    const auto rc = mpi_counts(recv_counts, size_, what), rd = mpi_counts(recv_displs, size_, what);
    int64_t bytes = 0;
    for (int64_t c : send_counts) bytes += c;
    run("all_to_all_v (MPI_Alltoallv)", bytes,
        [&] { return MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, comm_); },
        [&](MPI_Request* r) {
          return MPI_Ialltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, comm_, r);
        });
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    if (root < 0 || root >= size_) fail("broadcast: root {} out of range for {} ranks", root, size_);
    const int c = mpi_count(bytes, "broadcast");
    run("broadcast (MPI_Bcast)", bytes, [&] { return MPI_Bcast(data, c, MPI_BYTE, root, comm_); },
        [&](MPI_Request* r) { return MPI_Ibcast(data, c, MPI_BYTE, root, comm_, r); });
  }
  void barrier() override {
    run("barrier (MPI_Barrier)", 0, [&] { return MPI_Barrier(comm_); },
        [&](MPI_Request* r) { return MPI_Ibarrier(comm_, r); });
  }

  void set_timeout(std::chrono::milliseconds t) override { timeout_ = t; }
  std::chrono::milliseconds timeout() const override { return timeout_; }
  bool failed() const override { return failed_; }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "lowbit dist: rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);  // MPI_Abort does not return; this is for a broken MPI
  }

 private:
  // Blocking collectives (MPI's tuned algorithms) under the watchdog thread, or, when polled,
  // the non-blocking form tested in a loop against the deadline (wait): no second thread, but
  // OpenMPI's non-blocking all-reduce (libnbc) measured 2.5× slower than the blocking one on
  // shared memory. Without a deadline (timeout ≤ 0): blocking, unwatched.
  template <class Blocking, class Start>
  void run(const char* what, int64_t bytes, Blocking blocking, Start start) {
    if (failed_) throw CommFailure(fmt::format("{}: an earlier collective of this job failed", what));
    if (timeout_.count() <= 0) {
      check(blocking(), what, bytes);
    } else if (polled_) {
      MPI_Request req;
      check(start(&req), what, bytes);
      wait(req, what, bytes);
    } else {
      watchdog_->enter(what, bytes, timeout_);
      const int rc = blocking();
      watchdog_->leave();
      check(rc, what, bytes);
    }
  }

  void check(int rc, const char* what, int64_t bytes) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    // A failed collective leaves the peers waiting in it: only the whole job can stop.
    fail_collective(fmt::format("{} of {} bytes failed: {}", what, bytes, std::string(text, size_t(len))));
  }

  [[noreturn]] void fail_collective(const std::string& message) {
    if (!recoverable_) abort(message);
    failed_ = true;
    throw CommFailure(fmt::format("rank {} of {}: {}", rank_, size_, message));
  }

  // Polls `req` until done. Spins first (the common, fast case), then yields the core (ranks
  // may share cores: mpirun --oversubscribe), then sleeps 1 ms per poll once the wait is long
  // enough that a peer is evidently slow. Past the deadline the job is aborted.
  void wait(MPI_Request& req, const char* what, int64_t bytes) {
    const auto start = Clock::now();
    for (int64_t polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), what, bytes);
      if (done) return;
      if (polls < 256) continue;
      const auto waited = Clock::now() - start;
      if (timeout_.count() > 0 && waited > timeout_)
        fail_collective(fmt::format("{} of {} bytes did not complete within {} ms: a peer rank died or hangs",
                                    what, bytes, timeout_.count()));
      if (waited > std::chrono::milliseconds(50))
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      else
        sched_yield();
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::chrono::milliseconds timeout_;
  const bool polled_, recoverable_;
  bool failed_ = false;
  std::unique_ptr<Watchdog> watchdog_;  // blocking mode only
};

std::chrono::milliseconds default_timeout(int64_t option_ms) {
  if (option_ms > 0) return std::chrono::milliseconds(option_ms);
  if (option_ms < 0) return std::chrono::milliseconds(0);  // no watchdog, blocking collectives
  if (const char* env = std::getenv("LOWBIT_DIST_TIMEOUT_MS"); env && *env) {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (*end != '\0') fail("LOWBIT_DIST_TIMEOUT_MS={:?} is not an integer number of milliseconds", env);
    return std::chrono::milliseconds(v);
  }
  return std::chrono::milliseconds(10000);
}

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const MpiOptions& options) {
  std::string mode = options.collectives;
  if (mode.empty()) {
    const char* env = std::getenv("LOWBIT_DIST_COLLECTIVES");
    mode = env && *env ? env : "blocking";
  }
  if (mode != "blocking" && mode != "polled")
    fail("dist collectives {:?} (MpiOptions or LOWBIT_DIST_COLLECTIVES): expected blocking or polled", mode);
  return std::make_unique<MpiCommunicator>(default_timeout(options.timeout_ms), mode == "polled", options.recoverable);
}

std::unique_ptr<Communicator> make_single_rank_communicator() { return std::make_unique<SingleRankCommunicator>(); }

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace lowbit::dist
