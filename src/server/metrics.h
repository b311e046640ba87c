// Prometheus metrics with SGLang's names where one exists (dashboards built for SGLang work
// unchanged): token counters, TTFT / ITL / TPOT / end-to-end latency histograms, running and
// queued requests, KV usage and prefix-cache hit rate; lowbit_* for the rest of EngineStats.
// Not thread-safe: the server updates and renders it on its event-loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

struct EngineStats;

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends name_bucket{labels,le="…"} (cumulative), name_sum and name_count lines.
  void write(std::string& out, std::string_view name, std::string_view labels) const;
  int64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; last is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class ServerMetrics {
 public:
  explicit ServerMetrics(std::string model_name);

  void observe_ttft(double seconds) { ttft_.observe(seconds); }
  void observe_inter_token(double seconds) { itl_.observe(seconds); }
  // A finished request: end-to-end latency and time per output token after the first.
  void observe_finished(double e2e_seconds, double ttft_seconds, int64_t completion_tokens);
  void count_http_response(int status);

  std::string render(const EngineStats& stats) const;

 private:
  std::string labels_;  // model_name="…"
  Histogram ttft_, itl_, tpot_, e2e_;
  int64_t requests_total_ = 0;
  int64_t http_2xx_ = 0, http_4xx_ = 0, http_5xx_ = 0;
};

// A Prometheus label value with \, " and newline escaped.
std::string prometheus_escape(std::string_view value);

}  // namespace lowbit
