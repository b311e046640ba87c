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
  // serve: a rank that dies or hangs makes rank 0 answer its in-flight requests with an error
  // before the job ends (dist::MpiOptions::recoverable; mpirun started with --enable-recovery
  // so that it does not end rank 0 first). Other commands just end the job. Also: rank 0 sends
  // heartbeats while idle, so the other ranks notice a dead rank 0 within one deadline.
  bool recoverable = false;
};
void add_tp_options(CLI::App& app, TpCliOptions& o);

// Runs body(group) on rank 0 (group null for tp-size 1) and returns its exit code; followers
// return 0 when rank 0 is done. `threads` (0 = this host's hardware threads divided among the
// ranks on it) is set to the per-rank thread count before body runs. Not under mpirun, it
// starts mpirun with this command line and returns rank 0's exit status.
int run_tensor_parallel(const TpCliOptions& o, int& threads, const std::function<int(TpGroup*)>& body);

}  // namespace lowbit
