// The summary of a run, with SGLang bench_serving's definitions: throughputs over the whole run,
// TTFT and end-to-end latency per successful request, TPOT = (latency - TTFT) / (output tokens
// - 1) over requests with more than one output token, ITL over every gap of every request, and
// concurrency = the sum of request latencies / the run's duration.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/bench_serving/client.h"

namespace lowbit::bench_serving {

struct LatencyStats {  // milliseconds; all zero when there are no samples
  double mean = 0, median = 0, std = 0, p95 = 0, p99 = 0, max = 0;
  int64_t count = 0;
};

struct BenchMetrics {
  int64_t completed = 0, failed = 0;
  std::string first_error;
  double duration_s = 0;
  int64_t total_input = 0, total_output = 0, total_output_retokenized = 0;
  double request_throughput = 0, input_throughput = 0, output_throughput = 0, total_throughput = 0;
  LatencyStats e2e, ttft, tpot, itl;
  double concurrency = 0;
};

// Percentile p in [0, 100] with linear interpolation between order statistics (numpy's default).
double percentile(std::vector<double> values, double p);
LatencyStats latency_stats(const std::vector<double>& seconds);
BenchMetrics compute_metrics(const std::vector<RequestResult>& results, double duration_s);

}  // namespace lowbit::bench_serving
