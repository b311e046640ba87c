// FLOAT scheme: weights used as the checkpoint stores them (BF16, F16 or F32, [N, K]
// row-major; from 2 MiB on copied at load into huge-page memory unless runtime_options()
// .float_weights is "mapped", else read in place from the mmap), accumulation in fp32. Activations are fp32, or
// rounded to BF16 for BF16 weights when runtime_options().float_activations says so (chosen
// once at load; see activation_type).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/float_gemm.h"
#include "schemes/linear_method.h"
#include "schemes/scheme_spec.h"

namespace lowbit {

class FloatLinear final : public LinearMethod {
 public:
  // Validates dtype and shape of weight and bias; the error names the tensor.
  FloatLinear(const LinearTensors& tensors, LinearShape shape, const CpuFeatures& cpu);

  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override;
  int64_t in_features() const override { return shape_.in_features; }
  int64_t out_features() const override { return shape_.out_features; }
  size_t weight_bytes() const override { return weight_.nbytes(); }
  std::string describe() const override;
  bool reads_checkpoint_in_place() const override { return !copied_; }

  // The activation type for weights of wtype under policy "auto" | "bf16" | "f32": BF16 only
  // for BF16 weights, and under "auto" only when the CPU has AVX512-BF16 (elsewhere rounding
  // would cost accuracy and buy no speed). F16 and F32 weights always take fp32 activations.
  static FloatAct activation_type(const std::string& policy, DType wtype, const CpuFeatures& cpu);

 private:
  TensorView weight_;
  std::shared_ptr<const void> storage_;  // keeps weight_ valid when it is not the checkpoint's
  bool copied_ = false;                  // weight_ is this layer's own copy (storage_)
  LinearShape shape_;
  std::vector<float> bias_;  // empty when the layer has none
  const FloatGemmKernel* kernel_;
};

}  // namespace lowbit
