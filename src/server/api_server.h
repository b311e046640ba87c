// The API of `lowbit serve` over HttpServer: OpenAI's /v1/chat/completions, /v1/completions,
// /v1/models, SGLang's /generate, /v1/tokenize, /v1/detokenize, /health, /metrics and the chat
// page at /. Requests become EngineRequests (n per prompt); their events come back through
// the EventBridge to the CompletionJob that owns the HTTP reply.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/engine.h"
#include "server/completion_job.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/openai_protocol.h"
#include "server/stream_bridge.h"

namespace lowbit {

class ChatTemplate;
class Tokenizer;

struct ApiServerConfig {
  HttpServerConfig http;
  std::string model_name;
  SamplingParams sampling_defaults;  // generation_config.json's, before the request's fields
  std::string reasoning_parser;      // "", "qwen3", "qwen3-thinking"
  std::string tool_call_parser;      // "", "qwen25"
  int64_t completion_default_max_tokens = 16;  // OpenAI's default for /v1/completions
  int64_t generate_default_max_tokens = 128;   // SGLang's default for /generate
};

class ApiServer {
 public:
  // `chat_template` may be null (then chat/completions answers 400).
  ApiServer(ApiServerConfig config, Engine& engine, const Tokenizer& tokenizer, const ChatTemplate* chat_template);
  ~ApiServer();  // shuts the engine down (its sinks point here) before the loop goes away

  int port() const { return http_->port(); }
  // Serves until SIGINT/SIGTERM and the drain that follows.
  void run();

 private:
  using CallPtr = std::shared_ptr<HttpCall>;
  void chat(const CallPtr& call);
  void completions(const CallPtr& call);
  void generate(const CallPtr& call);
  void models(const CallPtr& call);
  void tokenize(const CallPtr& call);
  void detokenize(const CallPtr& call);
  void metrics(const CallPtr& call);

  // Checks lengths, submits n engine requests per prompt and registers the job.
  void launch(const CallPtr& call, JobSpec spec, const std::vector<std::vector<int32_t>>& prompts,
              const GenerationFields& gen, int64_t default_max_tokens, const char* prompt_param);
  void on_engine_event(uint64_t job, int choice, EngineEvent&& e);
  void cancel_job(uint64_t job);
  std::vector<int32_t> encode_prompt(const PromptInput& in, bool add_special_tokens) const;
  ResponseHeader new_header(const char* prefix, const std::string& requested_model) const;

  ApiServerConfig config_;
  Engine& engine_;
  const Tokenizer& tokenizer_;
  const ChatTemplate* chat_template_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<EventBridge> bridge_;
  ServerMetrics metrics_;
  std::unordered_map<uint64_t, std::shared_ptr<CompletionJob>> jobs_;
  uint64_t next_job_ = 1;
  int64_t started_ = 0;
};

}  // namespace lowbit
