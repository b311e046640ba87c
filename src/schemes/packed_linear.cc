#include "schemes/packed_linear.h"

#include "core/thread_pool.h"

namespace lowbit {

namespace {
// Output tiles per thread-pool grain.
constexpr int64_t kTilesPerGrain = 1;

// Both kernel argument structs share these fields; the kernel runs over ranges of tiles.
template <class Args>
void run_tiles(Args& a, void (*fn)(const Args&, int64_t, int64_t), const PackedCodes& codes,
               const AlignedArray<float>& bias, int64_t m, float* y, int64_t ldy, ThreadPool& pool) {
  a.m = m;
  a.w = &codes;
  a.col_bias = bias.size() ? bias.data() : nullptr;
  a.y = y;
  a.ldy = ldy;
  pool.parallel_for(codes.n_pad() / kTileN, kTilesPerGrain, [&](int64_t t0, int64_t t1, int) { fn(a, t0, t1); });
}
}  // namespace

PackedLinear::PackedLinear(LinearShape shape, const CpuFeatures& cpu) : shape_(shape), kernels_(&pick_quant_gemm(cpu)) {}

void PackedLinear::run(IntGemmArgs a, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const bool large = kernels_->int_gemm_large && m >= kernels_->large_rows;
  run_tiles(a, large ? kernels_->int_gemm_large : kernels_->int_gemm, codes_, bias_, m, y, ldy, pool);
}

void PackedLinear::run(CodeGemmArgs a, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  a.call_id = next_code_gemm_call_id();
  const bool large = kernels_->code_gemm_large && m >= kernels_->large_rows;
  run_tiles(a, large ? kernels_->code_gemm_large : kernels_->code_gemm, codes_, bias_, m, y, ldy, pool);
}

}  // namespace lowbit
