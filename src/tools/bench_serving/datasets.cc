#include "tools/bench_serving/datasets.h"

#include <algorithm>

#include "core/error.h"

namespace lowbit::bench_serving {

namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD: a split UTF-8 sequence

int64_t draw_len(int64_t len, double ratio, std::mt19937_64& rng) {
  const int64_t low = std::max<int64_t>(1, int64_t(double(len) * ratio));
  if (low >= len) return std::max<int64_t>(len, 1);
  return std::uniform_int_distribution<int64_t>(low, len)(rng);
}

}  // namespace

RandomText::RandomText(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {
  const auto vocab = int32_t(tokenizer.vocab_size());
  for (int32_t id = 0; id < vocab; ++id) {
    if (tokenizer.is_special(id)) continue;
    std::string piece;
    try {
      piece = tokenizer.decode(std::span<const int32_t>(&id, 1));
    } catch (const Error&) {
      continue;  // a gap in the vocabulary
    }
    if (!piece.empty() && piece.find(kReplacementChar) == std::string::npos) pool_.push_back(id);
  }
  if (pool_.empty()) fail("bench-serving: the tokenizer has no ordinary tokens to build random prompts from");
}

// Decoding random ids and encoding the text again rarely gives the same ids back: neighbours
// merge into longer tokens. So the ids are replaced by the text's own encoding, cut or topped up
// with fresh random ids to the target, until decode and encode agree on the length (a few rounds
// at most in practice; if they never do, the last text is within a token or two of the target).
std::string RandomText::make(int64_t tokens, std::mt19937_64& rng) const {
  if (tokens <= 0) return {};
  std::uniform_int_distribution<size_t> pick(0, pool_.size() - 1);
  std::vector<int32_t> ids;
  auto top_up = [&] {
    while (int64_t(ids.size()) < tokens) ids.push_back(pool_[pick(rng)]);
  };
  top_up();
  std::string text;
  for (int round = 0; round < 16; ++round) {
    text = tokenizer_.decode(ids);
    ids = tokenizer_.encode(text);
    if (int64_t(ids.size()) == tokens) break;
    if (int64_t(ids.size()) > tokens) ids.resize(size_t(tokens));
    top_up();
  }
  return text;
}

std::vector<BenchPrompt> random_dataset(const Tokenizer& tokenizer, const RandomDatasetOptions& o,
                                        std::mt19937_64& rng) {
  if (o.num_prompts <= 0) fail("--num-prompts must be positive (got {})", o.num_prompts);
  if (o.input_len <= 0) fail("--random-input-len must be positive (got {})", o.input_len);
  if (o.output_len <= 0) fail("--random-output-len must be positive (got {})", o.output_len);
  if (!(o.range_ratio >= 0 && o.range_ratio <= 1)) fail("--random-range-ratio must be in [0, 1] (got {})", o.range_ratio);
  const RandomText random_text(tokenizer);
  std::vector<BenchPrompt> prompts(size_t(o.num_prompts));
  for (auto& p : prompts) {  // lengths first, then text: as SGLang draws them
    p.prompt_len = draw_len(o.input_len, o.range_ratio, rng);
    p.output_len = draw_len(o.output_len, o.range_ratio, rng);
  }
  for (auto& p : prompts) {
    p.text = random_text.make(p.prompt_len, rng);
    p.prompt_len = int64_t(tokenizer.encode(p.text).size());
  }
  return prompts;
}

std::vector<BenchPrompt> shared_prefix_dataset(const Tokenizer& tokenizer, const SharedPrefixOptions& o,
                                               std::mt19937_64& rng) {
  if (o.num_groups <= 0) fail("--gsp-num-groups must be positive (got {})", o.num_groups);
  if (o.prompts_per_group <= 0) fail("--gsp-prompts-per-group must be positive (got {})", o.prompts_per_group);
  if (o.system_prompt_len <= 0) fail("--gsp-system-prompt-len must be positive (got {})", o.system_prompt_len);
  if (o.question_len <= 0) fail("--gsp-question-len must be positive (got {})", o.question_len);
  if (o.output_len <= 0) fail("--gsp-output-len must be positive (got {})", o.output_len);
  const RandomText random_text(tokenizer);
  std::vector<BenchPrompt> prompts;
  prompts.reserve(size_t(o.num_groups * o.prompts_per_group));
  for (int64_t g = 0; g < o.num_groups; ++g) {
    const std::string system_prompt = random_text.make(o.system_prompt_len, rng);
    for (int64_t q = 0; q < o.prompts_per_group; ++q) {
      BenchPrompt p;
      p.text = system_prompt + "\n\n" + random_text.make(o.question_len, rng);
      p.prompt_len = int64_t(tokenizer.encode(p.text).size());
      p.output_len = o.output_len;
      prompts.push_back(std::move(p));
    }
  }
  std::shuffle(prompts.begin(), prompts.end(), rng);
  return prompts;
}

}  // namespace lowbit::bench_serving
