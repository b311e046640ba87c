// Synthetic benchmark prompts, as SGLang's bench_serving builds them: text decoded from random
// token ids, so a prompt's length in tokens is chosen, not guessed from characters.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace lowbit::bench_serving {

struct BenchPrompt {
  std::string text;        // sent as the user message (chat) or the prompt (completions)
  int64_t prompt_len = 0;  // tokens of `text` under the benchmark's tokenizer
  int64_t output_len = 0;  // max_tokens asked for
};

struct RandomDatasetOptions {
  int64_t num_prompts = 1000;
  int64_t input_len = 1024, output_len = 1024;
  double range_ratio = 0.0;  // lengths drawn uniformly from [max(1, len * ratio), len]
};

struct SharedPrefixOptions {
  int64_t num_groups = 64, prompts_per_group = 16;
  int64_t system_prompt_len = 2048, question_len = 128, output_len = 256;
};

// Random text that encodes to `tokens` tokens (see datasets.cc for why that needs a loop).
class RandomText {
 public:
  explicit RandomText(const Tokenizer& tokenizer);
  std::string make(int64_t tokens, std::mt19937_64& rng) const;

 private:
  const Tokenizer& tokenizer_;
  std::vector<int32_t> pool_;  // ids that decode, alone, to whole characters and are not special
};

std::vector<BenchPrompt> random_dataset(const Tokenizer& tokenizer, const RandomDatasetOptions& o, std::mt19937_64& rng);
// One random system prompt per group, each followed ("\n\n") by its own random questions; the
// groups' prompts are shuffled together. num_groups * prompts_per_group prompts.
std::vector<BenchPrompt> shared_prefix_dataset(const Tokenizer& tokenizer, const SharedPrefixOptions& o,
                                               std::mt19937_64& rng);

}  // namespace lowbit::bench_serving
