// One request inside the engine: its tokens (prompt, then output), what of them the KV cache
// holds, its per-sequence model state, and the output side (sampling, stop conditions, streamed
// text, logprobs) that turns each step's logits into an EngineEvent.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "runtime/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

// What a model keeps per sequence between steps; its two kinds (../shared/design/architecture.md):
// paged KV, which grows with the sequence and whose full pages can be shared with other
// sequences through the prefix cache, and a fixed-size recurrent state (Qwen3-Next's Gated
// DeltaNet layers: a conv window and a state matrix per head), one slot per running sequence,
// never shared. Dense models have only the first.
struct SequenceState {
  std::vector<int32_t> kv_pages;  // page i holds positions [i·page_size, (i+1)·page_size)
  int32_t recurrent_slot = -1;    // -1: the model keeps no recurrent state
  // NEXTN speculative decoding: the MTP head's guess for the token after the pending one (-1:
  // none yet), and this step's verify chunk [pending, draft].
  int32_t draft = -1;
  std::array<int32_t, 2> verify_ids{};
  // NEXTN: positions [0, mtp_done) have the MTP head's KV. Rows not yet run (adaptive NEXTN:
  // plain steps only queue theirs) follow them: the head's ids and the main forward's hidden
  // rows (hidden_size floats each), run, batched, with the rows of the step before the next draft.
  int64_t mtp_done = 0;
  std::vector<int32_t> mtp_ids;
  std::vector<float> mtp_hidden;
};

class Sequence {
 public:
  Sequence(uint64_t id, EngineRequest request, EventSink sink, const Tokenizer& tokenizer,
           std::span<const int32_t> eos_ids, int64_t vocab_size, int64_t context_length);

  uint64_t id() const { return id_; }
  const EngineRequest& request() const { return req_; }
  // Prompt then output tokens: what the model has seen or will see next.
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t prompt_len() const { return prompt_len_; }
  int64_t output_len() const { return int64_t(tokens_.size()) - prompt_len_; }

  SequenceState state;
  int64_t computed = 0;      // leading tokens whose KV is in the cache
  int64_t cached_tokens = 0;  // prompt tokens first served from the prefix cache
  int64_t admitted_order = 0;  // preemption picks the most recently admitted

  // Tokens the next forward must feed: everything not yet computed.
  int64_t pending() const { return int64_t(tokens_.size()) - computed; }

  // After a forward step whose chunk ended at the last known token: picks the next token from
  // logits (a vocab-sized row, modified in place by penalties), appends it, checks stop
  // conditions and sends an event. Returns true when the request is finished.
  bool on_logits(float* logits);
  // Ends the request with finish_reason "abort" or "error" and sends the final event.
  void finish_early(const std::string& reason, const std::string& error = {});
  bool finished() const { return finished_; }

 private:
  void send(bool finished, std::string reason);

  uint64_t id_;
  EngineRequest req_;
  EventSink sink_;
  const Tokenizer& tokenizer_;
  int64_t vocab_, context_length_;
  std::vector<int32_t> tokens_;
  int64_t prompt_len_;
  std::vector<int32_t> stop_ids_;
  std::optional<Sampler> sampler_;  // made at the first sample: vocab-sized, so not for queued requests
  StopStrings stops_;
  Tokenizer::StreamDecoder decoder_;
  EngineEvent pending_;  // tokens and text not yet sent
  std::vector<float> raw_logits_;
  bool finished_ = false;
};

}  // namespace lowbit
