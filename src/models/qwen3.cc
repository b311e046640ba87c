// Qwen3 (dense): Llama's decoder plus RMSNorm over each head of q and k before RoPE
// (transformers' Qwen3Attention: q_norm/k_norm on `view(hidden_shape)`), no qkv bias by default.
#include "models/arch.h"

namespace lowbit {

const ArchTraits& qwen3_traits() {
  static const ArchTraits traits{.hf_name = "Qwen3ForCausalLM", .qk_norm = true};
  return traits;
}

}  // namespace lowbit
