// Float GEMM with weights as the checkpoint stores them: y[m, n] = Σ_k x[m, k] · W[n, k].
// x and y are fp32; W is [N, K] row-major in BF16, F16 or F32, read in place (the FLOAT
// scheme keeps Hugging Face's layout, which is already the K-contiguous layout this kernel
// streams, so nothing is repacked or copied). Each call computes output columns
// [n_begin, n_end) for all m rows; the caller splits N across threads.
//
// Two activation types (FloatAct): F32 kernels multiply the fp32 activations by the widened
// weights (the exact path: only the fp32 summation rounds). BF16 kernels first round each activation to
// BF16 (round-to-nearest-even, as torch's .to(bfloat16)), once per call into thread_local
// grow-only scratch, then form BF16×BF16 products with fp32 accumulation (AMX-BF16 tiles or
// vdpbf16ps; what transformers in BF16, llama.cpp and SGLang compute). Both take fp32 x.
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

enum class FloatAct { F32, BF16 };
inline const char* float_act_name(FloatAct a) { return a == FloatAct::BF16 ? "bf16" : "f32"; }

struct FloatGemmKernel {
  const char* name;  // "gemm_<weights>_<activations>_<isa>", e.g. "gemm_bf16_f32_avx512"
  Isa isa;
  DType wtype;
  FloatGemmFn run;
  FloatAct act = FloatAct::F32;
  bool (*usable)(const CpuFeatures&) = nullptr;  // extra feature test beyond max_isa() >= isa
};

// The fastest kernel for this weight and activation type that the CPU (capped by
// LOWBIT_MAX_ISA) runs. Throws Error for an unsupported combination (BF16 activations exist
// for BF16 weights only).
const FloatGemmKernel& pick_float_gemm(DType wtype, FloatAct act, const CpuFeatures& cpu);
// Every kernel for (wtype, act) the CPU runs, reference last: tests compare each with it.
std::vector<const FloatGemmKernel*> float_gemm_kernels(DType wtype, FloatAct act, const CpuFeatures& cpu);
// The fp32-activation ones (the exact path).
inline const FloatGemmKernel& pick_float_gemm(DType wtype, const CpuFeatures& cpu) {
  return pick_float_gemm(wtype, FloatAct::F32, cpu);
}
inline std::vector<const FloatGemmKernel*> float_gemm_kernels(DType wtype, const CpuFeatures& cpu) {
  return float_gemm_kernels(wtype, FloatAct::F32, cpu);
}

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
// BF16 weights × BF16-rounded activations.
void gemm_bf16_bf16_ref(const FloatGemmArgs&);        // scalar, fp32 accumulation in k order
void gemm_bf16_bf16_avx2(const FloatGemmArgs&);       // rounds x, then the f32-activation kernel
void gemm_bf16_bf16_avx512(const FloatGemmArgs&);     // same, AVX-512 without BF16
void gemm_bf16_bf16_avx512bf16(const FloatGemmArgs&); // vdpbf16ps GEMV (decode) and GEMM
void gemm_bf16_bf16_amx(const FloatGemmArgs&);        // AMX-BF16 tiles; small m goes to vdpbf16ps

}  // namespace lowbit
