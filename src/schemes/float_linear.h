// FLOAT scheme: weights used as the checkpoint stores them (BF16, F16 or F32, [N, K]
// row-major, read in place from the mmap), activations and accumulation in fp32.
#pragma once

#include <memory>
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
  bool reads_checkpoint_in_place() const override { return true; }

 private:
  TensorView weight_;
  LinearShape shape_;
  std::vector<float> bias_;  // empty when the layer has none
  const FloatGemmKernel* kernel_;
};

}  // namespace lowbit
