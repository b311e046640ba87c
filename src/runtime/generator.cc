#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/thread_pool.h"
#include "runtime/spec_governor.h"
#include "runtime/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
constexpr int64_t kCapacityQuantum = 256;
}  // namespace

Generator::Generator(DecoderModel& model, const Tokenizer& tokenizer, ThreadPool& pool, int64_t prefill_chunk,
                     Speculation speculation)
    : model_(model),
      tokenizer_(tokenizer),
      pool_(pool),
      prefill_chunk_(std::max<int64_t>(1, prefill_chunk)),
      speculation_(model.has_mtp() ? speculation : Speculation::kOff) {}

void Generator::ensure_capacity(int64_t tokens) {
  const int64_t limit = model_.config().max_position_embeddings;
  if (tokens > limit) fail("prompt plus max_new_tokens is {} tokens, more than the model's {} positions", tokens, limit);
  if (cache_ && cache_->capacity() >= tokens) return;
  const int64_t capacity = std::min(limit, (tokens + kCapacityQuantum - 1) / kCapacityQuantum * kCapacityQuantum);
  cache_.reset();  // free the old one before allocating the new
  cache_.emplace(model_.make_cache(1, capacity));
  cached_.clear();
}

namespace {
// The sequence's draft rows for the MTP head: ids shifted left by one at the same positions.
SequenceChunk draft_chunk(int64_t start, std::span<const int32_t> ids, bool all_logits) {
  SequenceChunk c;
  c.start_pos = start;
  c.tokens = ids;
  c.all_logits = all_logits;
  return c;
}
int32_t argmax(const float* row, int64_t n) { return int32_t(std::max_element(row, row + n) - row); }
}  // namespace

GenerationResult Generator::generate(const GenerationRequest& req, const std::function<void(std::string_view)>& on_text) {
  const auto& cfg = model_.config();
  if (req.prompt.empty()) fail("the prompt is empty: at least one token is needed");
  if (req.max_new_tokens < 1) fail("max_new_tokens must be >= 1, got {}", req.max_new_tokens);
  for (int32_t id : req.prompt)
    if (id < 0 || id >= cfg.vocab_size) fail("prompt token id {} is outside the vocabulary (0..{})", id, cfg.vocab_size - 1);
  const bool speculative = speculation_ != Speculation::kOff;
  // A verify step writes one position past the last emitted token.
  ensure_capacity(int64_t(req.prompt.size()) + req.max_new_tokens + (speculative ? 1 : 0));

  std::vector<int32_t> stop_ids = req.stop_token_ids;
  if (!req.ignore_eos) stop_ids.insert(stop_ids.end(), cfg.eos_token_ids.begin(), cfg.eos_token_ids.end());

  GenerationResult res;
  res.prompt_tokens = int64_t(req.prompt.size());
  // Reuse the cached prefix, but always recompute at least the last prompt token: its logits
  // are needed to pick the first output token. A recurrent state holds the whole previous
  // sequence, so it is reused only when all of it is a prefix; the MTP head's KV is not
  // complete at the end of a request, so with it nothing is reused.
  size_t reuse = 0;
  while (reuse < cached_.size() && reuse + 1 < req.prompt.size() && cached_[reuse] == req.prompt[reuse]) ++reuse;
  if ((model_.has_recurrent_state() && reuse != cached_.size()) || speculative) reuse = 0;
  res.cached_prompt_tokens = int64_t(reuse);
  cached_.resize(reuse);

  Sampler sampler(req.sampling, cfg.vocab_size);
  sampler.start(req.prompt);
  StopStrings stops(req.stop_strings);
  Tokenizer::StreamDecoder decoder(tokenizer_, req.skip_special_tokens);
  // Appends a sampled token; true when the request is finished.
  auto push = [&](int32_t id) {
    res.output_ids.push_back(id);
    if (id >= 0 && size_t(id) >= tokenizer_.vocab_size()) res.unknown_token_ids++;
    if (std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) {
      res.finish_reason = "stop";
      return true;
    }
    const std::string text = stops.push(decoder.push(id));
    if (!text.empty() && on_text) on_text(text);
    if (stops.stopped()) {
      res.finish_reason = "stop";
      return true;
    }
    if (int64_t(res.output_ids.size()) >= req.max_new_tokens) {
      res.finish_reason = "length";
      return true;
    }
    return false;
  };

  auto t0 = Clock::now();
  std::vector<int32_t> shifted;  // the MTP head's ids: t_{p+1} at position p
  int32_t first = -1;
  for (size_t pos = reuse; pos < req.prompt.size(); pos += size_t(prefill_chunk_)) {
    const size_t n = std::min(req.prompt.size() - pos, size_t(prefill_chunk_));
    SequenceChunk chunk{0, int64_t(pos), std::span(req.prompt).subspan(pos, n), false, {}};
    model_.forward({&chunk, 1}, *cache_, pool_, logits_, speculative ? &hidden_ : nullptr);
    cached_.insert(cached_.end(), req.prompt.begin() + long(pos), req.prompt.begin() + long(pos + n));
    if (!speculative) continue;
    const bool last = pos + n == req.prompt.size();
    if (last) first = sampler.sample(logits_.data());
    shifted.assign(req.prompt.begin() + long(pos + 1), req.prompt.begin() + long(pos + n));
    shifted.push_back(last ? first : req.prompt[pos + n]);
    const SequenceChunk draft = draft_chunk(int64_t(pos), shifted, false);
    // Only the prompt's last row gives a draft: earlier chunks just write the head's KV.
    model_.forward_mtp({&draft, 1}, hidden_, *cache_, pool_, draft_logits_, last ? 1 : 0);
  }
  res.prefill_seconds = seconds_since(t0);

  t0 = Clock::now();
  if (!speculative) {
    for (;;) {
      const int32_t id = sampler.sample(logits_.data());
      if (push(id)) break;
      SequenceChunk chunk{0, int64_t(cached_.size()), std::span(&res.output_ids.back(), 1), false, {}};
      model_.forward({&chunk, 1}, *cache_, pool_, logits_);
      cached_.push_back(id);
      res.decode_steps++;
    }
  } else {
    // NEXTN. MTP rows (position, id t_{p+1}, hidden h_p) wait in a queue and run, batched,
    // right before a verify step needs the draft from the last of them; plain steps (when the
    // governor finds drafting does not pay) only add rows, so the head's KV stays complete.
    const int64_t V = cfg.vocab_size, H = cfg.hidden_size;
    int64_t queued_from = int64_t(req.prompt.size()) - 1;  // position of the queue's first row
    shifted.clear();
    std::vector<float> queued_hidden;
    int32_t draft = argmax(draft_logits_.data(), V);  // the prompt's rows already ran
    SpecGovernor governor;
    bool done = push(first);
    int32_t verify_ids[2];
    while (!done) {
      const int64_t n = int64_t(cached_.size());
      const auto step_start = Clock::now();
      if (speculation_ == Speculation::kAdaptive && !governor.speculate()) {
        SequenceChunk chunk{0, n, std::span(&res.output_ids.back(), 1), false, {}};
        model_.forward({&chunk, 1}, *cache_, pool_, logits_, &hidden_);
        res.decode_steps++;
        cached_.push_back(res.output_ids.back());
        const int32_t a = sampler.sample(logits_.data());
        if (shifted.empty()) queued_from = n;
        shifted.push_back(a);
        queued_hidden.insert(queued_hidden.end(), hidden_.begin(), hidden_.begin() + H);
        done = push(a);
        governor.record_plain(seconds_since(step_start));
        continue;
      }
      if (!shifted.empty()) {  // catch the head up; the draft is its last row's argmax
        const SequenceChunk rows = draft_chunk(queued_from, shifted, false);
        model_.forward_mtp({&rows, 1}, queued_hidden, *cache_, pool_, draft_logits_);
        draft = argmax(draft_logits_.data(), V);
        shifted.clear();
        queued_hidden.clear();
      }
      // Verify [pending, draft] at positions n, n + 1 (SequenceChunk::verify).
      verify_ids[0] = res.output_ids.back();
      verify_ids[1] = draft;
      SequenceChunk chunk{0, n, std::span(verify_ids, 2), true, {}};
      chunk.verify = true;
      model_.forward({&chunk, 1}, *cache_, pool_, logits_, &hidden_);
      res.decode_steps++;
      res.draft_tokens++;
      const int32_t a0 = sampler.sample(logits_.data());
      const bool accepted = a0 == draft;
      cached_.push_back(verify_ids[0]);
      done = push(a0);
      queued_from = n;
      shifted.push_back(a0);
      if (accepted) {
        res.accepted_draft_tokens++;
        cached_.push_back(a0);
        if (!done) {
          const int32_t a1 = sampler.sample(logits_.data() + V);
          shifted.push_back(a1);
          done = push(a1);
        }
      } else if (model_.has_recurrent_state()) {
        cache_->recurrent().rollback(0, n + 1);  // the state after t_n alone
      }
      // The rows at n (and n + 1): the emitted ids with the verify's hidden rows.
      queued_hidden.assign(hidden_.begin(), hidden_.begin() + int64_t(shifted.size()) * H);
      governor.record_spec(seconds_since(step_start), accepted);
    }
  }
  if (!stops.stopped()) {
    const auto flush = [&](const std::string& text) {
      if (!text.empty() && on_text) on_text(text);
    };
    flush(stops.push(decoder.flush()));
    flush(stops.flush());
  }
  res.decode_seconds = seconds_since(t0);
  res.text = stops.text();
  return res;
}

}  // namespace lowbit
