#include "tools/tp_launch.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "dist/communicator.h"

namespace lowbit {

void add_tp_options(CLI::App& app, TpCliOptions& o) {
  app.add_option("--tp-size", o.tp_size,
                 "Tensor-parallel ranks (MPI processes); without mpirun, started on this host")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--quantize-tp-communications", o.quantize_tp_communications,
                 "INT8 per-token all-reduce on prefill/extend batches: on (= int8-allgather; the flag alone), "
                 "int8-rs-ag (reduce-scatter + all-gather), auto (measure the link, compress when predicted faster), "
                 "off (default)")
      ->expected(0, 1)
      ->default_str("on");  // CLI11 uses it for the flag given without a value; absent leaves "off"
}

namespace {
// This process's own argv, as the kernel has it (NUL-separated).
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] == '\0') {
      args.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  return args;
}

// The status rank 0 reports to the launching process (below): with --enable-recovery mpirun's
// own exit status says nothing about how the job ended.
constexpr const char* kStatusEnv = "LOWBIT_TP_STATUS_FILE";

void report_status(int rc) {
  if (const char* path = std::getenv(kStatusEnv)) {
    if (FILE* f = std::fopen(path, "w")) {
      std::fprintf(f, "%d\n", rc);
      std::fclose(f);
    }
  }
}

volatile sig_atomic_t g_mpirun_pid = 0;
// mpirun ends the whole job on SIGINT/SIGTERM but forwards SIGUSR1 to every rank: rank 0 takes
// it as the stop signal (a server drains its requests), the other ranks ignore it.
void forward_signal(int) {
  if (g_mpirun_pid > 0) ::kill(pid_t(g_mpirun_pid), SIGUSR1);
}

// Runs mpirun with this command line as N ranks and returns rank 0's exit status (mpirun's
// when rank 0 reported none). SIGINT/SIGTERM are passed on to mpirun, which passes them on to
// the ranks as SIGUSR1 (a server's graceful shutdown).
int launch_ranks(int ranks, bool recoverable) {
  std::vector<std::string> args = {"mpirun", "-n", std::to_string(ranks), "--oversubscribe", "--bind-to", "none",
                                   // One host: shared memory (and self).
                                   "--mca", "btl", "self,vader"};
  if (geteuid() == 0) args.push_back("--allow-run-as-root");
  if (recoverable) args.push_back("--enable-recovery");  // rank 0 outlives a dead rank, answers, then ends the job
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) fail("--tp-size {}: cannot find this program's path to start its ranks", ranks);
  exe[n] = '\0';
  std::vector<std::string> own = own_arguments();
  args.push_back(exe);
  args.insert(args.end(), own.begin() + (own.empty() ? 0 : 1), own.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char status_path[] = "/tmp/lowbit-tp-status-XXXXXX";
  const int fd = mkstemp(status_path);
  if (fd < 0) fail("--tp-size {}: cannot create a status file in /tmp ({})", ranks, std::strerror(errno));
  ::close(fd);
  ::setenv(kStatusEnv, status_path, 1);
  ::setenv("LOWBIT_TP_LAUNCHER", std::to_string(::getpid()).c_str(), 1);  // lets tests find the ranks
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) fail("--tp-size {}: fork failed ({})", ranks, std::strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // the launcher killed (SIGKILL): take the job down too
    execvp("mpirun", argv.data());
    std::fprintf(stderr, "error: --tp-size %d: cannot start mpirun (%s); install openmpi-bin, or launch with "
                 "mpirun -n %d yourself\n", ranks, std::strerror(errno), ranks);
    std::_Exit(127);
  }
  g_mpirun_pid = pid;
  std::signal(SIGINT, forward_signal);
  std::signal(SIGTERM, forward_signal);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int rc = -1;
  if (FILE* f = std::fopen(status_path, "r")) {
    if (std::fscanf(f, "%d", &rc) != 1) rc = -1;
    std::fclose(f);
  }
  std::remove(status_path);
  const int mpirun_rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (rc < 0) rc = mpirun_rc != 0 ? mpirun_rc : 1;  // rank 0 never reported: it did not end well
  return rc;
}

int local_ranks() {
  const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  return v ? std::max(1, std::atoi(v)) : 1;
}
}  // namespace

int run_tensor_parallel(const TpCliOptions& o, int& threads, const std::function<int(TpGroup*)>& body) {
  const TpCompression compression = parse_tp_compression(o.quantize_tp_communications);
  if (o.tp_size <= 1) {
    if (compression != TpCompression::Off)
      fail("--quantize-tp-communications needs --tp-size of at least 2 (there is no all-reduce to compress)");
    return body(nullptr);
  }
  if (!dist::launched_by_mpi()) return launch_ranks(o.tp_size, o.recoverable);
  dist::MpiOptions mpi;
  mpi.recoverable = o.recoverable;
  auto comm = std::shared_ptr<dist::Communicator>(dist::make_mpi_communicator(mpi));
  if (comm->size() != o.tp_size)
    fail("--tp-size {}: the MPI job has {} ranks (mpirun -n must equal --tp-size)", o.tp_size, comm->size());
  if (threads == 0)
    threads = std::max(1, int(std::thread::hardware_concurrency()) / local_ranks());
  TpGroup group(comm, compression, /*heartbeats=*/o.recoverable);
  // An error on any rank ends the whole job (MPI_Abort) with its message: the other ranks may be
  // inside a collective that would never complete, and MPI_Finalize would wait for them.
  try {
    if (!group.leader()) {
      ThreadPool pool(threads);
      group.run_follower(pool);
      return 0;
    }
    const int rc = body(&group);
    if (comm->failed()) {
      report_status(rc != 0 ? rc : 1);
      comm->abort("rank 0: a collective failed (see above); ending the job");
    }
    group.stop();
    report_status(rc);
    return rc;
  } catch (const std::exception& e) {
    group.abandon();
    if (group.leader()) report_status(1);
    comm->abort(fmt::format("rank {}: {}", comm->rank(), e.what()));
  }
}

}  // namespace lowbit
