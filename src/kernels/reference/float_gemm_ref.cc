// Scalar reference GEMM, written straight from the definition; built without fast-math and
// without FMA contraction so it is a stable oracle. Accumulates in fp32 in k order.
#include <cstring>

#include "core/dtype.h"
#include "kernels/float_gemm.h"

namespace lowbit {

namespace {
template <class LoadW>
void gemm_ref(const FloatGemmArgs& a, LoadW load_w) {
  for (int64_t n = a.n_begin; n < a.n_end; ++n) {
    for (int64_t m = 0; m < a.m; ++m) {
      const float* x = a.x + m * a.ldx;
      float acc = 0.0f;
      for (int64_t k = 0; k < a.k; ++k) acc += x[k] * load_w(n * a.ldw + k);
      a.y[m * a.ldy + n] = acc;
    }
  }
}

uint16_t load_u16(const void* base, int64_t i) {
  uint16_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(base) + 2 * i, 2);  // weights may be unaligned
  return v;
}
}  // namespace

void gemm_bf16_f32_ref(const FloatGemmArgs& a) {
  gemm_ref(a, [&](int64_t i) { return bf16_to_f32(load_u16(a.w, i)); });
}
void gemm_f16_f32_ref(const FloatGemmArgs& a) {
  gemm_ref(a, [&](int64_t i) { return f16_to_f32(load_u16(a.w, i)); });
}
void gemm_f32_f32_ref(const FloatGemmArgs& a) {
  gemm_ref(a, [&](int64_t i) {
    float v;
    std::memcpy(&v, static_cast<const uint8_t*>(a.w) + 4 * i, 4);
    return v;
  });
}

}  // namespace lowbit
