// The tiled quantized GEMMs compiled for baseline x86-64 (and any other CPU).
#include <algorithm>
#define QG_NAMESPACE portable
#include "kernels/cpu/quant_gemm_tiled.inc"

namespace lowbit {
const QuantGemmKernels kQuantGemmPortable = {"quant_gemm_tiled_portable", Isa::Scalar, nullptr, portable::int_gemm,
                                             portable::code_gemm};
}  // namespace lowbit
