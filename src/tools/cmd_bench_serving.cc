// lowbit bench-serving: SGLang's bench_serving for any OpenAI-compatible server (lowbit serve,
// SGLang, vLLM, llama.cpp's llama-server). Builds prompts of exact token lengths from random
// token ids, sends them at a Poisson rate under a concurrency cap, streams every answer and
// reports throughput, TTFT, TPOT, ITL and end-to-end latency, on the console and as JSON.
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tools/bench_serving/client.h"
#include "tools/bench_serving/datasets.h"
#include "tools/bench_serving/metrics.h"
#include "tools/bench_serving/report.h"
#include "tools/commands.h"
#include "tools/progress_bar.h"

namespace lowbit {

namespace {

namespace bs = bench_serving;

struct BenchServingArgs {
  std::string base_url, host = "127.0.0.1";
  int port = 30000;
  std::string backend = "openai";
  std::string model, model_path, tokenizer;
  std::string dataset_name = "random";
  bs::RandomDatasetOptions random;
  bs::SharedPrefixOptions gsp;
  int64_t max_concurrency = 0;
  std::string request_rate = "inf";
  uint64_t seed = 1;
  std::string output_file, api_key, extra_request_body;
  bool output_details = false, disable_stream = false, disable_tqdm = false, disable_ignore_eos = false;
  int64_t warmup_requests = 1;
  double request_timeout = 0;
};

bs::Api parse_backend(const std::string& name) {
  if (name == "openai" || name == "sglang-oai" || name == "vllm") return bs::Api::kCompletions;
  if (name == "openai-chat" || name == "sglang-oai-chat" || name == "vllm-chat") return bs::Api::kChat;
  fail("--backend: unknown backend '{}' (openai or its aliases sglang-oai, vllm: /v1/completions; openai-chat or "
       "sglang-oai-chat, vllm-chat: /v1/chat/completions)",
       name);
}

double parse_rate(const std::string& text) {
  if (text == "inf") return std::numeric_limits<double>::infinity();
  char* end = nullptr;
  const double rate = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !(rate > 0)) fail("--request-rate: expected a positive number or inf, got '{}'", text);
  return rate;
}

// "http://host:port/" and "http://host:port/v1" both name the server.
std::string server_url(const BenchServingArgs& a) {
  std::string url = a.base_url.empty() ? fmt::format("http://{}:{}", a.host, a.port) : a.base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.size() >= 3 && url.compare(url.size() - 3, 3, "/v1") == 0) url.resize(url.size() - 3);
  return url;
}

std::filesystem::path tokenizer_dir(const BenchServingArgs& a) {
  if (!a.tokenizer.empty()) return a.tokenizer;
  if (!a.model_path.empty()) return a.model_path;
  if (!a.model.empty() && std::filesystem::is_directory(a.model)) return a.model;
  fail("bench-serving needs the served model's tokenizer to build prompts of exact lengths and count output tokens: "
       "pass --tokenizer DIR or --model-path DIR (a Hugging Face model folder)");
}

// Poisson arrivals: exponential gaps at `rate`; the first request goes at once.
std::vector<double> arrival_times(size_t n, double rate, uint64_t seed) {
  std::vector<double> t(n, 0.0);
  if (std::isinf(rate)) return t;
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);  // its own stream: the dataset does not shift it
  std::exponential_distribution<double> gap(rate);
  for (size_t i = 1; i < n; ++i) t[i] = t[i - 1] + gap(rng);
  return t;
}

// Many concurrent connections need many descriptors; the soft limit is often 1024.
void raise_open_file_limit() {
  struct rlimit lim {};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

void warm_up(const bs::ClientOptions& client, const std::vector<bs::BenchPrompt>& prompts, int64_t count) {
  if (count <= 0) return;
  std::fprintf(stderr, "Warming up with %lld request(s)...\n", (long long)count);
  bs::BenchPrompt p = prompts.front();
  p.output_len = std::min<int64_t>(p.output_len, 16);  // short: it only opens the path
  const std::vector<bs::BenchPrompt> warm(size_t(count), p);
  const auto out = bs::run_requests(client, warm, std::vector<double>(warm.size(), 0.0), count, nullptr);
  for (const auto& r : out.results)
    if (r.success) return;
  fail("the warm-up request to {} failed: {} (check --base-url, --backend, --model and --api-key)",
       client.base_url + bs::endpoint_path(client.api.api), out.results.front().error);
}

int run(const BenchServingArgs& a) {
  bs::ClientOptions client;
  client.api.api = parse_backend(a.backend);
  const double rate = parse_rate(a.request_rate);
  if (!a.extra_request_body.empty()) {
    client.api.extra_body = nlohmann::json::parse(a.extra_request_body, nullptr, false);
    if (!client.api.extra_body.is_object()) fail("--extra-request-body: expected a JSON object, got '{}'", a.extra_request_body);
  }
  if (a.warmup_requests < 0) fail("--warmup-requests must be >= 0 (got {})", a.warmup_requests);
  if (!a.output_file.empty()) {  // checked now, not after a long run
    const auto dir = std::filesystem::absolute(a.output_file).parent_path();
    if (!std::filesystem::is_directory(dir)) fail("--output-file {}: no directory {}", a.output_file, dir.string());
  }
  client.base_url = server_url(a);
  client.api_key = a.api_key;
  if (client.api_key.empty())
    if (const char* env = std::getenv("OPENAI_API_KEY")) client.api_key = env;
  client.api.stream = !a.disable_stream;
  client.api.ignore_eos = !a.disable_ignore_eos;
  client.request_timeout_s = a.request_timeout;

  const std::filesystem::path tok_dir = tokenizer_dir(a);
  const Tokenizer tokenizer = Tokenizer::from_dir(tok_dir);
  client.api.model = a.model.empty() ? bs::first_served_model(client) : a.model;

  bs::RunInfo info;
  info.backend = a.backend;
  info.base_url = client.base_url;
  info.model = client.api.model;
  info.dataset_name = a.dataset_name;
  info.request_rate = rate;
  info.max_concurrency = a.max_concurrency;
  info.seed = a.seed;
  info.stream = client.api.stream;
  std::mt19937_64 rng(a.seed);
  std::vector<bs::BenchPrompt> prompts;
  if (a.dataset_name == "random") {
    prompts = bs::random_dataset(tokenizer, a.random, rng);
    info.dataset_args = {{"random_input_len", a.random.input_len},
                         {"random_output_len", a.random.output_len},
                         {"random_range_ratio", a.random.range_ratio}};
  } else if (a.dataset_name == "generated-shared-prefix") {
    prompts = bs::shared_prefix_dataset(tokenizer, a.gsp, rng);
    info.dataset_args = {{"gsp_num_groups", a.gsp.num_groups},
                         {"gsp_prompts_per_group", a.gsp.prompts_per_group},
                         {"gsp_system_prompt_len", a.gsp.system_prompt_len},
                         {"gsp_question_len", a.gsp.question_len},
                         {"gsp_output_len", a.gsp.output_len}};
  } else {
    fail("--dataset-name: unknown dataset '{}' (random or generated-shared-prefix)", a.dataset_name);
  }
  info.num_prompts = int64_t(prompts.size());
  int64_t in_tokens = 0, out_tokens = 0;
  for (const auto& p : prompts) {
    in_tokens += p.prompt_len;
    out_tokens += p.output_len;
  }
  std::fprintf(stderr, "%s: %zu prompts, %lld input tokens, %lld output tokens asked for; tokenizer %s\n",
               a.dataset_name.c_str(), prompts.size(), (long long)in_tokens, (long long)out_tokens, tok_dir.c_str());
  std::fprintf(stderr, "%s%s, model %s, request rate %s, max concurrency %s\n", client.base_url.c_str(),
               bs::endpoint_path(client.api.api), client.api.model.c_str(), a.request_rate.c_str(),
               a.max_concurrency > 0 ? std::to_string(a.max_concurrency).c_str() : "not set");

  raise_open_file_limit();
  warm_up(client, prompts, a.warmup_requests);
  ProgressBar bar("bench-serving", !a.disable_tqdm && ::isatty(STDERR_FILENO));
  const auto total = int64_t(prompts.size());
  bar.update(0, total, "requests");
  bs::RunOutcome out = bs::run_requests(client, prompts, arrival_times(prompts.size(), rate, a.seed), a.max_concurrency,
                                        [&](int64_t done) { bar.update(done, total, "requests"); });
  bar.finish();

  for (auto& r : out.results) {
    if (!r.success) continue;
    r.retokenized_len = int64_t(tokenizer.encode(r.generated_text).size());
    r.output_len = r.usage_completion_tokens >= 0 ? r.usage_completion_tokens : r.retokenized_len;
  }
  const bs::BenchMetrics metrics = bs::compute_metrics(out.results, out.duration_s);
  bs::print_summary(stdout, info, metrics);
  if (!a.output_file.empty())
    bs::write_output_file(a.output_file, bs::summary_json(info, metrics, out.results, a.output_details));
  if (metrics.completed == 0) {
    std::fprintf(stderr, "error: every request failed; the first error: %s\n", metrics.first_error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

CommandFn add_bench_serving_command(CLI::App& app) {
  auto a = std::make_shared<BenchServingArgs>();
  app.add_option("--base-url", a->base_url, "Server URL, e.g. http://127.0.0.1:30000 (a trailing /v1 is fine); "
                                            "default http://HOST:PORT");
  app.add_option("--host", a->host, "Server host when --base-url is not given")->capture_default_str();
  app.add_option("--port", a->port, "Server port when --base-url is not given")->capture_default_str();
  app.add_option("--backend", a->backend,
                 "openai (POST /v1/completions; aliases sglang-oai, vllm) or openai-chat (POST /v1/chat/completions; "
                 "aliases sglang-oai-chat, vllm-chat)")
      ->capture_default_str();
  app.add_option("--model", a->model, "Model name sent in requests (default: the first of GET /v1/models)");
  app.add_option("--model-path", a->model_path, "The served model's folder, used for its tokenizer");
  app.add_option("--tokenizer", a->tokenizer,
                 "Hugging Face folder with tokenizer.json, to build prompts of exact token lengths and count output "
                 "tokens (default: --model-path)");
  app.add_option("--dataset-name", a->dataset_name, "random or generated-shared-prefix")->capture_default_str();
  app.add_option("--random-input-len", a->random.input_len, "Prompt tokens per request (random)")->capture_default_str();
  app.add_option("--random-output-len", a->random.output_len, "Output tokens per request (random)")->capture_default_str();
  app.add_option("--random-range-ratio", a->random.range_ratio,
                 "Lengths are drawn uniformly from [len * ratio, len]; 1 gives exactly len")
      ->capture_default_str();
  app.add_option("--gsp-num-groups", a->gsp.num_groups, "Groups, each with its own system prompt")->capture_default_str();
  app.add_option("--gsp-prompts-per-group", a->gsp.prompts_per_group, "Questions per group")->capture_default_str();
  app.add_option("--gsp-system-prompt-len", a->gsp.system_prompt_len, "System prompt tokens")->capture_default_str();
  app.add_option("--gsp-question-len", a->gsp.question_len, "Question tokens")->capture_default_str();
  app.add_option("--gsp-output-len", a->gsp.output_len, "Output tokens per request")->capture_default_str();
  app.add_option("--num-prompts", a->random.num_prompts,
                 "Requests to send (random; generated-shared-prefix sends groups x prompts-per-group)")
      ->capture_default_str();
  app.add_option("--max-concurrency", a->max_concurrency, "Most requests in flight at once (default: no limit)");
  app.add_option("--request-rate", a->request_rate, "Requests per second, as Poisson arrivals; inf sends all at once")
      ->capture_default_str();
  app.add_option("--seed", a->seed, "Seed for prompts and arrival times")->capture_default_str();
  app.add_option("--output-file", a->output_file, "Write the results as JSON (a .jsonl file gets one line appended)");
  app.add_flag("--output-details", a->output_details, "Also write each request's generated text to --output-file");
  app.add_option("--api-key", a->api_key, "Bearer key (default: $OPENAI_API_KEY)");
  app.add_flag("--disable-stream", a->disable_stream, "Non-streamed requests (TTFT is then the whole latency)");
  app.add_flag("--disable-tqdm", a->disable_tqdm, "No progress bar");
  app.add_flag("--disable-ignore-eos", a->disable_ignore_eos, "Let the model stop at its end token");
  app.add_option("--extra-request-body", a->extra_request_body,
                 "JSON object merged into every request body, e.g. '{\"temperature\": 0.6}'");
  app.add_option("--warmup-requests", a->warmup_requests, "Untimed short requests before the run")->capture_default_str();
  app.add_option("--request-timeout", a->request_timeout, "Seconds before one request counts as failed (0: none)")
      ->capture_default_str();
  return [a] { return run(*a); };
}

}  // namespace lowbit
