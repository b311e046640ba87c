// W8A8 static: int8 symmetric weights, int8 per-tensor activations with a calibrated scale
// (and zero point), exact int32 accumulation. Two storage conventions share the math:
//  - msmodelslim W8A8 (SchemeKind::W8A8Static): scales folded into deq_scale[n], bias and the
//    zero-point correction folded into quant_bias[n]: y = float(Σ xq·wq + quant_bias[n])·deq_scale[n],
//    xq = clamp(rne(x·(1/s) + offset)) as SGLang's npu_quantize runs it.
//  - compressed-tensors int-quantized with static activations (W8A8StaticUnfolded): weight_scale,
//    input_scale (+ input_zero_point when asymmetric) kept apart: xq = clamp(rne(x/s + zp)),
//    y = (Σ xq·wq − zp·Σ_k wq) · s · s_w[n] + bias; the correction is folded into an int32
//    column bias at load.
#pragma once

#include "schemes/packed_linear.h"

namespace lowbit {

class W8A8StaticLinear final : public PackedLinear {
 public:
  W8A8StaticLinear(const SchemeSpec& spec, const LinearTensors& tensors, LinearShape shape, const CpuFeatures& cpu);

  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override;
  size_t weight_bytes() const override { return codes_.bytes() + col_scale_.bytes() + col_int_bias_.bytes(); }
  std::string describe() const override;

 private:
  bool folded_;  // msmodelslim convention
  float input_scale_ = 1, input_zero_ = 0;
  AlignedArray<float> col_scale_;
  AlignedArray<int32_t> col_int_bias_;
};

}  // namespace lowbit
