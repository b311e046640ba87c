#include "runtime/sequence.h"

#include <algorithm>
#include <random>

#include "runtime/logprobs.h"

namespace lowbit {

namespace {
// A request without a seed samples from fresh entropy, as OpenAI's API does.
SamplingParams seeded(SamplingParams p, bool has_seed) {
  if (!has_seed) p.seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
  return p;
}
}  // namespace

Sequence::Sequence(uint64_t id, EngineRequest request, EventSink sink, const Tokenizer& tokenizer,
                   std::span<const int32_t> eos_ids, int64_t vocab_size, int64_t context_length)
    : id_(id),
      req_(std::move(request)),
      sink_(std::move(sink)),
      tokenizer_(tokenizer),
      vocab_(vocab_size),
      context_length_(context_length),
      tokens_(req_.prompt),
      prompt_len_(int64_t(req_.prompt.size())),
      stop_ids_(req_.stop_token_ids),
      stops_(req_.stop_strings),
      decoder_(tokenizer, req_.skip_special_tokens) {
  if (!req_.ignore_eos) stop_ids_.insert(stop_ids_.end(), eos_ids.begin(), eos_ids.end());
  req_.sampling = seeded(req_.sampling, req_.has_seed);
  req_.prompt.clear();  // tokens_ holds it; the engine keeps one copy per request
  req_.prompt.shrink_to_fit();
}

bool Sequence::on_logits(float* logits) {
  // Logprobs are of the raw distribution: keep the row before the sampler's penalties.
  const bool want_logprobs = req_.top_logprobs >= 0;
  if (want_logprobs) raw_logits_.assign(logits, logits + vocab_);
  if (!sampler_) {
    sampler_.emplace(req_.sampling, vocab_);
    sampler_->start(std::span(tokens_).first(size_t(prompt_len_)));
  }
  const int32_t id = sampler_->sample(logits);
  OutputToken out;
  out.id = id;
  if (want_logprobs) compute_logprobs(raw_logits_.data(), vocab_, id, req_.top_logprobs, out);
  tokens_.push_back(id);
  pending_.tokens.push_back(std::move(out));

  if (std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end()) {
    pending_.matched_stop_token = id;
    pending_.text += stops_.push(decoder_.flush());
    pending_.text += stops_.flush();
    send(true, "stop");
    return true;
  }
  pending_.text += stops_.push(decoder_.push(id));
  if (stops_.stopped()) {
    pending_.matched_stop_string = stops_.matched();
    send(true, "stop");
    return true;
  }
  if (output_len() >= req_.max_new_tokens || int64_t(tokens_.size()) >= context_length_) {
    pending_.text += stops_.push(decoder_.flush());
    if (!stops_.stopped()) pending_.text += stops_.flush();
    if (stops_.stopped()) pending_.matched_stop_string = stops_.matched();
    send(true, stops_.stopped() ? "stop" : "length");
    return true;
  }
  send(false, {});
  return false;
}

void Sequence::finish_early(const std::string& reason, const std::string& error) {
  if (finished_) return;
  pending_.error = error;
  send(true, reason);
}

void Sequence::send(bool finished, std::string reason) {
  finished_ = finished;
  pending_.finished = finished;
  pending_.finish_reason = std::move(reason);
  pending_.prompt_tokens = prompt_len_;
  pending_.cached_tokens = cached_tokens;
  pending_.completion_tokens = output_len();
  if (sink_) sink_(std::move(pending_));
  pending_ = EngineEvent{};
}

}  // namespace lowbit
