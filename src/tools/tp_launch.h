// --tp-size N for the model-running commands: N MPI ranks of this same command line. Run
// without mpirun, the command starts its own ranks on this host (mpirun -n N over shared
// memory, this binary, these arguments); under mpirun (e.g. `mpirun -n 2 --hostfile H lowbit
// serve ...`) it checks that the job has N ranks. Rank 0 runs the command; the others mirror
// its model calls (models/tp_group.h) and print nothing.
#pragma once

#include <functional>
#include <string>

#include "models/tp_group.h"

namespace CLI {
class App;
}

namespace lowbit {

struct TpCliOptions {
  int tp_size = 1;
  std::string quantize_tp_communications = "off";
};
void add_tp_options(CLI::App& app, TpCliOptions& o);

// Runs body(group) on rank 0 (group null for tp-size 1) and returns its exit code; followers
// return 0 when rank 0 is done. `threads` (0 = this host's hardware threads divided among the
// ranks on it) is set to the per-rank thread count before body runs. Does not return when it
// relaunches the command under mpirun (the process image is replaced).
int run_tensor_parallel(const TpCliOptions& o, int& threads, const std::function<int(TpGroup*)>& body);

}  // namespace lowbit
