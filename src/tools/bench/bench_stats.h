// min / median / max of repeated timings, as llama-bench reports them.
#pragma once

#include <algorithm>
#include <vector>

namespace lowbit {

struct Stats {
  double min = 0, median = 0, max = 0;
  std::vector<double> samples;  // in measurement order (--json lists them, so runs can be pooled)
};

// Median of an even count is the mean of the middle two. Empty input gives zeros.
inline Stats summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  s.samples = v;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return s;
}

}  // namespace lowbit
