// The plain C++ Gated DeltaNet backend compiled with AVX2+FMA (the compiler vectorises the dv
// loops 8 lanes wide): the path for CPUs without AVX-512.
#define GDN_NAMESPACE gdn_avx2
#include "kernels/cpu/gdn_conv.inc"
#include "kernels/cpu/gdn_plain.inc"
// Last: the chunked form calls the gemm() defined just above.
#include "kernels/cpu/gdn_chunked.inc"

namespace lowbit {
const GdnKernels kGdnAvx2 = {"gdn_avx2", Isa::Avx2, gdn_avx2::conv_rows, gdn_avx2::recurrent, gdn_avx2::chunked,
                             kGdnNeverChunked};
}  // namespace lowbit
