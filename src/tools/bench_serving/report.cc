#include "tools/bench_serving/report.h"

#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"

namespace lowbit::bench_serving {

namespace {

using nlohmann::json;

std::string rate_text(double rate) { return std::isinf(rate) ? "inf" : fmt::format("{}", rate); }

void row(std::FILE* out, std::string_view name, std::string_view value) {
  fmt::print(out, "{:<40} {:<10}\n", name, value);
}
void row(std::FILE* out, std::string_view name, double value) { row(out, name, fmt::format("{:.2f}", value)); }
void row(std::FILE* out, std::string_view name, int64_t value) { row(out, name, fmt::format("{}", value)); }

// "===== title =====", 50 wide, the title centred (extra fill goes right, as Python's center).
void heading(std::FILE* out, std::string_view title, char fill) {
  const size_t pad = title.size() < 50 ? 50 - title.size() : 0;
  fmt::print(out, "{}{}{}\n", std::string(pad / 2, fill), title, std::string(pad - pad / 2, fill));
}

void stats_json(json& doc, const char* name, const LatencyStats& s) {
  doc[fmt::format("mean_{}_ms", name)] = s.mean;
  doc[fmt::format("median_{}_ms", name)] = s.median;
  doc[fmt::format("std_{}_ms", name)] = s.std;
  doc[fmt::format("p95_{}_ms", name)] = s.p95;
  doc[fmt::format("p99_{}_ms", name)] = s.p99;
  doc[fmt::format("max_{}_ms", name)] = s.max;
}

json request_record(const RequestResult& r, bool with_text) {
  json itl = json::array();
  for (double v : r.itl_s) itl.push_back(v * 1000.0);
  json rec = {{"success", r.success},
              {"prompt_len", r.prompt_len},
              {"output_len", r.output_len},
              {"retokenized_len", r.retokenized_len},
              {"usage_prompt_tokens", r.usage_prompt_tokens},
              {"usage_completion_tokens", r.usage_completion_tokens},
              {"start_s", r.start_s},
              {"ttft_ms", r.ttft_s * 1000.0},
              {"latency_ms", r.latency_s * 1000.0},
              {"itl_ms", std::move(itl)},
              {"error", r.error}};
  if (with_text) rec["generated_text"] = r.generated_text;
  return rec;
}

}  // namespace

void print_summary(std::FILE* out, const RunInfo& info, const BenchMetrics& m) {
  fmt::print(out, "\n");
  heading(out, " Serving Benchmark Result ", '=');
  row(out, "Backend:", info.backend);
  row(out, "Traffic request rate:", rate_text(info.request_rate));
  row(out, "Max request concurrency:", info.max_concurrency > 0 ? fmt::format("{}", info.max_concurrency) : "not set");
  row(out, "Successful requests:", m.completed);
  row(out, "Failed requests:", m.failed);
  row(out, "Benchmark duration (s):", m.duration_s);
  row(out, "Total input tokens:", m.total_input);
  row(out, "Total generated tokens:", m.total_output);
  row(out, "Total generated tokens (retokenized):", m.total_output_retokenized);
  row(out, "Request throughput (req/s):", m.request_throughput);
  row(out, "Input token throughput (tok/s):", m.input_throughput);
  row(out, "Output token throughput (tok/s):", m.output_throughput);
  row(out, "Total token throughput (tok/s):", m.total_throughput);
  row(out, "Concurrency:", m.concurrency);
  heading(out, "End-to-End Latency", '-');
  row(out, "Mean E2E Latency (ms):", m.e2e.mean);
  row(out, "Median E2E Latency (ms):", m.e2e.median);
  row(out, "P99 E2E Latency (ms):", m.e2e.p99);
  heading(out, "Time to First Token", '-');
  row(out, "Mean TTFT (ms):", m.ttft.mean);
  row(out, "Median TTFT (ms):", m.ttft.median);
  row(out, "P99 TTFT (ms):", m.ttft.p99);
  heading(out, "Time per Output Token (excl. 1st token)", '-');
  row(out, "Mean TPOT (ms):", m.tpot.mean);
  row(out, "Median TPOT (ms):", m.tpot.median);
  row(out, "P99 TPOT (ms):", m.tpot.p99);
  heading(out, "Inter-Token Latency", '-');
  row(out, "Mean ITL (ms):", m.itl.mean);
  row(out, "Median ITL (ms):", m.itl.median);
  row(out, "P95 ITL (ms):", m.itl.p95);
  row(out, "P99 ITL (ms):", m.itl.p99);
  row(out, "Max ITL (ms):", m.itl.max);
  heading(out, "", '=');
  if (m.failed > 0) fmt::print(out, "{} of {} requests failed; the first error: {}\n", m.failed, m.failed + m.completed, m.first_error);
  std::fflush(out);
}

json summary_json(const RunInfo& info, const BenchMetrics& m, const std::vector<RequestResult>& results,
                  bool with_texts) {
  json doc = {{"backend", info.backend},
              {"base_url", info.base_url},
              {"model", info.model},
              {"dataset_name", info.dataset_name},
              {"request_rate", std::isinf(info.request_rate) ? json("inf") : json(info.request_rate)},
              {"max_concurrency", info.max_concurrency > 0 ? json(info.max_concurrency) : json(nullptr)},
              {"num_prompts", info.num_prompts},
              {"seed", info.seed},
              {"stream", info.stream},
              {"duration", m.duration_s},
              {"completed", m.completed},
              {"failed", m.failed},
              {"first_error", m.first_error},
              {"total_input_tokens", m.total_input},
              {"total_output_tokens", m.total_output},
              {"total_output_tokens_retokenized", m.total_output_retokenized},
              {"request_throughput", m.request_throughput},
              {"input_throughput", m.input_throughput},
              {"output_throughput", m.output_throughput},
              {"total_throughput", m.total_throughput},
              {"concurrency", m.concurrency}};
  doc.update(info.dataset_args);
  stats_json(doc, "e2e_latency", m.e2e);
  stats_json(doc, "ttft", m.ttft);
  stats_json(doc, "tpot", m.tpot);
  stats_json(doc, "itl", m.itl);
  json records = json::array();
  for (const auto& r : results) records.push_back(request_record(r, with_texts));
  doc["requests"] = std::move(records);
  return doc;
}

void write_output_file(const std::filesystem::path& path, const json& doc) {
  const bool lines = path.extension() == ".jsonl";
  std::ofstream f(path, lines ? std::ios::app : std::ios::trunc);
  if (!f) fail("--output-file {}: cannot open for writing", path.string());
  // Invalid UTF-8 in a generated text (a server that splits characters) is replaced, not fatal.
  f << (lines ? doc.dump(-1, ' ', false, json::error_handler_t::replace)
              : doc.dump(2, ' ', false, json::error_handler_t::replace))
    << "\n";
  if (!f) fail("--output-file {}: write failed", path.string());
}

}  // namespace lowbit::bench_serving
