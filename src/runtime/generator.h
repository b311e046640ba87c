// Runs one request at a time on a model: chunked prefill (reusing the longest cached prefix
// of the previous request, which makes multi-turn chat cheap), then token-by-token decode with
// sampling, stop tokens, stop strings and streamed UTF-8-complete text.
//
// With a model whose MTP head is loaded (Qwen3-Next, NEXTN: 1 step, top-1, 2 draft tokens;
// ../shared/spec/qwen3-moe-next.md §3.3), each decode step verifies [pending token, MTP draft]
// in one forward, accepts the draft when the sampled token equals it, rolls the recurrent state
// back otherwise, and extends the MTP head over the accepted tokens for the next draft. The draft
// is one-hot, so "sample from the target, accept iff it equals the draft" is the standard
// rejection rule: the output distribution is unchanged, and since the verify pass computes what
// plain decode steps would (SequenceChunk::verify) and the sampler is called for the same tokens
// in the same order, outputs are identical to plain decoding, greedy or seeded.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/decoder.h"
#include "runtime/sampler.h"

namespace lowbit {

class Tokenizer;
class ThreadPool;

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_new_tokens = 256;
  std::vector<int32_t> stop_token_ids;  // added to the model's eos ids (unless ignore_eos)
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;
  bool skip_special_tokens = true;
};

struct GenerationResult {
  std::vector<int32_t> output_ids;  // includes the stop token when one ended generation
  std::string text;                 // excludes stop tokens and stop strings
  std::string finish_reason;        // "stop" or "length"
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0, decode_steps = 0;
  // NEXTN speculative decoding: draft tokens proposed and accepted (each verify step proposes
  // one; acceptance rate = accepted / drafted; tokens per step = 1 + that rate).
  int64_t draft_tokens = 0, accepted_draft_tokens = 0;
  // Generated ids past the tokenizer's vocabulary (the model's padding rows): decoded as nothing.
  int64_t unknown_token_ids = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

class Generator {
 public:
  // How a model with its MTP head loaded decodes: kAdaptive drafts while it pays
  // (SpecGovernor), kAlways at every step, kOff never.
  enum class Speculation { kOff, kAdaptive, kAlways };
  Generator(DecoderModel& model, const Tokenizer& tokenizer, ThreadPool& pool, int64_t prefill_chunk = 512,
            Speculation speculation = Speculation::kAdaptive);
  GenerationResult generate(const GenerationRequest& request,
                            const std::function<void(std::string_view)>& on_text = {});
  // Bytes of KV cache currently allocated (grown in quanta as requests need it).
  size_t cache_bytes() const { return cache_ ? cache_->bytes() : 0; }

 private:
  void ensure_capacity(int64_t tokens);

  DecoderModel& model_;
  const Tokenizer& tokenizer_;
  ThreadPool& pool_;
  int64_t prefill_chunk_;
  Speculation speculation_;
  std::optional<KvCache> cache_;
  std::vector<int32_t> cached_;  // tokens whose K/V are in slot 0
  std::vector<float> logits_, hidden_, draft_logits_;
};

}  // namespace lowbit
