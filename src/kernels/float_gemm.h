// Float GEMM with weights as the checkpoint stores them: y[m, n] = Σ_k x[m, k] · W[n, k].
// x and y are fp32; W is [N, K] row-major in BF16, F16 or F32, read in place (the FLOAT
// scheme keeps Hugging Face's layout, which is already the K-contiguous layout this kernel
// streams, so nothing is repacked or copied). Each call computes output columns
// [n_begin, n_end) for all m rows; the caller splits N across threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"

namespace lowbit {

struct FloatGemmArgs {
  const float* x;
  int64_t ldx;      // elements between rows of x
  const void* w;    // [N, K] row-major, dtype wtype, possibly unaligned
  int64_t ldw;      // elements between rows of W
  float* y;
  int64_t ldy;
  int64_t m, k;
  int64_t n_begin, n_end;
};

using FloatGemmFn = void (*)(const FloatGemmArgs&);

struct FloatGemmKernel {
  const char* name;  // e.g. "gemm_bf16_f32_avx512"
  Isa isa;
  DType wtype;
  FloatGemmFn run;
};

// The fastest kernel for this weight type that the CPU (capped by LOWBIT_MAX_ISA) runs.
// Throws Error for an unsupported weight type.
const FloatGemmKernel& pick_float_gemm(DType wtype, const CpuFeatures& cpu);
// Every kernel for wtype up to cpu's ISA, reference last: tests compare each with the reference.
std::vector<const FloatGemmKernel*> float_gemm_kernels(DType wtype, const CpuFeatures& cpu);

// Per-ISA entry points (defined in kernels/reference and kernels/cpu).
void gemm_bf16_f32_ref(const FloatGemmArgs&);
void gemm_f16_f32_ref(const FloatGemmArgs&);
void gemm_f32_f32_ref(const FloatGemmArgs&);
void gemm_bf16_f32_avx2(const FloatGemmArgs&);
void gemm_f16_f32_avx2(const FloatGemmArgs&);
void gemm_f32_f32_avx2(const FloatGemmArgs&);
void gemm_bf16_f32_avx512(const FloatGemmArgs&);
void gemm_f16_f32_avx512(const FloatGemmArgs&);
void gemm_f32_f32_avx512(const FloatGemmArgs&);

}  // namespace lowbit
