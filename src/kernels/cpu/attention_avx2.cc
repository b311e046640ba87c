// The tiled attention compiled with AVX2+FMA (the compiler vectorises its key and head_dim
// loops 8 lanes wide): the path for CPUs without AVX-512.
#define ATTN_NAMESPACE attention_avx2
#include "kernels/cpu/attention_tiled.inc"

namespace lowbit {
const AttentionKernels kAttentionAvx2 = {"attention_tiled_avx2", Isa::Avx2, nullptr, attention_avx2::attend_tile,
                                         attention_avx2::attend_tile};
}  // namespace lowbit
