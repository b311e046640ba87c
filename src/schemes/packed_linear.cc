#include "schemes/packed_linear.h"

#include "core/thread_pool.h"

namespace lowbit {

namespace {
// Output tiles per thread-pool grain.
constexpr int64_t kTilesPerGrain = 1;
}  // namespace

PackedLinear::PackedLinear(LinearShape shape, const CpuFeatures& cpu) : shape_(shape), kernels_(&pick_quant_gemm(cpu)) {}

void PackedLinear::run(IntGemmArgs a, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  a.m = m;
  a.w = &codes_;
  a.col_bias = bias_.size() ? bias_.data() : nullptr;
  a.y = y;
  a.ldy = ldy;
  const IntGemmFn fn = kernels_->int_gemm;
  pool.parallel_for(codes_.n_pad() / kTileN, kTilesPerGrain, [&](int64_t t0, int64_t t1, int) { fn(a, t0, t1); });
}

void PackedLinear::run(CodeGemmArgs a, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  a.m = m;
  a.w = &codes_;
  a.col_bias = bias_.size() ? bias_.data() : nullptr;
  a.y = y;
  a.ldy = ldy;
  const CodeGemmFn fn = kernels_->code_gemm;
  pool.parallel_for(codes_.n_pad() / kTileN, kTilesPerGrain, [&](int64_t t0, int64_t t1, int) { fn(a, t0, t1); });
}

}  // namespace lowbit
