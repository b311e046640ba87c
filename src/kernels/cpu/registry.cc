// Kernel choice by CPU feature: one table per op, fastest first, reference last. Chosen
// once per layer at load (or once per process for vec ops), never per call.
#include <vector>

#include "core/error.h"
#include "kernels/float_gemm.h"
#include "kernels/quant_gemm.h"
#include "kernels/vec_ops.h"

namespace lowbit {

namespace {
constexpr FloatGemmKernel kFloatGemm[] = {
    {"gemm_bf16_f32_avx512", Isa::Avx512, DType::BF16, gemm_bf16_f32_avx512},
    {"gemm_f16_f32_avx512", Isa::Avx512, DType::F16, gemm_f16_f32_avx512},
    {"gemm_f32_f32_avx512", Isa::Avx512, DType::F32, gemm_f32_f32_avx512},
    {"gemm_bf16_f32_avx2", Isa::Avx2, DType::BF16, gemm_bf16_f32_avx2},
    {"gemm_f16_f32_avx2", Isa::Avx2, DType::F16, gemm_f16_f32_avx2},
    {"gemm_f32_f32_avx2", Isa::Avx2, DType::F32, gemm_f32_f32_avx2},
    {"gemm_bf16_f32_ref", Isa::Scalar, DType::BF16, gemm_bf16_f32_ref},
    {"gemm_f16_f32_ref", Isa::Scalar, DType::F16, gemm_f16_f32_ref},
    {"gemm_f32_f32_ref", Isa::Scalar, DType::F32, gemm_f32_f32_ref},
};
}  // namespace

std::vector<const FloatGemmKernel*> float_gemm_kernels(DType wtype, const CpuFeatures& cpu) {
  std::vector<const FloatGemmKernel*> out;
  for (const auto& k : kFloatGemm)
    if (k.wtype == wtype && int(k.isa) <= int(cpu.max_isa())) out.push_back(&k);
  return out;
}

const FloatGemmKernel& pick_float_gemm(DType wtype, const CpuFeatures& cpu) {
  auto all = float_gemm_kernels(wtype, cpu);
  if (all.empty()) fail("no float GEMM kernel for weight dtype {}", dtype_name(wtype));
  return *all.front();
}

std::vector<const QuantGemmKernels*> quant_gemm_kernels(const CpuFeatures& cpu) {
  std::vector<const QuantGemmKernels*> out;
  for (const QuantGemmKernels* k : {&kQuantGemmAvx512, &kQuantGemmPortable})
    if (int(k->isa) <= int(cpu.max_isa())) out.push_back(k);
  return out;
}

const QuantGemmKernels& pick_quant_gemm(const CpuFeatures& cpu) { return *quant_gemm_kernels(cpu).front(); }

const VecOps& vec_ops() {
  static const VecOps& ops = [] () -> const VecOps& {
    switch (cpu_features().max_isa()) {
      case Isa::Avx512: return kVecOpsAvx512;
      case Isa::Avx2: return kVecOpsAvx2;
      case Isa::Scalar: break;
    }
    return kVecOpsRef;
  }();
  return ops;
}

}  // namespace lowbit
