// Process groups for tensor parallelism: the few collectives the engine needs, behind an
// interface so one-process runs (tp-size 1, most tests) need no MPI. The MPI implementation
// puts a deadline on every collective: a peer that died or hangs makes the job end non-zero
// (message naming the collective and the rank) instead of a silent hang. One thread at a time
// calls the communicator (MPI_THREAD_SERIALIZED): the serving engine's scheduler thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/error.h"

namespace lowbit::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi" or "single".
  virtual const char* backend() const = 0;

  // data[0, n) ← Σ over ranks, in place. MPI's reduction order is the library's: bit-identical
  // on every rank of one job, but not necessarily equal to a rank-ordered scalar sum.
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  // Element-wise max (for measurements: slowest rank's time).
  virtual void all_reduce_max(double* data, int64_t n) = 0;
  // recv[r·bytes, (r+1)·bytes) ← rank r's send[0, bytes).
  virtual void all_gather(const void* send, int64_t bytes, void* recv) = 0;
  // recv[displs[r], displs[r] + counts[r]) ← rank r's send[0, counts[r]); counts and displs in
  // bytes, one per rank, identical on every rank; send holds counts[rank()] bytes.
  virtual void all_gather_v(const void* send, void* recv, std::span<const int64_t> counts,
                            std::span<const int64_t> displs) = 0;
  // Personalised exchange: rank r sends send[send_displs[d], +send_counts[d]) to rank d and
  // receives from rank s into recv[recv_displs[s], +recv_counts[s]). All in bytes.
  virtual void all_to_all_v(const void* send, std::span<const int64_t> send_counts,
                            std::span<const int64_t> send_displs, void* recv,
                            std::span<const int64_t> recv_counts, std::span<const int64_t> recv_displs) = 0;
  // data[0, bytes) ← root's data[0, bytes).
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // How long a collective may take before the job is aborted (default 10 s). Raise it around
  // phases where ranks legitimately drift apart (model load). ≤ 0: no watchdog, MPI's
  // blocking collectives (a dead peer may then hang the job; for benchmarks and debugging).
  virtual void set_timeout(std::chrono::milliseconds timeout) = 0;
  virtual std::chrono::milliseconds timeout() const = 0;
  // Ends every rank of the job with `message` (MPI_Abort); for errors one rank cannot recover
  // from without the others (they would wait forever in the next collective).
  [[noreturn]] virtual void abort(const std::string& message) = 0;
  // A recoverable communicator (MpiOptions::recoverable) whose collective failed or timed out:
  // every later call throws CommFailure at once.
  virtual bool failed() const { return false; }
};

// A collective of a recoverable communicator that failed or missed its deadline. The peers are
// gone or stuck, so the job is over; the caller still gets control to answer its clients.
class CommFailure : public Error {
 public:
  using Error::Error;
};

struct MpiOptions {
  // 0 = LOWBIT_DIST_TIMEOUT_MS from the environment if set (0 or negative there: no
  // watchdog), else 10 000 ms; negative = no watchdog.
  int64_t timeout_ms = 0;
  // How the deadline is kept. "blocking": MPI's blocking collectives, a watchdog thread ends
  // the process (_Exit(1), mpirun ends the rest) past the deadline. "polled": non-blocking
  // collectives tested in a loop, MPI_Abort past the deadline; OpenMPI's non-blocking
  // all-reduce is much slower (2.5× on shared memory). Empty: LOWBIT_DIST_COLLECTIVES, else
  // blocking.
  std::string collectives;
  // Failures (an MPI error, a missed deadline) throw CommFailure instead of ending the job, so
  // a server can answer in-flight requests with an error before it exits. Implies "polled" (a
  // blocking collective cannot be interrupted), which costs ~4 % of decode speed on two ranks
  // over shared memory (SmolLM2-135M, 92 vs 95 tokens/s).
  bool recoverable = false;
};

// Initialises MPI (MPI_Init_thread, SERIALIZED) unless the caller already did, on a duplicate of
// MPI_COMM_WORLD; MPI is finalised when the last MPI communicator this process created is
// destroyed, if this code initialised it. Throws Error when MPI gives less than SERIALIZED.
std::unique_ptr<Communicator> make_mpi_communicator(const MpiOptions& options = {});
// rank 0 of 1: every collective is a copy or nothing.
std::unique_ptr<Communicator> make_single_rank_communicator();
// True when this process was started by mpirun/mpiexec (OMPI_/PMI_/PMIX_ environment).
bool launched_by_mpi();

}  // namespace lowbit::dist
