// Rotary position embeddings as transformers computes them (modeling_rope_utils.py): the
// inverse frequencies for default, linear, llama3 and yarn scaling, and a cos/sin table
// (already multiplied by yarn's attention factor) applied in the rotate_half layout.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"

namespace lowbit {

// rotary_channels/2 inverse frequencies and the cos/sin scale (1 except for yarn).
struct RopeFrequencies {
  std::vector<float> inv_freq;
  float attention_factor = 1.0f;
};
RopeFrequencies rope_frequencies(const ModelConfig& config);

class RopeTable {
 public:
  RopeTable(const ModelConfig& config, int64_t max_positions);
  // Rotates one head vector in place for position pos:
  // x[i] ← x[i]·cos − x[i+h]·sin, x[i+h] ← x[i+h]·cos + x[i]·sin, h = rotary_channels/2;
  // channels from rotary_channels on pass through (partial RoPE, Qwen3-Next).
  void apply(float* x, int64_t pos) const;
  int64_t max_positions() const { return max_positions_; }
  // Grows the table (at load or on a longer request; never per token).
  void ensure(int64_t max_positions);

 private:
  RopeFrequencies freq_;
  int64_t half_ = 0, max_positions_ = 0;
  std::vector<float> cos_, sin_;  // [max_positions, half]
};

}  // namespace lowbit
