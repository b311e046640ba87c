// The serving engine: one scheduler thread runs every admitted request on one model with
// continuous batching. Requests join and leave the running batch between forward steps;
// prompts are prefilled in chunks mixed with the decode tokens of running requests, so a long
// prompt never stalls running streams; KV lives in fixed-size pages from a budget set at start
// (runtime/kv_pages), shared between requests through a radix-tree prefix cache; when pages
// run out, the newest running request is preempted (its pages freed, its tokens kept) and
// resumed later by recomputing its prefix. Nothing here knows HTTP: server/ turns requests into
// EngineRequests and events into bytes.
//
// Threads: submit() and cancel() may be called from any thread. Each request's sink is called
// on the engine thread, in order, and must not block (hand the event to your own thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/sampler.h"

namespace lowbit {

class DecoderModel;
class Tokenizer;
class ThreadPool;

struct EngineConfig {
  int64_t max_running_requests = 0;  // 0: from the KV budget (at most 64)
  int64_t max_total_tokens = 0;      // KV budget in tokens; 0: from mem_fraction_static
  double mem_fraction_static = 0.0;  // fraction of MemAvailable for weights+KV; 0: 0.5 of what is left after weights
  int64_t context_length = 0;        // 0: the model's max_position_embeddings
  int64_t chunked_prefill_size = 512;  // prompt tokens of one request per step
  int64_t max_prefill_tokens = 2048;   // prompt tokens of all requests per step
  // While requests are decoding, a step's prompt tokens are cut so the step takes at most this
  // many times a decode-only step (from measured step times), so a long prompt does not stall
  // running streams: their inter-token latency stays within about this factor. 0: off (prompt
  // chunks are only bounded by the two sizes above, as SGLang's). The bound trades streams'
  // ITL for prompts' TTFT and throughput (small chunks re-read every weight): SmolLM2 BF16 on
  // Zen4, 8 clients of 512 in / 128 out: 2.5 gave 83-94 tok/s and a median TTFT of 3.2-5.8 s,
  // 4 gave 113 tok/s and 0.87 s, 0 gave 124-131 tok/s and 2.3-2.5 s (one long step per prompt
  // batch). 2.5 keeps ITL p99 within 4x the median while a 4096-token prompt is prefilled.
  double max_step_slowdown = 4.0;
  bool enable_prefix_cache = true;
  // NEXTN: draft only while the measured acceptance and step times say it pays
  // (runtime/spec_governor.h, one governor for the batch); false: every decode step drafts.
  bool speculative_adaptive = true;
  int64_t page_size = 32;              // tokens per KV page (power of two, multiple of 32)
  int64_t max_queued_requests = 4096;  // submit() beyond this throws EngineBusy (HTTP 503)
  // stats() also reports tokens per expert of every MoE layer (SGLang's
  // --enable-expert-distribution-metrics): one series per layer and expert, so off by default.
  bool expert_distribution_metrics = false;
  // Called once, on the engine thread, when the model can run no more steps (a tensor-parallel
  // rank died: DecoderModel::failed()), after every request got its error. The engine then
  // stops; a server should exit non-zero.
  std::function<void(const std::string& message)> on_fatal;
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  bool has_seed = false;  // false: sampling.seed is ignored and fresh entropy is used
  int64_t max_new_tokens = 256;
  std::vector<int32_t> stop_token_ids;  // added to the model's eos ids (unless ignore_eos)
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;
  bool skip_special_tokens = true;
  // -1: no logprobs. 0: the chosen token's logprob. k > 0: also the k most likely tokens
  // (at most 20). Logprobs are of the model's distribution (log-softmax of the raw logits,
  // before penalties and temperature), as vLLM and SGLang return them.
  int top_logprobs = -1;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

struct OutputToken {
  int32_t id = 0;
  float logprob = 0.0f;             // set when top_logprobs >= 0
  std::vector<TokenLogprob> top;    // top_logprobs entries, most likely first
};

struct EngineEvent {
  std::vector<OutputToken> tokens;  // tokens generated since the previous event
  std::string text;                 // text now safe to show (UTF-8 complete, stop strings held back)
  bool finished = false;
  // When finished: "stop" (eos, stop token or stop string), "length", "abort" (cancelled or
  // shutdown), "error" (error holds the message).
  std::string finish_reason;
  std::string error;
  int32_t matched_stop_token = -1;  // the stop token id that ended it, if any
  std::string matched_stop_string;  // the stop string that ended it, if any
  // Counts, set on every event: prompt tokens, of which served from the prefix cache, and
  // output tokens so far (including a stop token).
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
};

using EventSink = std::function<void(EngineEvent&&)>;

// submit() when the queue is full: the server answers 503.
class EngineBusy : public Error {
 public:
  using Error::Error;
};

struct EngineStats {
  int64_t running = 0, queued = 0;
  int64_t kv_pages_used = 0, kv_pages_total = 0, page_size = 0;
  // Prefix cache: pages it holds (used_pages counts them too), tokens looked up and found.
  int64_t prefix_cached_pages = 0, prefix_queried_tokens = 0, prefix_hit_tokens = 0;
  int64_t prompt_tokens_total = 0, cached_tokens_total = 0, generation_tokens_total = 0;
  int64_t requests_finished_total = 0, requests_aborted_total = 0, preemptions_total = 0;
  int64_t forward_steps_total = 0;
  // NEXTN speculative decoding: drafts verified and accepted; decode-only steps that verified
  // drafts and that did not (the adaptive governor found drafting did not pay).
  int64_t spec_draft_tokens_total = 0, spec_accepted_tokens_total = 0;
  int64_t spec_verify_steps_total = 0, spec_plain_steps_total = 0;
  // With EngineConfig::expert_distribution_metrics: tokens routed to each expert since load,
  // per MoE layer.
  struct ExpertTokens {
    int64_t layer = 0;
    std::vector<int64_t> tokens;
  };
  std::vector<ExpertTokens> expert_tokens;
};

class Engine {
 public:
  // Sizes the KV budget (throws Error with a clear message when the flags contradict or do not
  // fit) and starts the engine thread.
  Engine(DecoderModel& model, const Tokenizer& tokenizer, ThreadPool& pool, EngineConfig config);
  ~Engine();  // shutdown(false)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Checks the request (prompt ids in the vocabulary, prompt + max_new_tokens within the
  // context length, sampling values) and throws Error naming the field when it is invalid, or
  // EngineBusy when the queue is full; else queues it and returns its id. The sink gets one
  // event per step with new tokens or text and exactly one final event (finished = true).
  uint64_t submit(EngineRequest request, EventSink sink);
  // Ends a request (queued or running) at the next step boundary, frees its pages at once and
  // sends its final event with finish_reason "abort". Unknown or finished ids are ignored.
  void cancel(uint64_t id);
  // Stops taking requests (submit throws EngineBusy). drain: finish running and queued requests;
  // else abort them. Returns when the engine thread has ended. Idempotent.
  void shutdown(bool drain);

  EngineStats stats() const;
  const EngineConfig& config() const { return config_; }  // effective values after sizing
  int64_t context_length() const { return config_.context_length; }

 private:
  struct Impl;
  EngineConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit
