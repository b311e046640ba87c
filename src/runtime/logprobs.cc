#include "runtime/logprobs.h"

#include <algorithm>
#include <cmath>

namespace lowbit {

void compute_logprobs(const float* logits, int64_t vocab, int32_t chosen, int k, OutputToken& out) {
  // log p_i = l_i − (m + log Σ exp(l_j − m)), the sum in double so a 150k vocabulary loses nothing.
  float m = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) m = std::max(m, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - double(m));
  const double log_z = double(m) + std::log(sum);
  out.logprob = float(double(logits[chosen]) - log_z);
  out.top.clear();
  k = std::clamp(k, 0, int(std::min<int64_t>(kMaxTopLogprobs, vocab)));
  if (k == 0) return;
  // k best by a bounded min-heap scan: O(vocab log k), no vocab-sized allocation.
  auto worse = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::vector<int32_t> heap;
  heap.reserve(size_t(k) + 1);
  for (int32_t i = 0; i < int32_t(vocab); ++i) {
    if (int(heap.size()) < k) {
      heap.push_back(i);
      std::push_heap(heap.begin(), heap.end(), worse);
    } else if (worse(i, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      heap.back() = i;
      std::push_heap(heap.begin(), heap.end(), worse);
    }
  }
  std::sort(heap.begin(), heap.end(), worse);
  for (int32_t id : heap) out.top.push_back({id, float(double(logits[id]) - log_z)});
}

}  // namespace lowbit
