// gtest main for the dist tests: one MPI communicator for the whole binary (MPI can be
// initialised once per process), run under mpirun -n 1/2/4 by CTest. A rank whose tests fail
// exits non-zero, so mpirun does too; the ranks agree on the verdict before exiting so none
// leaves while the others still wait in a collective.
#include <gtest/gtest.h>

#include <cstdio>

#include "dist/communicator.h"
#include "dist/dist_test_util.h"

namespace lowbit::dist {

namespace {
Communicator* g_comm = nullptr;
}

Communicator& test_comm() { return *g_comm; }

}  // namespace lowbit::dist

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = lowbit::dist::make_mpi_communicator();
  lowbit::dist::g_comm = comm.get();
  // Only rank 0 prints progress; every rank prints its failures (gtest's failure lines).
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int local = RUN_ALL_TESTS();
  double failed = local != 0 ? 1.0 : 0.0;
  comm->all_reduce_max(&failed, 1);
  if (failed != 0.0 && local == 0 && comm->rank() != 0) std::fprintf(stderr, "rank %d: another rank failed\n", comm->rank());
  comm.reset();
  return failed != 0.0 ? 1 : 0;
}
