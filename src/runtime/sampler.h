// Next-token selection for one sequence: penalties, then temperature → top-k → top-p → min-p
// (transformers' warper order), then a draw from a seeded generator. temperature 0 is greedy.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "io/model_config.h"

namespace lowbit {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax after penalties)
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;  // HF/CTRL style, over prompt and output tokens
  float presence_penalty = 0.0f;    // OpenAI style, over output tokens
  float frequency_penalty = 0.0f;   // OpenAI style, over output tokens
  uint64_t seed = 0;

  // Defaults from generation_config.json with transformers' meaning: sampling only when
  // do_sample is true, then temperature 1, top_k 50, top_p 1 unless the file says otherwise.
  static SamplingParams from_generation_defaults(const GenerationDefaults& g);
  // Throws Error naming the field when a value is out of range.
  void validate() const;
};

class Sampler {
 public:
  Sampler(const SamplingParams& params, int64_t vocab_size);
  // Resets the penalty history to this prompt (repetition penalty counts prompt tokens).
  void start(std::span<const int32_t> prompt);
  // Picks the next token from logits (modified in place) and records it in the history.
  int32_t sample(float* logits);

 private:
  void apply_penalties(float* logits) const;
  int32_t draw(float* logits);

  SamplingParams p_;
  int64_t vocab_;
  std::mt19937_64 rng_;
  std::vector<uint8_t> in_context_;      // token seen in prompt or output (repetition penalty)
  std::vector<int32_t> output_count_;    // occurrences in output (presence/frequency)
  std::vector<int32_t> touched_;         // ids with nonzero state, for cheap penalties/resets
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace lowbit
