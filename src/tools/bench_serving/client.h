// The load generator: sends the prompts over HTTP (libcurl's multi interface, all transfers on
// the calling thread), starting each at its arrival time once fewer than max_concurrency are in
// flight, and times every streamed chunk as it arrives. A request that fails (connection
// refused, HTTP error, error event, stream cut short) becomes a result with its error; nothing
// here throws for a server's misbehaviour.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tools/bench_serving/datasets.h"
#include "tools/bench_serving/openai_api.h"

namespace lowbit::bench_serving {

struct ClientOptions {
  std::string base_url;  // scheme://host:port, no trailing slash
  std::string api_key;   // sent as "Authorization: Bearer ..." when not empty
  ApiOptions api;
  double request_timeout_s = 0;  // 0: no limit on a whole request
};

struct RequestResult {
  bool success = false;
  std::string error;
  std::string generated_text;
  int64_t prompt_len = 0;   // from the dataset
  int64_t output_len = 0;   // usage.completion_tokens, else retokenized_len (filled by the caller)
  int64_t retokenized_len = -1;
  int64_t usage_prompt_tokens = -1, usage_completion_tokens = -1;
  double start_s = 0;    // when it was sent, from the start of the run
  double ttft_s = 0;     // to the first non-empty chunk (non-streamed: the whole latency)
  double latency_s = 0;  // to the end of the response
  std::vector<double> itl_s;  // gaps between successive non-empty chunks
};

struct RunOutcome {
  std::vector<RequestResult> results;  // in prompt order
  double duration_s = 0;               // first send to last completion
};

// arrival_s[i]: when prompt i becomes ready, from the start of the run (non-decreasing).
// max_concurrency <= 0 means no limit. on_done(completed) is called after each request ends.
RunOutcome run_requests(const ClientOptions& options, const std::vector<BenchPrompt>& prompts,
                        const std::vector<double>& arrival_s, int64_t max_concurrency,
                        const std::function<void(int64_t)>& on_done);

// The id of the first model in GET {base_url}/v1/models; Error (naming the URL) if none.
std::string first_served_model(const ClientOptions& options);

}  // namespace lowbit::bench_serving
