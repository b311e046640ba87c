// One generating HTTP request (chat/completions, completions or /generate) while the engine
// runs it: n choices per prompt, each one engine request. Engine events arrive here on the
// loop thread (stream_bridge.h); each is run through the reasoning and tool-call parsers,
// streamed as SSE chunks or collected, and timed for the metrics. When every choice has its
// final event the job replies (or ends the stream with usage and [DONE]).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "server/openai_responses.h"
#include "server/reasoning_parser.h"
#include "server/tool_call_parser.h"

namespace lowbit {

class HttpCall;
class ServerMetrics;
class Tokenizer;

enum class ApiKind { kChat, kCompletion, kGenerate };

struct JobSpec {
  ApiKind kind = ApiKind::kChat;
  ResponseHeader header;
  bool stream = false, include_usage = false;
  int top_logprobs = -1;            // -1: no logprobs
  int n = 1;                        // choices per prompt; choice i belongs to prompt i / n
  std::vector<std::string> echo;    // per prompt: text to put before the completion (echo)
  bool reasoning = false, reasoning_open = false, tools = false;
  bool batch = false;               // /generate with a list: reply with a list
};

class CompletionJob {
 public:
  CompletionJob(JobSpec spec, size_t prompts, std::shared_ptr<HttpCall> call, const Tokenizer& tokenizer,
                ServerMetrics& metrics);

  int choices() const { return int(choices_.size()); }
  void set_engine_id(int choice, uint64_t id);
  // Stream headers and the opening chunks (chat role, echoed prompt). Call once all choices
  // are submitted.
  void start();
  void on_event(int choice, EngineEvent&& e);
  bool complete() const { return complete_; }
  // Engine ids of choices without a final event (to cancel when the client leaves).
  std::vector<uint64_t> pending_engine_ids() const;

 private:
  struct Choice {
    std::optional<uint64_t> engine_id;
    bool finished = false;
    std::string content, reasoning;
    std::vector<ToolCall> calls;
    std::vector<OutputToken> tokens;  // with logprobs, when asked for
    std::vector<int32_t> ids;
    std::optional<ReasoningParser> reasoning_parser;
    std::optional<ToolCallParser> tool_parser;
    std::string finish_reason, error;
    Json matched_stop;
    int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
    double first_token_s = -1, last_token_s = 0;
    size_t text_offset = 0;  // completions logprobs: bytes of text before the next token
  };
  struct Piece {
    std::string content, reasoning;
    std::vector<ToolCall> calls;
  };

  double elapsed() const;
  Piece parse(Choice& c, const std::string& text, bool final);
  void stream_event(int index, Choice& c, const Piece& piece, const std::vector<OutputToken>& new_tokens);
  void finish();
  void reply_all();
  Usage usage() const;
  bool any_failed(std::string& message, int& status) const;

  JobSpec spec_;
  std::shared_ptr<HttpCall> call_;
  const Tokenizer& tokenizer_;
  ServerMetrics& metrics_;
  std::chrono::steady_clock::time_point start_;
  std::vector<Choice> choices_;
  bool complete_ = false, error_sent_ = false;
};

}  // namespace lowbit
