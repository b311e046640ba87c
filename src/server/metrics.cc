#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/engine.h"
#include "schemes/moe_method.h"

namespace lowbit {

namespace {
// Bucket bounds as SGLang's (seconds).
std::vector<double> ttft_buckets() {
  return {0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 120, 160};
}
std::vector<double> itl_buckets() {
  return {0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060,
          0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.0, 2.0, 4.0, 6.0, 8.0};
}
std::vector<double> e2e_buckets() {
  return {0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 500, 1000};
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}
void sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out += fmt::format("{}{{{}}} {}\n", name, labels, value);
}
void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::string_view labels, double value) {
  header(out, name, type, help);
  sample(out, name, labels, value);
}
}  // namespace

std::string prometheus_escape(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double value) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::write(std::string& out, std::string_view name, std::string_view labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, count_);
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, sum_);
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, count_);
}

ServerMetrics::ServerMetrics(std::string model_name)
    : labels_("model_name=\"" + prometheus_escape(model_name) + "\""),
      ttft_(ttft_buckets()),
      itl_(itl_buckets()),
      tpot_(itl_buckets()),
      e2e_(e2e_buckets()) {}

void ServerMetrics::observe_finished(double e2e_seconds, double ttft_seconds, int64_t completion_tokens) {
  ++requests_total_;
  e2e_.observe(e2e_seconds);
  if (completion_tokens > 1) tpot_.observe((e2e_seconds - ttft_seconds) / double(completion_tokens - 1));
}

void ServerMetrics::count_http_response(int status) {
  if (status < 400) ++http_2xx_;
  else if (status < 500) ++http_4xx_;
  else ++http_5xx_;
}

std::string ServerMetrics::render(const EngineStats& s) const {
  std::string out;
  const std::string& l = labels_;
  metric(out, "sglang:prompt_tokens_total", "counter", "Number of prefill tokens processed.", l, double(s.prompt_tokens_total));
  metric(out, "sglang:generation_tokens_total", "counter", "Number of generation tokens processed.", l,
         double(s.generation_tokens_total));
  metric(out, "sglang:cached_tokens_total", "counter", "Number of prompt tokens served from the prefix cache.", l,
         double(s.cached_tokens_total));
  metric(out, "sglang:num_requests_total", "counter", "Number of requests finished (not aborted).", l, double(requests_total_));
  metric(out, "sglang:num_running_reqs", "gauge", "The number of running requests.", l, double(s.running));
  metric(out, "sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.", l, double(s.queued));
  const int64_t used_tokens = s.kv_pages_used * s.page_size;
  metric(out, "sglang:num_used_tokens", "gauge", "The number of used KV cache tokens.", l, double(used_tokens));
  metric(out, "sglang:token_usage", "gauge", "The token usage (fraction of KV cache pages in use).", l,
         s.kv_pages_total > 0 ? double(s.kv_pages_used) / double(s.kv_pages_total) : 0.0);
  metric(out, "sglang:cache_hit_rate", "gauge", "The prefix cache hit rate (prompt tokens found / looked up).", l,
         s.prefix_queried_tokens > 0 ? double(s.prefix_hit_tokens) / double(s.prefix_queried_tokens) : 0.0);
  header(out, "sglang:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.");
  ttft_.write(out, "sglang:time_to_first_token_seconds", l);
  header(out, "sglang:inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in seconds.");
  itl_.write(out, "sglang:inter_token_latency_seconds", l);
  header(out, "sglang:time_per_output_token_seconds", "histogram", "Histogram of time per output token in seconds.");
  tpot_.write(out, "sglang:time_per_output_token_seconds", l);
  header(out, "sglang:e2e_request_latency_seconds", "histogram", "Histogram of end-to-end request latency in seconds");
  e2e_.write(out, "sglang:e2e_request_latency_seconds", l);
  metric(out, "lowbit_kv_pages_used", "gauge", "KV cache pages in use (running requests and the prefix cache).", l,
         double(s.kv_pages_used));
  metric(out, "lowbit_kv_pages_in_requests", "gauge", "KV cache pages held by queued or running requests (not the prefix cache).", l,
         double(s.kv_pages_used - s.prefix_cached_pages));
  metric(out, "lowbit_prefix_cache_pages", "gauge", "KV cache pages held by the prefix cache.", l,
         double(s.prefix_cached_pages));
  metric(out, "lowbit_kv_pages_total", "gauge", "KV cache pages in the budget.", l, double(s.kv_pages_total));
  metric(out, "lowbit_kv_page_size_tokens", "gauge", "Tokens per KV cache page.", l, double(s.page_size));
  metric(out, "lowbit_requests_finished_total", "counter", "Engine requests that ended with stop or length.", l,
         double(s.requests_finished_total));
  metric(out, "lowbit_requests_aborted_total", "counter", "Engine requests cancelled (client gone or shutdown).", l,
         double(s.requests_aborted_total));
  metric(out, "lowbit_preemptions_total", "counter", "Requests preempted for KV pages and later resumed.", l,
         double(s.preemptions_total));
  metric(out, "lowbit_forward_steps_total", "counter", "Batched forward steps run by the engine.", l,
         double(s.forward_steps_total));
  // NEXTN: SGLang's average accept length (tokens per verify step, the bonus token included).
  metric(out, "sglang:spec_accept_length", "gauge", "The average speculative decoding accept length.", l,
         s.spec_draft_tokens_total > 0
             ? double(s.spec_draft_tokens_total + s.spec_accepted_tokens_total) / double(s.spec_draft_tokens_total)
             : 0.0);
  metric(out, "lowbit_spec_draft_tokens_total", "counter", "Speculative draft tokens verified.", l,
         double(s.spec_draft_tokens_total));
  metric(out, "lowbit_spec_accepted_tokens_total", "counter", "Speculative draft tokens accepted.", l,
         double(s.spec_accepted_tokens_total));
  metric(out, "lowbit_spec_verify_steps_total", "counter", "Decode-only steps that verified drafts.", l,
         double(s.spec_verify_steps_total));
  metric(out, "lowbit_spec_plain_steps_total", "counter",
         "Decode-only steps without drafts (the adaptive governor found drafting did not pay).", l,
         double(s.spec_plain_steps_total));
  header(out, "lowbit_http_responses_total", "counter", "HTTP responses by status class.");
  sample(out, "lowbit_http_responses_total", l + ",code=\"2xx\"", double(http_2xx_));
  sample(out, "lowbit_http_responses_total", l + ",code=\"4xx\"", double(http_4xx_));
  sample(out, "lowbit_http_responses_total", l + ",code=\"5xx\"", double(http_5xx_));
  if (!s.expert_tokens.empty()) {
    header(out, "lowbit_moe_expert_tokens_total", "counter",
           "Tokens routed to each expert since load (each of a token's top-k choices counts once).");
    for (const auto& layer : s.expert_tokens)
      for (size_t e = 0; e < layer.tokens.size(); ++e)
        sample(out, "lowbit_moe_expert_tokens_total", fmt::format("{},layer=\"{}\",expert=\"{}\"", l, layer.layer, e),
               double(layer.tokens[e]));
    header(out, "lowbit_moe_expert_balancedness", "gauge",
           "Mean over max of the layer's tokens per expert since load (1: perfectly even; SGLang's EPLB balancedness "
           "over experts instead of GPUs).");
    for (const auto& layer : s.expert_tokens)
      sample(out, "lowbit_moe_expert_balancedness", fmt::format("{},layer=\"{}\"", l, layer.layer),
             expert_balancedness(layer.tokens));
  }
  return out;
}

}  // namespace lowbit
