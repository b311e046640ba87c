// The tiled attention compiled for baseline x86-64 (and any other CPU): the fallback of last resort.
#define ATTN_NAMESPACE attention_portable
#include "kernels/cpu/attention_tiled.inc"

namespace lowbit {
const AttentionKernels kAttentionPortable = {"attention_tiled_portable", Isa::Scalar, nullptr,
                                             attention_portable::attend_tile, attention_portable::attend_tile};
}  // namespace lowbit
