// The common base of the quantized schemes: weights repacked into PackedCodes at load, an
// optional float bias, the kernel set chosen once for this CPU, and the dispatch of a GEMM
// over 16-row weight tiles on the thread pool. A scheme adds its own scales, activation
// quantization and choice of kernel (integer or table-decoded).
#pragma once

#include "kernels/quant_gemm.h"
#include "schemes/linear_method.h"
#include "schemes/scheme_spec.h"

namespace lowbit {

class PackedLinear : public LinearMethod {
 public:
  int64_t in_features() const override { return shape_.in_features; }
  int64_t out_features() const override { return shape_.out_features; }

 protected:
  PackedLinear(LinearShape shape, const CpuFeatures& cpu);
  // Fill in the scheme-specific fields; these set weights, bias, output and m, then split the
  // weight tiles across the pool.
  void run(IntGemmArgs a, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const;
  void run(CodeGemmArgs a, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const;
  const char* kernel_name() const { return kernels_->name; }
  size_t packed_bytes() const { return codes_.bytes() + bias_.bytes(); }

  LinearShape shape_;
  PackedCodes codes_;
  AlignedArray<float> bias_;  // empty when the layer has none

 private:
  const QuantGemmKernels* kernels_;
};

}  // namespace lowbit
