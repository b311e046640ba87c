// What distinguishes one dense decoder architecture from another. The shared decoder
// (decoder.cc) reads these; each architecture is one small file that registers its traits.
#pragma once

#include <string_view>

#include "io/model_config.h"

namespace lowbit {

struct ArchTraits {
  std::string_view hf_name;  // config.json "architectures" entry
  // Per-head RMSNorm of q and k before RoPE (Qwen3's q_norm / k_norm).
  bool qk_norm = false;
};

const ArchTraits& qwen3_traits();
const ArchTraits& llama_traits();

// The traits of a parsed config's architecture.
const ArchTraits& arch_traits(Architecture arch);

}  // namespace lowbit
