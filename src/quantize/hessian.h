// GPTQ's layer Hessian H = 2/n Σ x xᵀ over the n calibration input rows x of a linear layer,
// accumulated by an observing LinearMethod decorator (like calibration.h's ObservingLinear).
// Layers that read the same input (q/k/v, gate/up) share one accumulator: only the first of
// them (the "owner") adds rows, so each H is K×K once per distinct input.
// Precision: each forward call's Xᵀ X (≤ one calibration sequence of rows) is a GEMM of the
// float kernels over the lower triangle only (H is symmetric: half the products), summed over
// the calls in fp64. The inputs are the values the layer multiplies: with BF16 activations
// (FloatLinear's choice for BF16 weights on a CPU with AVX512-BF16) X rounded to BF16, whose
// products are exact in fp32, as llm-compressor computes H for a BF16 model (bf16 inputs cast
// to fp32); with F32 activations X itself in fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/float_gemm.h"
#include "schemes/linear_method.h"

namespace lowbit::quantize {

class HessianAccumulator {
 public:
  HessianAccumulator(int64_t k, FloatAct act) : k_(k), act_(act), sum_(size_t(k * k), 0.0) {}
  // Adds Σ xᵀ x over m rows of k floats, ldx apart.
  void add(const float* x, int64_t ldx, int64_t m, ThreadPool& pool);
  int64_t k() const { return k_; }
  int64_t rows() const { return rows_; }
  // 2/n Σ x xᵀ, [k, k] row-major (zeros before any row).
  std::vector<double> hessian() const;
  // The same, made in place from the sums (which are gone afterwards): one K² buffer less at
  // the peak, for the largest layers.
  std::vector<double> release_hessian();

 private:
  int64_t k_;
  FloatAct act_;
  int64_t rows_ = 0;
  std::vector<double> sum_;       // lower triangle of Σ Xᵀ X (the upper half stays 0)
  std::vector<float> xt_, part_;  // scratch: Xᵀ and one call's Xᵀ X (lower triangle)
  std::vector<uint16_t> xt_bf16_; // Xᵀ in BF16: the weight operand of the BF16 kernel
};

// Observes a layer's input into `acc` when `owner`, then runs the layer unchanged.
class HessianLinear final : public LinearMethod {
 public:
  HessianLinear(std::unique_ptr<LinearMethod> inner, HessianAccumulator& acc, bool owner)
      : inner_(std::move(inner)), acc_(acc), owner_(owner) {}
  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override {
    if (owner_) acc_.add(x, ldx, m, pool);
    inner_->apply(x, ldx, m, y, ldy, pool);
  }
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  size_t weight_bytes() const override { return inner_->weight_bytes(); }
  bool reads_checkpoint_in_place() const override { return inner_->reads_checkpoint_in_place(); }
  std::string describe() const override { return "hessian-observed " + inner_->describe(); }
  std::unique_ptr<LinearMethod> release() { return std::move(inner_); }

 private:
  std::unique_ptr<LinearMethod> inner_;
  HessianAccumulator& acc_;
  bool owner_;
};

}  // namespace lowbit::quantize
