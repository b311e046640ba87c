// lowbit serve: the OpenAI-compatible server (src/server/) on one model, with SGLang's flag
// names where the meaning is the same. Prints the effective configuration, serves until
// SIGINT/SIGTERM, drains, exits 0. Invalid or contradictory flags: a message and exit 2.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "chat/chat_template.h"
#include "core/error.h"
#include "runtime/engine.h"
#include "server/api_server.h"
#include "tools/commands.h"
#include "tools/model_session.h"

namespace lowbit {

namespace {

struct ServeArgs {
  LoadOptions load;
  std::string host = "127.0.0.1";
  int port = 30000;
  std::string api_key, served_model_name, reasoning_parser, tool_call_parser;
  std::optional<int64_t> max_running_requests, max_total_tokens, context_length, chunked_prefill_size, max_prefill_tokens;
  std::optional<double> mem_fraction_static;
  std::optional<int64_t> max_queued_requests;
  std::optional<double> max_step_slowdown;
  int io_timeout = 60;
  bool disable_radix_cache = false;
  bool expert_distribution_metrics = false;
};

// Flag checks that need no model; the message names the flag.
void check_flags(const ServeArgs& a) {
  if (a.port < 0 || a.port > 65535) fail("--port must be between 0 and 65535, got {}", a.port);
  if (a.max_total_tokens && a.mem_fraction_static)
    fail("--max-total-tokens and --mem-fraction-static both size the KV cache; give one of them");
  if (a.mem_fraction_static && !(*a.mem_fraction_static > 0 && *a.mem_fraction_static < 1))
    fail("--mem-fraction-static must be in (0, 1), got {}", *a.mem_fraction_static);
  auto positive = [](const std::optional<int64_t>& v, const char* name) {
    if (v && *v <= 0) fail("{} must be positive, got {}", name, *v);
  };
  positive(a.max_running_requests, "--max-running-requests");
  positive(a.max_total_tokens, "--max-total-tokens");
  positive(a.context_length, "--context-length");
  positive(a.chunked_prefill_size, "--chunked-prefill-size");
  positive(a.max_prefill_tokens, "--max-prefill-tokens");
  positive(a.max_queued_requests, "--max-queued-requests");
  if (a.max_step_slowdown && *a.max_step_slowdown != 0 && !(*a.max_step_slowdown >= 1))
    fail("--max-step-slowdown must be 0 (off) or at least 1, got {}", *a.max_step_slowdown);
  if (a.chunked_prefill_size && a.max_prefill_tokens && *a.max_prefill_tokens < *a.chunked_prefill_size)
    fail("--max-prefill-tokens ({}) is below --chunked-prefill-size ({}): no prefill chunk could run",
         *a.max_prefill_tokens, *a.chunked_prefill_size);
  if (!a.reasoning_parser.empty() && a.reasoning_parser != "qwen3" && a.reasoning_parser != "qwen3-thinking")
    fail("--reasoning-parser '{}' is not supported (supported: qwen3, qwen3-thinking)", a.reasoning_parser);
  if (!a.tool_call_parser.empty() && a.tool_call_parser != "qwen25" && a.tool_call_parser != "qwen")
    fail("--tool-call-parser '{}' is not supported (supported: qwen25)", a.tool_call_parser);
  if (a.host.empty()) fail("--host must not be empty");
  if (a.io_timeout < 1) fail("--io-timeout must be at least 1 second, got {}", a.io_timeout);
}

// The chat template from chat_template.jinja or tokenizer_config.json; none is not an error
// for a server (chat/completions then answers 400, completions still work).
std::optional<ChatTemplate> load_chat_template(const std::filesystem::path& dir) {
  try {
    return ChatTemplate::from_model_dir(dir);
  } catch (const Error& e) {
    std::fprintf(stderr, "warning: no chat template, /v1/chat/completions will answer 400: %s\n", e.what());
    return std::nullopt;
  }
}

// Every connection is a file descriptor: lift the soft limit (often 1024) to the hard one so a
// thousand clients do not exhaust it.
void raise_open_file_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

int run(const ServeArgs& a, TpGroup* tp) {
  try {
    check_flags(a);
    a.load.draft_head();  // the speculative flags, before the model loads
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  raise_open_file_limit();
  ModelSession s(a.load, tp);
  const std::optional<ChatTemplate> tmpl = load_chat_template(a.load.model_path);

  EngineConfig ec;
  if (a.max_running_requests) ec.max_running_requests = *a.max_running_requests;
  if (a.max_total_tokens) ec.max_total_tokens = *a.max_total_tokens;
  if (a.mem_fraction_static) ec.mem_fraction_static = *a.mem_fraction_static;
  if (a.context_length) ec.context_length = *a.context_length;
  if (a.chunked_prefill_size) ec.chunked_prefill_size = *a.chunked_prefill_size;
  if (a.max_prefill_tokens) ec.max_prefill_tokens = *a.max_prefill_tokens;
  if (a.max_queued_requests) ec.max_queued_requests = *a.max_queued_requests;
  if (a.max_step_slowdown) ec.max_step_slowdown = *a.max_step_slowdown;
  ec.enable_prefix_cache = !a.disable_radix_cache;
  ec.speculative_adaptive = a.load.speculative_adaptive;
  ec.expert_distribution_metrics = a.expert_distribution_metrics;
  // A tensor-parallel rank died: every request has its error; stop serving (as SIGTERM does,
  // through the HTTP loop's own signal handler) and exit non-zero below.
  ec.on_fatal = [](const std::string& message) {
    std::fprintf(stderr, "serve: the model cannot run any more steps (%s); shutting down\n", message.c_str());
    ::kill(::getpid(), SIGTERM);
  };
  std::unique_ptr<Engine> engine;
  try {
    engine = std::make_unique<Engine>(s.model(), s.tokenizer(), s.pool(), ec);
  } catch (const Error& e) {  // the flags do not fit this model or this machine's memory
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }

  ApiServerConfig sc;
  sc.http.host = a.host;
  sc.http.port = a.port;
  sc.http.api_key = a.api_key;
  sc.http.io_timeout_seconds = a.io_timeout;
  sc.model_name = a.served_model_name.empty() ? a.load.model_path.string() : a.served_model_name;
  sc.sampling_defaults = SamplingParams::from_generation_defaults(s.model().config().generation);
  sc.reasoning_parser = a.reasoning_parser;
  sc.tool_call_parser = a.tool_call_parser == "qwen" ? "qwen25" : a.tool_call_parser;
  std::unique_ptr<ApiServer> server;
  try {
    server = std::make_unique<ApiServer>(sc, *engine, s.tokenizer(), tmpl ? &*tmpl : nullptr);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  const EngineConfig& eff = engine->config();
  std::fprintf(stderr,
               "serve: model=%s served-model-name=%s threads=%d\n"
               "serve: context-length=%lld max-running-requests=%lld max-total-tokens=%lld page-size=%lld "
               "chunked-prefill-size=%lld max-prefill-tokens=%lld max-step-slowdown=%g radix-cache=%s speculative=%s\n"
               "serve: reasoning-parser=%s tool-call-parser=%s api-key=%s chat-template=%s max-body=%zu MiB io-timeout=%d s\n"
               "serve: listening on http://%s:%d\n",
               a.load.model_path.c_str(), sc.model_name.c_str(), s.pool().size(), (long long)eff.context_length,
               (long long)eff.max_running_requests, (long long)eff.max_total_tokens, (long long)eff.page_size,
               (long long)eff.chunked_prefill_size, (long long)eff.max_prefill_tokens, eff.max_step_slowdown,
               eff.enable_prefix_cache ? "on" : "off",
               !s.model().has_mtp()             ? "off"
               : eff.speculative_adaptive ? "NEXTN (1 step, top-1, 2 draft tokens; adaptive)"
                                          : "NEXTN (1 step, top-1, 2 draft tokens; every step)", sc.reasoning_parser.empty() ? "none" : sc.reasoning_parser.c_str(),
               sc.tool_call_parser.empty() ? "none" : sc.tool_call_parser.c_str(), a.api_key.empty() ? "none" : "set",
               tmpl ? "yes" : "no", sc.http.max_body_bytes >> 20, sc.http.io_timeout_seconds, a.host.c_str(), server->port());
  std::fflush(stderr);
  server->run();
  server.reset();  // shuts the engine down first: no sink outlives the server
  engine.reset();
  if (s.model().failed()) {
    std::fprintf(stderr, "serve: stopped after a tensor-parallel failure\n");
    return 1;
  }
  std::fprintf(stderr, "serve: stopped\n");
  return 0;
}

}  // namespace

CommandFn add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  add_load_options(app, a->load);
  app.add_option("--host", a->host, "Address to listen on (127.0.0.1: this machine only)")->capture_default_str();
  app.add_option("--port", a->port, "TCP port (0: any free port, printed at start)")->capture_default_str();
  app.add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY' on the API (not on /, /health, /metrics)");
  app.add_option("--served-model-name", a->served_model_name, "Model name in /v1/models and responses (default: --model-path)");
  app.add_option("--max-running-requests", a->max_running_requests, "Requests in the running batch (default: from the KV budget, at most 64)");
  app.add_option("--max-total-tokens", a->max_total_tokens, "KV cache budget in tokens");
  app.add_option("--mem-fraction-static", a->mem_fraction_static, "KV cache size as a fraction of the memory available once the model is loaded (default 0.4)");
  app.add_option("--context-length", a->context_length, "Maximum prompt + output tokens (default: the model's)");
  app.add_option("--chunked-prefill-size", a->chunked_prefill_size, "Prompt tokens of one request per step (default 512)");
  app.add_option("--max-prefill-tokens", a->max_prefill_tokens, "Prompt tokens of all requests per step (default 2048)");
  app.add_option("--max-queued-requests", a->max_queued_requests,
                 "Requests waiting beyond the running batch; more are refused with 503 (default 4096)");
  app.add_option("--max-step-slowdown", a->max_step_slowdown,
                 "While requests decode, cut prompt chunks so a step takes at most this many decode steps' time "
                 "(bounds inter-token latency during long prefills, at some cost in time to first token and "
                 "throughput; 2.5 keeps ITL p99 within 4x the median while a 4096-token prompt is prefilled; 0: "
                 "off, as SGLang; default 4)");
  app.add_option("--io-timeout", a->io_timeout,
                 "Seconds a client may take to send a request, or stay idle between keep-alive requests "
                 "(a request being answered is not bound by it)")
      ->capture_default_str();
  app.add_flag("--disable-radix-cache", a->disable_radix_cache, "Do not share KV pages between requests with a common prefix");
  app.add_flag("--enable-expert-distribution-metrics", a->expert_distribution_metrics,
               "MoE models: /metrics reports tokens routed to each expert of each layer, and each layer's balancedness "
               "(mean / max tokens per expert)");
  app.add_option("--reasoning-parser", a->reasoning_parser, "qwen3: return <think>…</think> as reasoning_content");
  app.add_option("--tool-call-parser", a->tool_call_parser, "qwen25: return <tool_call> JSON as OpenAI tool_calls");
  return [a] {
    a->load.tp.recoverable = true;  // a dead rank: answer in-flight requests with an error, then exit
    return run_tensor_parallel(a->load.tp, a->load.threads, [&](TpGroup* tp) { return run(*a, tp); });
  };
}

}  // namespace lowbit
