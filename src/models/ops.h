// Elementwise and row-wise ops of the decoder, fp32, in transformers' order of operations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit {

// y = x / sqrt(mean(x²) + eps) · w, over n elements (Llama/Qwen3 RMSNorm in fp32).
void rms_norm(const float* x, const float* w, float eps, float* y, int64_t n);
// gate ← silu(gate) · up, n elements (SwiGLU).
void silu_mul(float* gate, const float* up, int64_t n);
// y += x, n elements (residual).
void add_inplace(float* y, const float* x, int64_t n);
// Grows an activation buffer to at least n floats (grow-only: a forward allocates only when a
// batch is larger than any before).
inline void grow(std::vector<float>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(static_cast<std::size_t>(n));
}
// Softmax of s[0..n) in place; returns nothing. s must not be all -inf (a query always sees itself).
void softmax_inplace(float* s, int64_t n);

}  // namespace lowbit
