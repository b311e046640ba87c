// Response bodies and stream chunks in OpenAI's exact shapes (chat.completion,
// chat.completion.chunk, text_completion) and SGLang's /generate shape. Pure functions of the
// finished or partial choice, so tests can check the shapes without a server.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "server/openai_protocol.h"
#include "server/tool_call_parser.h"

namespace lowbit {

class Tokenizer;

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};
Json usage_json(const Usage& u);

// Envelope shared by responses and chunks: id, object, created, model.
struct ResponseHeader {
  std::string id;
  int64_t created = 0;
  std::string model;
};

// The text of one token for logprobs (raw bytes, repaired to valid UTF-8) and its bytes.
std::string token_text(const Tokenizer& tok, int32_t id);

// chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}
Json chat_logprobs_json(const Tokenizer& tok, const std::vector<OutputToken>& tokens);
// legacy completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
// text_offset counts bytes from `offset` (the echoed prompt's length, or 0).
Json completion_logprobs_json(const Tokenizer& tok, const std::vector<OutputToken>& tokens, size_t offset,
                              bool with_top);

struct ChatChoice {
  int index = 0;
  std::string content, reasoning;
  std::vector<ToolCall> tool_calls;
  Json logprobs;  // null or chat_logprobs_json
  std::string finish_reason;
  // SGLang/vLLM extension: the stop token id or string that ended the choice.
  Json matched_stop;
};
Json chat_completion_json(const ResponseHeader& h, const std::vector<ChatChoice>& choices, const Usage& u);
Json tool_calls_json(const std::vector<ToolCall>& calls, int first_index, bool streaming);
// One chunk carrying `delta` (an object) for one choice; finish_reason null unless given.
Json chat_chunk_json(const ResponseHeader& h, int index, Json delta, const Json& logprobs,
                     const std::string& finish_reason, bool usage_null);
Json usage_chunk_json(const ResponseHeader& h, const char* object, const Usage& u);

struct TextChoice {
  int index = 0;
  std::string text;
  Json logprobs;
  std::string finish_reason;
  Json matched_stop;
};
Json completion_json(const ResponseHeader& h, const std::vector<TextChoice>& choices, const Usage& u);
Json completion_chunk_json(const ResponseHeader& h, int index, const std::string& text, const Json& logprobs,
                           const std::string& finish_reason, bool usage_null);

// SGLang /generate: {"text", "output_ids", "meta_info": {"id", "finish_reason": {"type",
// "matched"} | null, "prompt_tokens", "completion_tokens", "cached_tokens", "e2e_latency",
// "output_token_logprobs"?}}
struct GenerateOutput {
  std::string id, text;
  std::vector<int32_t> output_ids;
  std::string finish_reason;  // "" while streaming
  Json matched;
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
  double e2e_latency = 0;
  const std::vector<OutputToken>* logprobs = nullptr;  // with return_logprob
  int index = -1;  // set for batch requests
};
Json generate_json(const Tokenizer& tok, const GenerateOutput& g);

}  // namespace lowbit
