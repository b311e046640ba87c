// Small fp32 vector primitives used by attention (the other hot loop after GEMM).
// Chosen once per process by CPU feature; the reference versions are the oracle.
#pragma once

#include <cstdint>

namespace lowbit {

struct VecOps {
  const char* isa;
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a·x
  void (*scale)(float a, float* y, int64_t n);                 // y *= a
};

const VecOps& vec_ops();  // best for this CPU (honours LOWBIT_MAX_ISA)

extern const VecOps kVecOpsRef;
extern const VecOps kVecOpsAvx2;
extern const VecOps kVecOpsAvx512;

}  // namespace lowbit
