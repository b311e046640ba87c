#include "quantize/hessian.h"

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/float_gemm.h"

namespace lowbit::quantize {

void HessianAccumulator::add(const float* x, int64_t ldx, int64_t m, ThreadPool& pool) {
  if (m <= 0) return;
  const int64_t k = k_;
  // Xᵀ [k, m]: then Xᵀ X is the float GEMM y = a · bᵀ with a = b = Xᵀ.
  xt_.resize(size_t(k * m));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < k; ++i) xt_[size_t(i * m + r)] = x[r * ldx + i];
  part_.resize(size_t(k * k));
  static const FloatGemmKernel& gemm = pick_float_gemm(DType::F32, cpu_features());
  pool.parallel_for(k, 16, [&](int64_t b, int64_t e, int) {
    gemm.run({xt_.data(), m, xt_.data(), m, part_.data(), k, k, m, b, e});
  });
  pool.parallel_for(k, 16, [&](int64_t b, int64_t e, int) {
    for (size_t i = size_t(b * k); i < size_t(e * k); ++i) sum_[i] += double(part_[i]);
  });
  rows_ += m;
}

std::vector<double> HessianAccumulator::hessian() const {
  std::vector<double> h(sum_.size(), 0.0);
  if (rows_ == 0) return h;
  const double f = 2.0 / double(rows_);
  for (size_t i = 0; i < h.size(); ++i) h[i] = sum_[i] * f;
  // Symmetrise exactly (the GEMM's two triangles may differ in the last bit).
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j < i; ++j) {
      const double v = 0.5 * (h[size_t(i * k_ + j)] + h[size_t(j * k_ + i)]);
      h[size_t(i * k_ + j)] = h[size_t(j * k_ + i)] = v;
    }
  return h;
}

}  // namespace lowbit::quantize
