// RoPE parameters of a config.json, in either spelling: transformers v4 writes
// `rope_theta` + `rope_scaling` {"rope_type"|"type", ...}; v5 writes `rope_parameters`
// {rope_type, rope_theta, ...}. Both are normalised the way
// transformers.modeling_rope_utils.RotaryEmbeddingConfigMixin does.
#pragma once

#include <cstdint>

#include "io/config_fields.h"
#include "io/model_config.h"

namespace lowbit {

struct RopeConfig {
  double theta = 10000.0;
  RopeScaling scaling;
  double partial_rotary_factor = 1.0;  // top level or inside the RoPE object
};

// `config` is the whole config.json; `max_position_embeddings` is already resolved (it is
// the default for original_max_position_embeddings).
// `default_partial_rotary_factor` is the architecture's config-class default.
RopeConfig parse_rope_config(const ConfigFields& config, int64_t max_position_embeddings,
                             double default_partial_rotary_factor = 1.0);

}  // namespace lowbit
