// GPTQ's layer Hessian H = 2/n Σ x xᵀ over the n calibration input rows x of a linear layer,
// accumulated by an observing LinearMethod decorator (like calibration.h's ObservingLinear).
// Layers that read the same input (q/k/v, gate/up) share one accumulator: only the first of
// them (the "owner") adds rows, so each H is K×K once per distinct input.
// Precision: each forward call's Xᵀ X (≤ one calibration sequence of rows) is an fp32 GEMM
// with the float kernels; the calls are summed in fp64.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "schemes/linear_method.h"

namespace lowbit::quantize {

class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t k) : k_(k), sum_(size_t(k * k), 0.0) {}
  // Adds Σ xᵀ x over m rows of k floats, ldx apart.
  void add(const float* x, int64_t ldx, int64_t m, ThreadPool& pool);
  int64_t k() const { return k_; }
  int64_t rows() const { return rows_; }
  // 2/n Σ x xᵀ, [k, k] row-major (zeros before any row).
  std::vector<double> hessian() const;

 private:
  int64_t k_;
  int64_t rows_ = 0;
  std::vector<double> sum_;
  std::vector<float> xt_, part_;  // scratch: Xᵀ and one call's Xᵀ X
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
