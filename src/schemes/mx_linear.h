// MXFP8 and MXFP4 (OCP Microscaling): E4M3 or E2M1 weight codes with one E8M0 scale per 32
// along K; activations quantized the same way at run time (E4M3 for MXFP8 and W4A8_MXFP, E2M1
// for W4A4_MXFP4) with the OCP rule e = floor(log2 amax) − emax, elements rounded to nearest
// even and saturated, as CANN's npu_dynamic_mx_quant does. Checkpoint scales are decoded,
// never recomputed; online quantization of float weights uses the same OCP rule.
// y = Σ_blocks 2^(ex+ew) · Σ_32 x·w: the kernel gets the activation codes with 2^ex per row and
// block, and the weight scales as E8M0 bytes (1 byte per 32 weights rather than a 4-byte
// float: decode reads a quarter less for MXFP4), and multiplies codes exactly (BF16 or int8).
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
  AlignedArray<uint8_t> scale_;  // E8M0 u per row and block of 32, tiled as CodeGemmArgs::scale_e8m0
};

}  // namespace lowbit
