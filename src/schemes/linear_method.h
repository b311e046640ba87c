// What a model sees of a linear layer: y[m, out] = x[m, in] · Wᵀ (+ bias). Models never know
// whether the weight is BF16 or INT4, nor how it is laid out; a scheme implements this.
#pragma once

#include <cstdint>
#include <string>

namespace lowbit {

class ThreadPool;

class LinearMethod {
 public:
  virtual ~LinearMethod() = default;
  // x: m rows of in_features() floats, ldx apart; y: m rows of out_features(), ldy apart.
  // Must not allocate: it runs once per layer per forward.
  virtual void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const = 0;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  // Bytes of weight data this layer reads per forward (for memory reports and rooflines).
  virtual size_t weight_bytes() const = 0;
  // True when apply() reads the checkpoint's weight bytes in place (FLOAT); false when the
  // scheme made its own packed copy at load, so the loader can drop the source pages.
  virtual bool reads_checkpoint_in_place() const { return false; }
  // "FLOAT bf16 via gemm_bf16_f32_avx512", for logs.
  virtual std::string describe() const = 0;
};

}  // namespace lowbit
