#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "kernels/gdn.h"

namespace lowbit {

namespace {
int64_t pages_for(int64_t tokens, int64_t page_size) { return (tokens + page_size - 1) / page_size; }

// Tokens to feed from `pending` under `limit`. A single token takes the attention kernels'
// decode path and several their prefill path, which round differently; so a sequence with
// more than one token pending never feeds exactly one, nor leaves exactly one behind: then
// every token's path depends only on the sequence (prompt or output), never on the chunk
// size, the budget or the prefix cache, and greedy outputs do not depend on batching.
//
// Recurrent models (align > 1) also end every cut chunk on a multiple of `align` positions:
// the delta rule runs whole aligned blocks in its chunked form and the rest token by token
// (kernels/gdn.h), so a sequence's blocks are the same however its prompt was cut.
int64_t plan_chunk(int64_t pending, int64_t limit, int64_t start, int64_t align) {
  if (pending <= 1) return pending;
  int64_t n = std::clamp<int64_t>(limit, 2, pending);
  if (align > 1 && n < pending) {
    const int64_t end = std::max((start + n) / align, start / align + 1) * align;
    n = std::min(end - start, pending);
  }
  if (pending - n == 1) n = align > 1 ? pending : n >= 3 ? n - 1 : n + 1;
  return n;
}
}  // namespace

Scheduler::Scheduler(DecoderModel& model, ThreadPool& pool, const EngineConfig& config, int64_t num_pages)
    : model_(model),
      pool_(pool),
      config_(config),
      cache_(model.make_cache(num_pages, config.page_size, config.max_running_requests)),
      pages_(num_pages) {
  // Engine's size_config turns the prefix cache off for recurrent models (no KV prefix to share).
  if (model.has_recurrent_state()) config_.enable_prefix_cache = false;
  if (config_.enable_prefix_cache) radix_.emplace(pages_, config_.page_size);
  if (model.has_recurrent_state()) chunk_align_ = kGdnChunkTokens;
  for (int32_t s = int32_t(cache_.recurrent().num_slots()); s-- > 0;) free_state_slots_.push_back(s);
}

Scheduler::~Scheduler() { abort_all("abort"); }

void Scheduler::add(std::unique_ptr<Sequence> seq) { waiting_.push_back(std::move(seq)); }

void Scheduler::cancel(uint64_t id) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if ((*it)->id() == id) {
      (*it)->finish_early("abort");
      counters_.requests_aborted_total++;
      waiting_.erase(it);
      return;
    }
  for (size_t i = 0; i < running_.size(); ++i)
    if (running_[i]->id() == id) {
      running_[i]->finish_early("abort");
      counters_.requests_aborted_total++;
      finish(i);
      return;
    }
}

void Scheduler::abort_all(const std::string& reason, const std::string& error) {
  for (auto& s : running_) {
    s->finish_early(reason, error);
    release(*s);
  }
  for (auto& s : waiting_) s->finish_early(reason, error);
  counters_.requests_aborted_total += int64_t(running_.size() + waiting_.size());
  running_.clear();
  waiting_.clear();
}

bool Scheduler::make_room(int64_t pages) {
  const int64_t missing = pages - pages_.free_pages();
  if (missing > 0 && radix_) radix_->evict(missing);
  return pages_.free_pages() >= pages;
}

bool Scheduler::reserve(Sequence& seq, int64_t tokens) {
  auto& own = seq.state.kv_pages;
  const int64_t need = pages_for(tokens, config_.page_size) - int64_t(own.size());
  if (need <= 0) return true;
  return make_room(need) && pages_.allocate(need, own);
}

void Scheduler::cache_prefix(Sequence& seq) {
  if (radix_ && seq.computed >= config_.page_size)
    radix_->insert(std::span(seq.tokens()).first(size_t(seq.computed)), seq.state.kv_pages);
}

void Scheduler::release(Sequence& seq) {
  cache_prefix(seq);
  for (int32_t p : seq.state.kv_pages) pages_.unref(p);
  seq.state.kv_pages.clear();
  if (seq.state.recurrent_slot >= 0) free_state_slots_.push_back(seq.state.recurrent_slot);
  seq.state.draft = -1;  // a resumed sequence drafts again after its recomputed prompt
  seq.state.mtp_done = 0;     // and its MTP rows, queued or run, are recomputed with it
  seq.state.mtp_ids.clear();
  seq.state.mtp_hidden.clear();
  seq.state.recurrent_slot = -1;  // a resumed sequence restarts at position 0, from a zeroed slot
  seq.computed = 0;
}

void Scheduler::finish(size_t index) {
  release(*running_[index]);
  running_.erase(running_.begin() + long(index));
}

void Scheduler::preempt(size_t index) {
  auto seq = std::move(running_[index]);
  running_.erase(running_.begin() + long(index));
  release(*seq);
  counters_.preemptions_total++;
  waiting_.push_front(std::move(seq));
}

void Scheduler::admit() {
  // Pages every running request may need in its next steps: one each, so decode keeps moving.
  int64_t reserved = int64_t(running_.size());
  while (!waiting_.empty() && int64_t(running_.size()) < config_.max_running_requests) {
    Sequence& seq = *waiting_.front();
    const int64_t n = int64_t(seq.tokens().size());
    // Match all but the last two tokens: the last one's logits are needed to pick the next
    // token, and at least two are left so they take the prefill path (plan_chunk).
    std::vector<int32_t> matched;
    const int64_t hit = radix_ && n > 2 ? radix_->match(std::span(seq.tokens()).first(size_t(n - 2)), matched) : 0;
    const int64_t need = pages_for(n, config_.page_size) - int64_t(matched.size()) + 1;
    const int64_t available = pages_.free_pages() + (radix_ ? radix_->evictable_pages() : 0);
    if (need + reserved > available && !running_.empty()) {
      for (int32_t p : matched) pages_.unref(p);
      break;  // wait for running requests to finish or give pages back
    }
    seq.state.kv_pages = std::move(matched);
    seq.computed = hit;
    seq.state.mtp_done = hit;  // shared pages carry the MTP head's KV too
    if (!cache_.recurrent().empty()) {  // one slot per running request: never short here
      seq.state.recurrent_slot = free_state_slots_.back();
      free_state_slots_.pop_back();
    }
    if (seq.output_len() == 0) {
      seq.cached_tokens = hit;
      counters_.prompt_tokens_total += n;
      counters_.cached_tokens_total += hit;
    }
    seq.admitted_order = admissions_++;
    reserved += need;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

int64_t Scheduler::prefill_budget(bool decoding) const {
  if (!decoding || config_.max_step_slowdown <= 0 || prefill_token_seconds_ <= 0 || decode_step_seconds_ <= 0)
    return config_.max_prefill_tokens;
  // The prompt tokens that add (slowdown − 1) decode steps' worth of time; at least two (the
  // fewest plan_chunk cuts), so a prompt always advances. A small chunk costs more per token
  // than a large one (SmolLM2 at depth 4000: 4.6 ms per token in 16-token chunks, 2.6 in 512),
  // so a per-token estimate cannot see a floor's overshoot, and a larger floor broke the bound: with 16,
  // a 4096-token prompt beside 4 streams (SmolLM2, BF16, Zen4) pushed their ITL p99 to 5.9x
  // the median at a bound of 2.5; with 2, 3.4-4.3x.
  constexpr int64_t kMinPrefillTokens = 2;
  const double extra = (config_.max_step_slowdown - 1.0) * decode_step_seconds_;
  const int64_t n = int64_t(extra / prefill_token_seconds_);
  return std::clamp<int64_t>(n, kMinPrefillTokens, config_.max_prefill_tokens);
}

void Scheduler::record_step_time(double seconds, int64_t decode_tokens, int64_t prefill_tokens) {
  // EMAs over recent steps: the machine's speed drifts (other processes, caches).
  constexpr double kWeight = 0.2;
  auto ema = [](double& avg, double x) { avg = avg == 0 ? x : avg + kWeight * (x - avg); };
  if (prefill_tokens == 0) {
    if (decode_tokens > 0) ema(decode_step_seconds_, seconds);
  } else if (decode_tokens == 0 || decode_step_seconds_ > 0) {
    const double base = decode_tokens > 0 ? decode_step_seconds_ : 0.0;
    ema(prefill_token_seconds_, std::max(seconds - base, 0.0) / double(prefill_tokens));
  }
}

void Scheduler::step() {
  admit();
  batch_.clear();
  batch_seqs_.clear();
  bool decoding = false;
  for (const auto& s : running_) decoding = decoding || s->pending() == 1;
  int64_t prefill_budget = this->prefill_budget(decoding);
  int64_t decode_tokens = 0, prefill_tokens = 0;
  for (size_t i = 0; i < running_.size();) {
    Sequence& seq = *running_[i];
    const int64_t pending = seq.pending();
    if (pending > 1 && prefill_budget <= 0) {
      ++i;
      continue;  // this step's prefill budget is spent
    }
    // NEXTN: a decoding request verifies [pending token, draft] (SequenceChunk::verify).
    const bool verify = model_.has_mtp() && pending == 1 && seq.state.draft >= 0;
    const int64_t n = verify ? 2
                             : plan_chunk(pending, std::min(config_.chunked_prefill_size, prefill_budget),
                                          seq.computed, chunk_align_);
    if (!reserve(seq, seq.computed + n)) {
      if (running_.size() == 1) {  // alone and still no room: the budget cannot hold it
        seq.finish_early("error", "the KV cache cannot hold this request");
        counters_.requests_aborted_total++;
        finish(i);
        break;
      }
      // Out of pages: preempt the most recently admitted request. Requests after i are not in
      // the batch yet, so the batch stays valid; if seq itself is the newest, it waits.
      const size_t victim = running_.size() - 1;
      preempt(victim);
      if (victim == i) break;
      continue;  // retry seq with the victim's pages free
    }
    if (pending > 1) {
      prefill_budget -= n;
      prefill_tokens += n;
    } else {
      decode_tokens += n;
    }
    const std::span<const int32_t> toks(seq.tokens());
    if (verify) seq.state.verify_ids = {seq.tokens().back(), seq.state.draft};
    batch_.push_back({.slot = 0,
                      .start_pos = seq.computed,
                      .tokens = verify ? std::span<const int32_t>(seq.state.verify_ids)
                                       : toks.subspan(size_t(seq.computed), size_t(n)),
                      .all_logits = verify,
                      .pages = seq.state.kv_pages,
                      .recurrent_slot = seq.state.recurrent_slot,
                      .verify = verify});
    batch_seqs_.push_back(&seq);
    ++i;
  }
  if (batch_.empty()) return;

  const auto t0 = std::chrono::steady_clock::now();
  const bool speculative = model_.has_mtp();
  const int64_t drafts_before = counters_.spec_draft_tokens_total, accepted_before = counters_.spec_accepted_tokens_total;
  speculate_next_.reset();
  model_.forward(batch_, cache_, pool_, logits_, speculative ? &hidden_ : nullptr);
  counters_.forward_steps_total++;

  const int64_t vocab = model_.config().vocab_size;
  draft_rows_.clear();
  int64_t row = 0, first_hidden = 0;  // this chunk's first logits row and first token
  for (size_t r = 0; r < batch_.size(); ++r) {
    Sequence& seq = *batch_seqs_[r];
    const SequenceChunk& ch = batch_[r];
    const int64_t n = int64_t(ch.tokens.size()), start = seq.computed;
    float* logits = logits_.data() + row * vocab;
    row += ch.all_logits ? n : 1;
    first_hidden += n;
    if (ch.verify) {
      verified(seq, logits, first_hidden - n);
      continue;
    }
    const bool prompt_done_before = seq.computed >= seq.prompt_len();
    seq.computed += n;
    bool finished = false;
    if (seq.computed == int64_t(seq.tokens().size())) {
      if (!prompt_done_before) cache_prefix(seq);  // share the prompt with requests that follow
      finished = seq.on_logits(logits);
      if (finished) counters_.requests_finished_total++;
      counters_.generation_tokens_total++;
    }  // else more prompt to prefill
    // The MTP rows of these positions: ids shifted by one, the last one just sampled or the
    // next prompt token; the draft comes from the last row once the prompt is done.
    if (speculative && !finished)
      mtp_rows(seq, start, std::span(seq.tokens()).subspan(size_t(start + 1), size_t(n)), first_hidden - n,
               seq.computed == int64_t(seq.tokens().size()) - 1);
  }
  const bool drafted = speculate_next_.value_or(false);
  if (speculative) draft_rows_.run(model_, cache_, pool_);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  record_step_time(seconds, decode_tokens, prefill_tokens);
  if (speculative && prefill_tokens == 0 && decode_tokens > 0) {
    // The governor compares decode-only steps: a step that verified drafts or made the next
    // ones costs a speculative step's time; one that did neither, a plain step's.
    const int64_t drafts = counters_.spec_draft_tokens_total - drafts_before;
    if (drafts > 0 || drafted) {
      governor_.record_spec(seconds, drafts, counters_.spec_accepted_tokens_total - accepted_before);
      if (drafts > 0) counters_.spec_verify_steps_total++;
    } else {
      governor_.record_plain(seconds);
      counters_.spec_plain_steps_total++;
    }
  }
  for (size_t i = running_.size(); i-- > 0;)
    if (running_[i]->finished()) finish(i);
}

void Scheduler::verified(Sequence& seq, float* logits, int64_t first_hidden) {
  // ../shared/spec/qwen3-moe-next.md §3.3 step 4: sample from the target at n; the one-hot draft
  // is accepted iff that token is it, and then the target at n + 1 gives one more token.
  const int64_t n = seq.computed, vocab = model_.config().vocab_size;
  const int32_t draft = seq.state.draft;
  counters_.spec_draft_tokens_total++;
  seq.computed = n + 1;
  bool finished = seq.on_logits(logits);
  counters_.generation_tokens_total++;
  const bool accepted = seq.tokens().back() == draft;
  if (accepted) {
    counters_.spec_accepted_tokens_total++;
    seq.computed = n + 2;
    if (!finished) {
      finished = seq.on_logits(logits + vocab);
      counters_.generation_tokens_total++;
    }
  } else if (!cache_.recurrent().empty()) {
    cache_.recurrent().rollback(seq.state.recurrent_slot, n + 1);  // the state after the pending token alone
  }
  if (finished) {
    counters_.requests_finished_total++;
    return;
  }
  // Draft extend: MTP rows at n (and n + 1) with the emitted ids and the verify's hidden rows.
  mtp_rows(seq, n, std::span(seq.tokens()).subspan(size_t(n + 1), accepted ? 2 : 1), first_hidden, true);
}

bool Scheduler::speculate_next() {
  if (!speculate_next_) speculate_next_ = !config_.speculative_adaptive || governor_.speculate();
  return *speculate_next_;
}

void Scheduler::mtp_rows(Sequence& seq, int64_t start, std::span<const int32_t> ids, int64_t first_hidden,
                         bool frontier) {
  const int64_t H = model_.config().hidden_size;
  const std::span<const float> hidden(hidden_.data() + first_hidden * H, ids.size() * size_t(H));
  SequenceState& st = seq.state;
  const bool wait = frontier && !speculate_next();
  if (st.mtp_ids.empty() && !wait) {
    draft_rows_.add(seq, start, ids, hidden, frontier);
    return;
  }
  // Queued rows start at mtp_done (DraftRows::add checks the head's rows follow each other).
  if (start != st.mtp_done + int64_t(st.mtp_ids.size()))
    fail("NEXTN: MTP rows of request {} start at position {}, after queued rows ending at {}", seq.id(), start,
         st.mtp_done + int64_t(st.mtp_ids.size()));
  st.mtp_ids.insert(st.mtp_ids.end(), ids.begin(), ids.end());
  st.mtp_hidden.insert(st.mtp_hidden.end(), hidden.begin(), hidden.end());
  if (wait) {
    st.draft = -1;  // the next step decodes plainly
    return;
  }
  draft_rows_.add(seq, st.mtp_done, st.mtp_ids, st.mtp_hidden, frontier);
  st.mtp_ids.clear();
  st.mtp_hidden.clear();
}

void Scheduler::fill_stats(EngineStats& s) const {
  s = counters_;
  s.running = int64_t(running_.size());
  s.queued = int64_t(waiting_.size());
  s.kv_pages_total = pages_.total_pages();
  s.kv_pages_used = pages_.used_pages();
  s.page_size = config_.page_size;
  if (radix_) {
    s.prefix_cached_pages = radix_->cached_pages();
    s.prefix_queried_tokens = radix_->queried_tokens();
    s.prefix_hit_tokens = radix_->hit_tokens();
  }
}

}  // namespace lowbit
