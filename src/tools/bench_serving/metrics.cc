#include "tools/bench_serving/metrics.h"

#include <algorithm>
#include <cmath>

namespace lowbit::bench_serving {

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * double(values.size() - 1);
  const auto below = size_t(std::floor(rank));
  const size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (values[above] - values[below]) * (rank - double(below));
}

LatencyStats latency_stats(const std::vector<double>& seconds) {
  LatencyStats s;
  if (seconds.empty()) return s;
  std::vector<double> ms(seconds.size());
  std::transform(seconds.begin(), seconds.end(), ms.begin(), [](double v) { return v * 1000.0; });
  double sum = 0;
  for (double v : ms) sum += v;
  s.count = int64_t(ms.size());
  s.mean = sum / double(ms.size());
  double squares = 0;
  for (double v : ms) squares += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(squares / double(ms.size()));  // population std, as numpy's np.std
  s.median = percentile(ms, 50);
  s.p95 = percentile(ms, 95);
  s.p99 = percentile(ms, 99);
  s.max = *std::max_element(ms.begin(), ms.end());
  return s;
}

BenchMetrics compute_metrics(const std::vector<RequestResult>& results, double duration_s) {
  BenchMetrics m;
  m.duration_s = duration_s;
  std::vector<double> e2e, ttft, tpot, itl;
  for (const auto& r : results) {
    if (!r.success) {
      ++m.failed;
      if (m.first_error.empty()) m.first_error = r.error;
      continue;
    }
    ++m.completed;
    m.total_input += r.prompt_len;
    m.total_output += r.output_len;
    m.total_output_retokenized += std::max<int64_t>(r.retokenized_len, 0);
    e2e.push_back(r.latency_s);
    ttft.push_back(r.ttft_s);
    if (r.output_len > 1) tpot.push_back((r.latency_s - r.ttft_s) / double(r.output_len - 1));
    itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
  }
  if (duration_s > 0) {
    m.request_throughput = double(m.completed) / duration_s;
    m.input_throughput = double(m.total_input) / duration_s;
    m.output_throughput = double(m.total_output) / duration_s;
    m.total_throughput = double(m.total_input + m.total_output) / duration_s;
    double busy = 0;
    for (double v : e2e) busy += v;
    m.concurrency = busy / duration_s;
  }
  m.e2e = latency_stats(e2e);
  m.ttft = latency_stats(ttft);
  m.tpot = latency_stats(tpot);
  m.itl = latency_stats(itl);
  return m;
}

}  // namespace lowbit::bench_serving
