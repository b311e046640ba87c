// The Gated DeltaNet backend for baseline x86-64 (any CPU): plain C++ conv, GEMM and recurrence.
#define GDN_NAMESPACE gdn_portable
#include "kernels/cpu/gdn_conv.inc"
#include "kernels/cpu/gdn_plain.inc"
// Last: the chunked form calls the gemm() defined just above.
#include "kernels/cpu/gdn_chunked.inc"

namespace lowbit {
const GdnKernels kGdnPortable = {"gdn_portable", Isa::Scalar, gdn_portable::conv_rows, gdn_portable::recurrent,
                                 gdn_portable::chunked, kGdnNeverChunked};
}  // namespace lowbit
