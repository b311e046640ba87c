#include "quantize/hessian.h"

#include <algorithm>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"

namespace lowbit::quantize {

namespace {
constexpr int64_t kColumnBlock = 64;
}

void HessianAccumulator::add(const float* x, int64_t ldx, int64_t m, ThreadPool& pool) {
  if (m <= 0) return;
  const int64_t k = k_;
  const bool bf16 = act_ == FloatAct::BF16;
  // Xᵀ [k, m]: then Xᵀ X is the float GEMM y = a · bᵀ with a = b = Xᵀ.
  xt_.resize(size_t(k * m));
  if (bf16) xt_bf16_.resize(size_t(k * m));
  pool.parallel_for(k, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t r = 0; r < m; ++r) xt_[size_t(i * m + r)] = x[r * ldx + i];
    if (bf16)
      for (int64_t j = b * m; j < e * m; ++j) xt_bf16_[size_t(j)] = f32_to_bf16(xt_[size_t(j)]);
  });
  part_.resize(size_t(k * k));
  static const FloatGemmKernel& f32 = pick_float_gemm(DType::F32, FloatAct::F32, cpu_features());
  static const FloatGemmKernel& bf = pick_float_gemm(DType::BF16, FloatAct::BF16, cpu_features());
  const FloatGemmKernel& gemm = bf16 ? bf : f32;
  const void* w = bf16 ? static_cast<const void*>(xt_bf16_.data()) : xt_.data();
  // Column block c: rows [c0, k) of columns [c0, c1), the lower triangle's part below the
  // diagonal block. Blocks are claimed in pairs (c, last − c) so every claim costs the same.
  const int64_t blocks = (k + kColumnBlock - 1) / kColumnBlock;
  auto column_block = [&](int64_t c) {
    const int64_t c0 = c * kColumnBlock, c1 = std::min(k, c0 + kColumnBlock);
    gemm.run({xt_.data() + c0 * m, m, w, m, part_.data() + c0 * k, k, k - c0, m, c0, c1});
  };
  pool.parallel_for((blocks + 1) / 2, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      column_block(p);
      if (blocks - 1 - p != p) column_block(blocks - 1 - p);
    }
  });
  pool.parallel_for(k, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t j = 0; j <= i; ++j) sum_[size_t(i * k + j)] += double(part_[size_t(i * k + j)]);
  });
  rows_ += m;
}

std::vector<double> HessianAccumulator::hessian() const {
  HessianAccumulator copy(k_, act_);
  copy.sum_ = sum_;
  copy.rows_ = rows_;
  return copy.release_hessian();
}

std::vector<double> HessianAccumulator::release_hessian() {
  std::vector<double> h = std::move(sum_);
  sum_.clear();
  xt_ = {};
  part_ = {};
  xt_bf16_ = {};
  const double f = rows_ == 0 ? 0.0 : 2.0 / double(rows_);
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j <= i; ++j) h[size_t(j * k_ + i)] = h[size_t(i * k_ + j)] *= f;
  return h;
}

}  // namespace lowbit::quantize
