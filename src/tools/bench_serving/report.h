// The results of a run: the console summary in SGLang bench_serving's layout (so the numbers
// read the same way side by side) and the JSON document (SGLang's field names, plus failures and
// one record per request).
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/bench_serving/client.h"
#include "tools/bench_serving/metrics.h"

namespace lowbit::bench_serving {

struct RunInfo {
  std::string backend, base_url, model, dataset_name;
  double request_rate = 0;      // requests/s; infinity: all at once
  int64_t max_concurrency = 0;  // <= 0: not set
  int64_t num_prompts = 0;
  uint64_t seed = 0;
  bool stream = true;
  nlohmann::json dataset_args = nlohmann::json::object();  // random_* or gsp_* options, by name
};

void print_summary(std::FILE* out, const RunInfo& info, const BenchMetrics& m);
// with_texts adds each request's generated text to its record.
nlohmann::json summary_json(const RunInfo& info, const BenchMetrics& m, const std::vector<RequestResult>& results,
                            bool with_texts);
// A ".jsonl" file gets the document appended as one line (as SGLang does); any other name is
// overwritten with it.
void write_output_file(const std::filesystem::path& path, const nlohmann::json& doc);

}  // namespace lowbit::bench_serving
