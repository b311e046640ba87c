// BF16-activation kernels for CPUs without AVX512-BF16 (AVX2, AVX-512 F only): round the
// activations to BF16 once per call into thread_local scratch, then run the fp32-activation
// kernel of that ISA on the rounded values. A BF16×BF16 product is exact in fp32, so this is
// the same math as vdpbf16ps / AMX-BF16 (up to summation order), and `--float-activations
// bf16` gives the same numbers on every machine. Portable code: it only calls the ISA kernels.
#include <vector>

#include "core/dtype.h"
#include "kernels/float_gemm.h"

namespace lowbit {

namespace {

template <FloatGemmFn F32Kernel>
void rounded_then(const FloatGemmArgs& a) {
  if (a.m <= 0 || a.n_begin >= a.n_end) return;
  static thread_local std::vector<float> scratch;
  if (scratch.size() < size_t(a.m * a.k)) scratch.resize(size_t(a.m * a.k));
  for (int64_t i = 0; i < a.m; ++i)
    for (int64_t k = 0; k < a.k; ++k) scratch[size_t(i * a.k + k)] = bf16_to_f32(f32_to_bf16(a.x[i * a.ldx + k]));
  FloatGemmArgs b = a;
  b.x = scratch.data();
  b.ldx = a.k;
  F32Kernel(b);
}

}  // namespace

void gemm_bf16_bf16_avx2(const FloatGemmArgs& a) { rounded_then<gemm_bf16_f32_avx2>(a); }
void gemm_bf16_bf16_avx512(const FloatGemmArgs& a) { rounded_then<gemm_bf16_f32_avx512>(a); }

}  // namespace lowbit
