#include "runtime/engine.h"

#include <bit>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <fstream>
#include <string>

#include "core/thread_pool.h"
#include "models/decoder.h"
#include "runtime/logprobs.h"
#include "runtime/scheduler.h"
#include "runtime/sequence.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

namespace {

// MemAvailable from /proc/meminfo in bytes (0 if unreadable).
int64_t mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

constexpr double kDefaultMemFraction = 0.4;
constexpr int64_t kDefaultMaxRunning = 64;

// Fills in the defaults and checks the flags against the model and each other; returns the
// number of KV pages.
int64_t size_config(EngineConfig& c, const DecoderModel& model) {
  const int64_t max_pos = model.config().max_position_embeddings;
  if (c.context_length == 0) c.context_length = max_pos;
  if (c.context_length < 1 || c.context_length > max_pos)
    fail("--context-length {} is outside 1..{} (the model's max_position_embeddings)", c.context_length, max_pos);
  if (c.page_size < kKvPageMinTokens || !std::has_single_bit(uint64_t(c.page_size)))
    fail("--page-size {} must be a power of two of at least {}", c.page_size, kKvPageMinTokens);
  if (c.chunked_prefill_size < 1) fail("--chunked-prefill-size must be >= 1, got {}", c.chunked_prefill_size);
  if (c.max_prefill_tokens < 1) fail("--max-prefill-tokens must be >= 1, got {}", c.max_prefill_tokens);
  if (c.max_step_slowdown != 0 && !(c.max_step_slowdown >= 1))
    fail("--max-step-slowdown must be 0 (off) or at least 1, got {}", c.max_step_slowdown);
  if (c.max_running_requests < 0) fail("--max-running-requests must be >= 1, got {}", c.max_running_requests);
  if (c.max_queued_requests < 1) fail("the request queue limit must be >= 1, got {}", c.max_queued_requests);
  if (c.max_total_tokens < 0) fail("--max-total-tokens must be >= 1, got {}", c.max_total_tokens);
  if (c.max_total_tokens > 0 && c.mem_fraction_static > 0)
    fail("--max-total-tokens and --mem-fraction-static both size the KV cache: give one");
  if (c.mem_fraction_static < 0 || c.mem_fraction_static >= 1)
    fail("--mem-fraction-static {} must be in (0, 1)", c.mem_fraction_static);

  int64_t tokens = c.max_total_tokens;
  if (tokens == 0) {
    // On a CPU the weights are resident before the pool is sized, so the fraction is of the
    // memory still available then (SGLang's is of the device memory, weights included).
    const double fraction = c.mem_fraction_static > 0 ? c.mem_fraction_static : kDefaultMemFraction;
    const size_t per_page = model.make_cache(1, c.page_size).bytes_per_page();
    tokens = int64_t(fraction * double(mem_available()) / double(per_page)) * c.page_size;
    if (c.mem_fraction_static == 0) tokens = std::min(tokens, kDefaultMaxRunning * c.context_length);
  }
  // A recurrent model's prefix is its state after the prefix, not pages of KV: reusing one
  // would need the state saved at every page boundary (75 MiB each at Qwen3-Next-80B's size),
  // so the prefix cache is off for such models and every prompt is computed in full.
  if (model.has_recurrent_state()) c.enable_prefix_cache = false;
  const int64_t pages = tokens / c.page_size;
  if (pages * c.page_size < c.context_length + c.page_size)
    fail("the KV cache budget of {} tokens cannot hold one request of the context length {}: raise "
         "--max-total-tokens / --mem-fraction-static or lower --context-length",
         pages * c.page_size, c.context_length);
  c.max_total_tokens = pages * c.page_size;
  if (c.max_running_requests == 0) c.max_running_requests = std::min(kDefaultMaxRunning, pages);
  return pages;
}

}  // namespace

struct Engine::Impl {
  DecoderModel& model;
  const Tokenizer& tokenizer;
  Scheduler scheduler;

  mutable std::mutex mu;
  std::condition_variable wake;
  std::vector<std::unique_ptr<Sequence>> inbox;
  std::vector<uint64_t> cancels;
  int64_t queued = 0;  // waiting in the scheduler or being handed to it (inbox not included)
  bool stopping = false, drain = false;
  EngineStats stats;
  uint64_t next_id = 1;
  std::thread thread;

  std::function<void(const std::string&)> on_fatal;

  Impl(DecoderModel& m, const Tokenizer& t, ThreadPool& pool, const EngineConfig& c, int64_t pages)
      : model(m), tokenizer(t), scheduler(m, pool, c, pages), on_fatal(c.on_fatal) {
    scheduler.fill_stats(stats);
  }

  void run() {
    for (;;) {
      std::vector<std::unique_ptr<Sequence>> arrived;
      std::vector<uint64_t> cancelled;
      bool stop_now = false;
      {
        std::unique_lock lock(mu);
        // Idle: wake every second so that a tensor-parallel rank 0 tells the other ranks it is
        // alive (DecoderModel::idle; a serving job's ranks end it after one silent deadline).
        auto ready = [&] { return !inbox.empty() || !cancels.empty() || stopping || !scheduler.idle(); };
        while (!wake.wait_for(lock, std::chrono::seconds(1), ready)) {
          lock.unlock();
          model.idle();
          lock.lock();
        }
        arrived.swap(inbox);
        cancelled.swap(cancels);
        queued += int64_t(arrived.size());  // still waiting, now on this thread
        stop_now = stopping && !drain;
      }
      for (auto& s : arrived) scheduler.add(std::move(s));
      for (uint64_t id : cancelled) scheduler.cancel(id);
      if (stop_now) break;
      try {
        scheduler.step();
      } catch (const std::exception& e) {
        // A failed model (a tensor-parallel rank died) runs no further step: stop taking
        // requests, and fail the ones that arrived meanwhile with the running ones.
        const bool fatal = model.failed();
        if (fatal) {
          std::vector<std::unique_ptr<Sequence>> late;
          {
            std::lock_guard lock(mu);
            stopping = true;
            late.swap(inbox);
          }
          for (auto& s : late) scheduler.add(std::move(s));
        }
        scheduler.abort_all("error", std::string("engine step failed: ") + e.what());
        if (fatal) {
          if (on_fatal) on_fatal(e.what());
          break;
        }
      }
      std::lock_guard lock(mu);
      scheduler.fill_stats(stats);
      queued = scheduler.queued();
      if (stopping && scheduler.idle() && inbox.empty()) break;
    }
    scheduler.abort_all("abort");
    std::lock_guard lock(mu);
    scheduler.fill_stats(stats);
  }
};

Engine::Engine(DecoderModel& model, const Tokenizer& tokenizer, ThreadPool& pool, EngineConfig config)
    : config_(config) {
  const int64_t pages = size_config(config_, model);
  impl_ = std::make_unique<Impl>(model, tokenizer, pool, config_, pages);
  impl_->thread = std::thread([this] { impl_->run(); });
}

Engine::~Engine() { shutdown(false); }

uint64_t Engine::submit(EngineRequest r, EventSink sink) {
  const auto& cfg = impl_->model.config();
  const int64_t n = int64_t(r.prompt.size());
  if (n == 0) fail("the prompt is empty: at least one token is needed");
  for (int32_t id : r.prompt)
    if (id < 0 || id >= cfg.vocab_size) fail("prompt token id {} is outside the vocabulary (0..{})", id, cfg.vocab_size - 1);
  if (r.max_new_tokens < 1) fail("max_tokens must be >= 1, got {}", r.max_new_tokens);
  if (n + r.max_new_tokens > config_.context_length)
    fail("the prompt ({} tokens) plus max_tokens ({}) is more than the context length ({})", n, r.max_new_tokens,
         config_.context_length);
  if (r.top_logprobs > kMaxTopLogprobs) fail("top_logprobs must be at most {}, got {}", kMaxTopLogprobs, r.top_logprobs);
  r.sampling.validate();
  for (int32_t id : r.stop_token_ids)
    if (id < 0 || id >= cfg.vocab_size) fail("stop token id {} is outside the vocabulary", id);

  std::lock_guard lock(impl_->mu);
  if (impl_->stopping) throw EngineBusy("the server is shutting down");
  if (impl_->queued + int64_t(impl_->inbox.size()) >= config_.max_queued_requests)
    throw EngineBusy(fmt::format("the request queue is full ({} requests waiting)", config_.max_queued_requests));
  const uint64_t id = impl_->next_id++;
  impl_->inbox.push_back(std::make_unique<Sequence>(id, std::move(r), std::move(sink), impl_->tokenizer,
                                                    cfg.eos_token_ids, cfg.vocab_size, config_.context_length));
  impl_->wake.notify_one();
  return id;
}

void Engine::cancel(uint64_t id) {
  std::lock_guard lock(impl_->mu);
  impl_->cancels.push_back(id);
  impl_->wake.notify_one();
}

void Engine::shutdown(bool drain) {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping) {
      impl_->stopping = true;
      impl_->drain = drain;
    }
    impl_->wake.notify_one();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

EngineStats Engine::stats() const {
  std::lock_guard lock(impl_->mu);
  EngineStats s = impl_->stats;
  // The snapshot is from the end of the last step; requests that arrived since (in the inbox,
  // or handed to the scheduler during a long step) are waiting too.
  s.queued = impl_->queued + int64_t(impl_->inbox.size());
  if (config_.expert_distribution_metrics)  // atomics, read outside the engine thread
    for (auto& l : impl_->model.expert_token_counts()) s.expert_tokens.push_back({l.layer, std::move(l.tokens)});
  return s;
}

}  // namespace lowbit
