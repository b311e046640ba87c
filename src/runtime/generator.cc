#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/thread_pool.h"
#include "runtime/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
constexpr int64_t kCapacityQuantum = 256;
}  // namespace

Generator::Generator(DecoderModel& model, const Tokenizer& tokenizer, ThreadPool& pool, int64_t prefill_chunk)
    : model_(model), tokenizer_(tokenizer), pool_(pool), prefill_chunk_(std::max<int64_t>(1, prefill_chunk)) {}

void Generator::ensure_capacity(int64_t tokens) {
  const int64_t limit = model_.config().max_position_embeddings;
  if (tokens > limit) fail("prompt plus max_new_tokens is {} tokens, more than the model's {} positions", tokens, limit);
  if (cache_ && cache_->capacity() >= tokens) return;
  const int64_t capacity = std::min(limit, (tokens + kCapacityQuantum - 1) / kCapacityQuantum * kCapacityQuantum);
  cache_.reset();  // free the old one before allocating the new
  cache_.emplace(model_.make_cache(1, capacity));
  cached_.clear();
}

GenerationResult Generator::generate(const GenerationRequest& req, const std::function<void(std::string_view)>& on_text) {
  const auto& cfg = model_.config();
  if (req.prompt.empty()) fail("the prompt is empty: at least one token is needed");
  if (req.max_new_tokens < 1) fail("max_new_tokens must be >= 1, got {}", req.max_new_tokens);
  for (int32_t id : req.prompt)
    if (id < 0 || id >= cfg.vocab_size) fail("prompt token id {} is outside the vocabulary (0..{})", id, cfg.vocab_size - 1);
  ensure_capacity(int64_t(req.prompt.size()) + req.max_new_tokens);

  std::vector<int32_t> stop_ids = req.stop_token_ids;
  if (!req.ignore_eos) stop_ids.insert(stop_ids.end(), cfg.eos_token_ids.begin(), cfg.eos_token_ids.end());

  GenerationResult res;
  res.prompt_tokens = int64_t(req.prompt.size());
  // Reuse the cached prefix, but always recompute at least the last prompt token: its logits
  // are needed to pick the first output token.
  size_t reuse = 0;
  while (reuse < cached_.size() && reuse + 1 < req.prompt.size() && cached_[reuse] == req.prompt[reuse]) ++reuse;
  res.cached_prompt_tokens = int64_t(reuse);
  cached_.resize(reuse);

  Sampler sampler(req.sampling, cfg.vocab_size);
  sampler.start(req.prompt);
  StopStrings stops(req.stop_strings);
  Tokenizer::StreamDecoder decoder(tokenizer_, req.skip_special_tokens);
  auto emit = [&](const std::string& s) {
    if (!s.empty() && on_text) on_text(s);
  };

  auto t0 = Clock::now();
  for (size_t pos = reuse; pos < req.prompt.size(); pos += size_t(prefill_chunk_)) {
    const size_t n = std::min(req.prompt.size() - pos, size_t(prefill_chunk_));
    SequenceChunk chunk{0, int64_t(pos), std::span(req.prompt).subspan(pos, n), false, {}};
    model_.forward({&chunk, 1}, *cache_, pool_, logits_);
    cached_.insert(cached_.end(), req.prompt.begin() + long(pos), req.prompt.begin() + long(pos + n));
  }
  res.prefill_seconds = seconds_since(t0);

  t0 = Clock::now();
  for (;;) {
    const int32_t id = sampler.sample(logits_.data());
    res.output_ids.push_back(id);
    if (id >= 0 && size_t(id) >= tokenizer_.vocab_size()) res.unknown_token_ids++;
    if (std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) {
      res.finish_reason = "stop";
      break;
    }
    emit(stops.push(decoder.push(id)));
    if (stops.stopped()) {
      res.finish_reason = "stop";
      break;
    }
    if (int64_t(res.output_ids.size()) >= req.max_new_tokens) {
      res.finish_reason = "length";
      break;
    }
    SequenceChunk chunk{0, int64_t(cached_.size()), std::span(&res.output_ids.back(), 1), false, {}};
    model_.forward({&chunk, 1}, *cache_, pool_, logits_);
    cached_.push_back(id);
    res.decode_steps++;
  }
  if (!stops.stopped()) {
    emit(stops.push(decoder.flush()));
    emit(stops.flush());
  }
  res.decode_seconds = seconds_since(t0);
  res.text = stops.text();
  return res;
}

}  // namespace lowbit
