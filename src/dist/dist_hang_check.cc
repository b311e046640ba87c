// Failure drill for the watchdog (run by expect_abort.sh under mpirun): rank 1 either exits
// without a word ("exit") or sleeps for a minute ("sleep") while the other ranks enter an
// all-reduce. The job must end non-zero well within the bound instead of hanging.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "dist/communicator.h"

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (std::strcmp(mode, "exit") != 0 && std::strcmp(mode, "sleep") != 0) {
    std::fprintf(stderr, "usage: dist_hang_check exit|sleep\n");
    return 2;
  }
  auto comm = lowbit::dist::make_mpi_communicator();
  std::vector<float> x(1 << 16, 1.0f);
  comm->all_reduce_sum(x.data(), int64_t(x.size()));  // one healthy collective first
  if (comm->rank() == 1) {
    if (std::strcmp(mode, "exit") == 0) _exit(3);
    std::this_thread::sleep_for(std::chrono::seconds(60));
  }
  comm->all_reduce_sum(x.data(), int64_t(x.size()));
  std::printf("rank %d: second all-reduce completed, which it must not\n", comm->rank());
  return 0;
}
