#include "tools/tp_launch.h"

#include <unistd.h>

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

[[noreturn]] void relaunch(int ranks) {
  std::vector<std::string> args = {"mpirun", "-n", std::to_string(ranks), "--oversubscribe", "--bind-to", "none",
                                   // One host: shared memory (and self); the whole job ends when one rank fails.
                                   "--mca", "btl", "self,vader"};
  if (geteuid() == 0) args.push_back("--allow-run-as-root");
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
  std::fflush(stdout);
  std::fflush(stderr);
  execvp("mpirun", argv.data());
  fail("--tp-size {}: cannot start mpirun ({}); install openmpi-bin, or launch with mpirun -n {} yourself", ranks,
       std::strerror(errno), ranks);
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
  if (!dist::launched_by_mpi()) relaunch(o.tp_size);
  auto comm = std::shared_ptr<dist::Communicator>(dist::make_mpi_communicator());
  if (comm->size() != o.tp_size)
    fail("--tp-size {}: the MPI job has {} ranks (mpirun -n must equal --tp-size)", o.tp_size, comm->size());
  if (threads == 0)
    threads = std::max(1, int(std::thread::hardware_concurrency()) / local_ranks());
  TpGroup group(comm, compression);
  // An error on any rank ends the whole job (MPI_Abort) with its message: the other ranks may be
  // inside a collective that would never complete, and MPI_Finalize would wait for them.
  try {
    if (!group.leader()) {
      ThreadPool pool(threads);
      group.run_follower(pool);
      return 0;
    }
    const int rc = body(&group);
    group.stop();
    return rc;
  } catch (const std::exception& e) {
    group.abandon();
    comm->abort(fmt::format("rank {}: {}", comm->rank(), e.what()));
  }
}

}  // namespace lowbit
