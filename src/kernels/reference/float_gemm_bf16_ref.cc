// Scalar reference for BF16 weights × BF16-rounded activations, written from the definition:
// each activation is rounded with f32_to_bf16 (round to nearest even, as torch), the product of
// two BF16 values is exact in fp32 (8-bit significands), and products are accumulated in fp32
// in k order. Built without FMA contraction or fast-math (see CMakeLists.txt).
#include <cstring>

#include "core/dtype.h"
#include "kernels/float_gemm.h"

namespace lowbit {

void gemm_bf16_bf16_ref(const FloatGemmArgs& a) {
  for (int64_t n = a.n_begin; n < a.n_end; ++n) {
    const uint8_t* w = static_cast<const uint8_t*>(a.w) + 2 * n * a.ldw;
    for (int64_t m = 0; m < a.m; ++m) {
      const float* x = a.x + m * a.ldx;
      float acc = 0.0f;
      for (int64_t k = 0; k < a.k; ++k) {
        uint16_t wk;
        std::memcpy(&wk, w + 2 * k, 2);  // weights may be unaligned
        acc += bf16_to_f32(f32_to_bf16(x[k])) * bf16_to_f32(wk);
      }
      a.y[m * a.ldy + n] = acc;
    }
  }
}

}  // namespace lowbit
