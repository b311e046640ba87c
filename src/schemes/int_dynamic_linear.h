// W8A8 dynamic, W4A4 dynamic and W4A8 dynamic: symmetric integer weights with a per-channel
// scale (W4A8 optionally × a per-group scale_second), activations quantized per token at run
// time (s = max|x|/127 or /7). The three differ only in bit widths and the optional group
// level, so they are one class; the math is in ../shared/spec/quantization.md and
// kernels/reference/quant_gemm_ref.h (gemm_dynamic_int_ref, gemm_w4a8_dynamic_ref).
#pragma once

#include "schemes/packed_linear.h"

namespace lowbit {

class IntDynamicLinear final : public PackedLinear {
 public:
  // Weights: int8 [N, K] (W8A8), int4 in any WeightEncoding (W4A4/W4A8), or float (online
  // quantization: per-channel, QMax rule, as msmodelslim and SGLang's online W8A8 do).
  IntDynamicLinear(const SchemeSpec& spec, const LinearTensors& tensors, LinearShape shape, const CpuFeatures& cpu);

  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override;
  size_t weight_bytes() const override;
  std::string describe() const override;

 private:
  SchemeSpec spec_;
  int act_bits_ = 8;
  bool online_ = false;
  AlignedArray<float> col_scale_;
  int64_t group_ = 0;
  TiledParams group_scale_;
};

}  // namespace lowbit
