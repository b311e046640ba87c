// The tiled quantized GEMMs compiled with AVX-512 flags (the compiler vectorises the 16 lanes).
#include <algorithm>
#define QG_NAMESPACE avx512
#include "kernels/cpu/quant_gemm_tiled.inc"

namespace lowbit {
const QuantGemmKernels kQuantGemmAvx512 = {"quant_gemm_tiled_avx512", Isa::Avx512, nullptr, avx512::int_gemm,
                                           avx512::code_gemm};
}  // namespace lowbit
