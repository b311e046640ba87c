// The engine's step: which requests run, which tokens each feeds, where their KV goes.
//
// Each step() admits waiting requests while the running set has room and the KV budget can
// hold their remaining prompt (a prompt first takes the longest prefix the radix cache holds),
// then builds one ragged batch: one token for every decoding request, and prompt chunks
// (at most chunked_prefill_size per request, max_prefill_tokens in all) for prefilling ones,
// so a long prompt advances a chunk per step while the others keep streaming. While requests
// decode, the step's prompt tokens are further cut, from measured step times, so the step takes
// at most max_step_slowdown times a decode-only step (inter-token latency stays bounded). Pages are taken
// as a sequence grows; when none are free, unreferenced prefix-cache pages are evicted, and
// then the most recently admitted request is preempted: its full pages go to the prefix cache,
// its references are dropped, and it waits at the head of the queue to be resumed (its tokens
// and sampler state are kept, the prefix is matched again or recomputed).
//
// Tokens of one sequence are cut and computed the same way whatever else is in the batch
// (models/decoder.h, kernels/attention.h), so batching does not change greedy outputs.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "models/decoder.h"
#include "runtime/draft_rows.h"
#include "runtime/engine.h"
#include "runtime/kv_pages.h"
#include "runtime/radix_cache.h"
#include "runtime/sequence.h"
#include "runtime/spec_governor.h"

namespace lowbit {

class Scheduler {
 public:
  Scheduler(DecoderModel& model, ThreadPool& pool, const EngineConfig& config, int64_t num_pages);
  ~Scheduler();

  void add(std::unique_ptr<Sequence> seq);  // queued at the back
  void cancel(uint64_t id);                 // finishes it with "abort" and frees its pages now
  void abort_all(const std::string& reason, const std::string& error = {});
  bool idle() const { return waiting_.empty() && running_.empty(); }
  int64_t queued() const { return int64_t(waiting_.size()); }
  // One forward step. Throws only on an engine fault (the caller aborts everything).
  void step();
  void fill_stats(EngineStats& s) const;

 private:
  void admit();
  // Pages for positions [0, tokens) of seq; false when none can be found even by eviction.
  bool reserve(Sequence& seq, int64_t tokens);
  bool make_room(int64_t pages);  // frees pages by evicting unreferenced cache pages
  void preempt(size_t index);     // running_[index] back to the head of the queue
  void release(Sequence& seq);    // caches its full pages, drops its references
  void finish(size_t index);      // release, then erase from running_
  void cache_prefix(Sequence& seq);
  // Prompt tokens this step may take, given whether requests are decoding (max_step_slowdown).
  int64_t prefill_budget(bool decoding) const;
  void record_step_time(double seconds, int64_t decode_tokens, int64_t prefill_tokens);
  // NEXTN: after a verify chunk (logits: its two rows, first_hidden: its first hidden row),
  // emits the accepted tokens, rolls a rejected draft back and queues the draft extend.
  void verified(Sequence& seq, float* logits, int64_t first_hidden);
  // NEXTN: the MTP rows of seq's positions start.. (ids, hidden rows from first_hidden of this
  // step's hidden_). At the sequence's frontier (its next step decodes) they give it a draft when
  // the next step speculates; otherwise they wait in its state until one does (only the head's
  // KV needs them, and then they run batched, like generate's queue).
  void mtp_rows(Sequence& seq, int64_t start, std::span<const int32_t> ids, int64_t first_hidden, bool frontier);
  // Whether the next step verifies drafts: decided once per step (the adaptive governor).
  bool speculate_next();

  DecoderModel& model_;
  ThreadPool& pool_;
  EngineConfig config_;
  KvCache cache_;
  PageAllocator pages_;
  std::optional<RadixCache> radix_;
  int64_t chunk_align_ = 1;                 // recurrent models: prompt chunks end on this grid (plan_chunk)
  std::vector<int32_t> free_state_slots_;  // recurrent models: slots of cache_.recurrent() not in use
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  int64_t admissions_ = 0;
  std::vector<SequenceChunk> batch_;
  std::vector<Sequence*> batch_seqs_;
  std::vector<float> logits_, hidden_;  // hidden_: final-normed rows, for the MTP head
  DraftRows draft_rows_;
  SpecGovernor governor_;
  std::optional<bool> speculate_next_;  // this step's decision for the next, once made
  EngineStats counters_;
  // Exponential moving averages of step timings: a decode-only step, and the added seconds per
  // prompt token (0 until measured).
  double decode_step_seconds_ = 0, prefill_token_seconds_ = 0;
};

}  // namespace lowbit
