// Qwen3-Next's config fields beyond Qwen3-MoE's: the layer pattern and the Gated DeltaNet
// sizes (../shared/spec/qwen3-moe-next.md §2.1), with Qwen3NextConfig's defaults.
#pragma once

#include "io/config_fields.h"
#include "io/model_config.h"

namespace lowbit {

// Fills linear_attention_layers, linear_attention and shared_expert_intermediate_size.
// `layer_types` wins over `full_attention_interval` (as in transformers), with a warning
// when both are present and disagree.
void parse_qwen3_next(const ConfigFields& f, ModelConfig& c);

}  // namespace lowbit
