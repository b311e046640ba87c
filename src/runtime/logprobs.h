// Log-probabilities of the model's next-token distribution, as OpenAI-compatible servers
// return them: log-softmax of the raw logits (before penalties, temperature or truncation),
// the chosen token's value and the k most likely tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/engine.h"

namespace lowbit {

inline constexpr int kMaxTopLogprobs = 20;

// Fills out.logprob for `chosen` and out.top with the k most likely tokens (most likely first,
// ties by lower id). logits: vocab floats, read only.
void compute_logprobs(const float* logits, int64_t vocab, int32_t chosen, int k, OutputToken& out);

}  // namespace lowbit
