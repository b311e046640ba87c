// Llama (and SmolLM2, which is a Llama): the plain pre-norm decoder with GQA and SwiGLU.
#include "models/arch.h"

namespace lowbit {

const ArchTraits& llama_traits() {
  static const ArchTraits traits{.hf_name = "LlamaForCausalLM", .qk_norm = false};
  return traits;
}

const ArchTraits& arch_traits(Architecture arch) {
  switch (arch) {
    case Architecture::Qwen3: return qwen3_traits();
    case Architecture::Llama: return llama_traits();
    case Architecture::Qwen3Moe: return qwen3_moe_traits();
    case Architecture::Qwen3Next: return qwen3_next_traits();
  }
  return llama_traits();
}

}  // namespace lowbit
