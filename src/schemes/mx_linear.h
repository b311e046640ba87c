// MXFP8 and MXFP4 (OCP Microscaling): E4M3 or E2M1 weight codes with one E8M0 scale per 32
// along K; activations quantized the same way at run time (E4M3 for MXFP8 and W4A8_MXFP, E2M1
// for W4A4_MXFP4) with the OCP rule e = floor(log2 amax) − emax, elements rounded to nearest
// even and saturated, as CANN's npu_dynamic_mx_quant does. Checkpoint scales are decoded,
// never recomputed; online quantization of float weights uses the same OCP rule.
// y = Σ_blocks 2^(ex+ew) · Σ_32 x·w: activations are expanded to x̂ = code·2^ex (exact in fp32)
// and the kernel applies 2^ew per block.
#pragma once

#include "schemes/packed_linear.h"

namespace lowbit {

class MxLinear final : public PackedLinear {
 public:
  MxLinear(const SchemeSpec& spec, const LinearTensors& tensors, LinearShape shape, const CpuFeatures& cpu);

  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override;
  size_t weight_bytes() const override { return codes_.bytes() + scale_.bytes() + bias_.bytes(); }
  std::string describe() const override;

 private:
  bool weight_fp4_ = false, act_fp4_ = false, online_ = false;
  TiledParams scale_;  // 2^(u−127) per row and block of 32
};

}  // namespace lowbit
