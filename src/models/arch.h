// What distinguishes one dense decoder architecture from another. The shared decoder
// (decoder.cc) reads these; each architecture is one small file that registers its traits.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "io/model_config.h"
#include "schemes/moe_method.h"

namespace lowbit {

class Checkpoint;
class Format;
struct CpuFeatures;

// Builds the routed experts of one MoE layer (`mlp_prefix` = "model.layers.{i}.mlp.") from
// the checkpoint, streaming tensor by tensor; the router is built by the decoder.
using MoeExpertsLoader = std::unique_ptr<MoeMethod> (*)(const Checkpoint& checkpoint, const Format& format,
                                                         const std::string& mlp_prefix, const ModelConfig& config,
                                                         const CpuFeatures& cpu);

// Qwen3-MoE's loader (models/qwen3_moe.cc), also Qwen3-Next's: both layouts, any scheme.
std::unique_ptr<MoeMethod> load_qwen3_moe_experts(const Checkpoint& checkpoint, const Format& format,
                                                  const std::string& mlp_prefix, const ModelConfig& config,
                                                  const CpuFeatures& cpu);

struct ArchTraits {
  std::string_view hf_name;  // config.json "architectures" entry
  // Per-head RMSNorm of q and k before RoPE (Qwen3's q_norm / k_norm).
  bool qk_norm = false;
  // Architectures with routed experts: layers where config.is_moe_layer(i) get a router
  // (`mlp.gate`) and the experts this loader builds instead of the dense MLP.
  MoeExpertsLoader load_moe_experts = nullptr;
  // Qwen3-Next (../shared/spec/qwen3-moe-next.md §2): norms stored as w and applied as 1 + w
  // (all but the GDN gated norm; 1 is added once at load), q_proj rows interleaved per head
  // as [q_h | gate_h] with the attention output multiplied by σ(gate), partial RoPE (from the
  // config), Gated DeltaNet layers where config.is_linear_attention_layer(i), and a shared
  // expert beside the routed ones.
  bool offset_norms = false;
  bool attention_output_gate = false;
  bool shared_expert = false;
};

const ArchTraits& qwen3_traits();
const ArchTraits& llama_traits();
const ArchTraits& qwen3_moe_traits();
const ArchTraits& qwen3_next_traits();

// The traits of a parsed config's architecture.
const ArchTraits& arch_traits(Architecture arch);

}  // namespace lowbit
