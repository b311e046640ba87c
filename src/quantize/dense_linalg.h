// The two dense factorisations GPTQ needs on a layer's K × K Hessian (K up to the MLP width:
// 6144 for Qwen3-1.7B's down_proj, k³/3 multiply-adds each), from LAPACK as OpenBLAS builds it:
// blocked, vectorised and threaded, where a hand-written row-by-row version is bound by memory
// (every column re-reads the whole triangle). fp64 throughout, as before; upstream GPTQ runs
// these in fp32 (torch.linalg.cholesky on the GPU).
//
// Matrices are row-major [k, k]; only the lower triangle is read and written.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit::quantize {

// In-place lower Cholesky factor L (A = L Lᵀ). Returns the first column (0-based) whose
// leading minor is not positive definite, or whose pivot L_jj² is below 1e-12 · A_jj
// (numerically singular), or -1.
int64_t cholesky_lower(std::vector<double>& a, int64_t k, int threads);

// In place: the lower triangular L becomes L⁻¹ (lower).
void invert_lower(std::vector<double>& l, int64_t k, int threads);

}  // namespace lowbit::quantize
