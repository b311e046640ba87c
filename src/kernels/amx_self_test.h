// A start-up check of the AMX kernels on the CPU at hand. The AMX paths are tested in CI
// against a scalar tile model, but development VMs may hide AMX (ours did), so the first time
// an AMX kernel set is considered, each AMX kernel runs a small problem and is compared with
// its AVX-512 counterpart; on a mismatch the AMX sets are not used (and `lowbit --version` /
// `lowbit bench` say why) instead of serving wrong numbers.
#pragma once

#include <string>

namespace lowbit {

struct AmxSelfTest {
  bool ran = false;     // false when the CPU (or LOWBIT_MAX_ISA) has no AMX
  bool passed = false;
  std::string detail;   // what was compared, or what differed
};

// Runs once per process (thread-safe), only when cpu_features().max_isa() >= Isa::Amx.
const AmxSelfTest& amx_self_test();
// True when AMX kernels may be used: AMX present and the self-test passed.
bool amx_verified();

}  // namespace lowbit
