#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lowbit {

SamplingParams SamplingParams::from_generation_defaults(const GenerationDefaults& g) {
  SamplingParams p;
  if (g.do_sample.value_or(false)) {
    p.temperature = float(g.temperature.value_or(1.0));
    p.top_k = g.top_k.value_or(50);
    p.top_p = float(g.top_p.value_or(1.0));
    p.min_p = float(g.min_p.value_or(0.0));
  }
  p.repetition_penalty = float(g.repetition_penalty.value_or(1.0));
  return p;
}

void SamplingParams::validate() const {
  if (!(temperature >= 0)) fail("temperature must be >= 0, got {}", temperature);
  if (top_k < 0) fail("top_k must be >= 0 (0 disables it), got {}", top_k);
  if (!(top_p > 0 && top_p <= 1)) fail("top_p must be in (0, 1], got {}", top_p);
  if (!(min_p >= 0 && min_p <= 1)) fail("min_p must be in [0, 1], got {}", min_p);
  if (!(repetition_penalty > 0)) fail("repetition_penalty must be > 0, got {}", repetition_penalty);
  if (!(std::fabs(presence_penalty) <= 2)) fail("presence_penalty must be in [-2, 2], got {}", presence_penalty);
  if (!(std::fabs(frequency_penalty) <= 2)) fail("frequency_penalty must be in [-2, 2], got {}", frequency_penalty);
}

Sampler::Sampler(const SamplingParams& params, int64_t vocab_size)
    : p_(params), vocab_(vocab_size), rng_(params.seed), in_context_(size_t(vocab_size), 0),
      output_count_(size_t(vocab_size), 0) {
  p_.validate();
  candidates_.reserve(size_t(vocab_size));
}

void Sampler::start(std::span<const int32_t> prompt) {
  for (int32_t id : touched_) {
    in_context_[size_t(id)] = 0;
    output_count_[size_t(id)] = 0;
  }
  touched_.clear();
  for (int32_t id : prompt) {
    if (id < 0 || id >= vocab_) continue;
    if (!in_context_[size_t(id)]) touched_.push_back(id);
    in_context_[size_t(id)] = 1;
  }
}

void Sampler::apply_penalties(float* logits) const {
  for (int32_t id : touched_) {
    float& l = logits[id];
    if (p_.repetition_penalty != 1.0f) l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
    const int32_t n = output_count_[size_t(id)];
    if (n > 0) l -= p_.presence_penalty + p_.frequency_penalty * float(n);
  }
}

int32_t Sampler::draw(float* logits) {
  // Temperature, then the candidate set, largest first where an order is needed.
  auto& c = candidates_;
  c.clear();
  const float inv_t = 1.0f / p_.temperature;
  for (int64_t i = 0; i < vocab_; ++i)
    if (!std::isnan(logits[i]) && logits[i] != -INFINITY) c.emplace_back(logits[i] * inv_t, int32_t(i));
  if (c.empty()) fail("sampling: every logit is -inf or NaN");
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  if (p_.top_k > 0 && size_t(p_.top_k) < c.size()) {
    std::nth_element(c.begin(), c.begin() + p_.top_k - 1, c.end(), by_logit);
    c.resize(size_t(p_.top_k));
  }
  const float mx = std::max_element(c.begin(), c.end(), [](auto& a, auto& b) { return a.first < b.first; })->first;
  double sum = 0;
  for (auto& [l, id] : c) {
    l = std::exp(l - mx);
    sum += l;
  }
  for (auto& e : c) e.first = float(e.first / sum);
  if (p_.top_p < 1.0f) {
    // Smallest set of most likely tokens whose mass reaches top_p; sort only a growing prefix.
    size_t sorted = std::min<size_t>(64, c.size());
    for (;;) {
      std::partial_sort(c.begin(), c.begin() + long(sorted), c.end(), by_logit);
      double mass = 0;
      size_t keep = 0;
      while (keep < sorted && mass < p_.top_p) mass += c[keep++].first;
      if (mass >= p_.top_p || sorted == c.size()) {
        c.resize(std::max<size_t>(1, keep));
        break;
      }
      sorted = std::min(c.size(), sorted * 4);
    }
  }
  if (p_.min_p > 0.0f) {
    float pmax = 0;
    for (auto& e : c) pmax = std::max(pmax, e.first);
    std::erase_if(c, [&](const auto& e) { return e.first < p_.min_p * pmax; });
  }
  double total = 0;
  for (auto& e : c) total += e.first;
  std::uniform_real_distribution<double> u(0.0, total);
  double r = u(rng_), acc = 0;
  for (auto& e : c) {
    acc += e.first;
    if (r < acc) return e.second;
  }
  return c.back().second;
}

int32_t Sampler::sample(float* logits) {
  apply_penalties(logits);
  int32_t id;
  if (p_.temperature == 0.0f) {
    id = int32_t(std::max_element(logits, logits + vocab_) - logits);
  } else {
    id = draw(logits);
  }
  if (!in_context_[size_t(id)] && output_count_[size_t(id)] == 0) touched_.push_back(id);
  in_context_[size_t(id)] = 1;
  output_count_[size_t(id)]++;
  return id;
}

}  // namespace lowbit
