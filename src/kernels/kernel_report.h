// One text that says which kernels this process runs and why faster ones are off: the CPU's
// features and LOWBIT_MAX_ISA cap, the AMX self-test, and the kernel each op picked. Printed
// by `lowbit --version` and in the `lowbit bench` header, since it decides every figure.
#pragma once

#include <string>

namespace lowbit {

std::string kernel_report();

}  // namespace lowbit
