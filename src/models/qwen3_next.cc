// Qwen3-Next (Qwen3NextForCausalLM, ../shared/spec/qwen3-moe-next.md §2): a hybrid of Gated
// DeltaNet layers (models/gated_delta_net) and gated full attention with partial RoPE, every
// FFN a Qwen3-MoE-style routed mixture plus a sigmoid-gated shared expert, offset ("1 + w")
// RMSNorms. The shared decoder reads these traits; the experts load as Qwen3-MoE's do.
#include "models/arch.h"

namespace lowbit {

const ArchTraits& qwen3_next_traits() {
  static const ArchTraits traits{.hf_name = "Qwen3NextForCausalLM",
                                 .qk_norm = true,
                                 .load_moe_experts = &load_qwen3_moe_experts,
                                 .offset_norms = true,
                                 .attention_output_gate = true,
                                 .shared_expert = true};
  return traits;
}

}  // namespace lowbit
