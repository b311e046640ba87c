// Requests of the OpenAI-compatible API (chat/completions, completions) and SGLang's native
// /generate, parsed from JSON and validated: every wrong type or bad value is an ApiError 400
// that names the parameter. Unknown fields are ignored, as OpenAI's clients send many.
// Limits that depend on the prompt (prompt + max_tokens within the context) are checked once
// the prompt is tokenized (completion_job / api_server).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"
#include "server/api_error.h"

namespace lowbit {

using Json = nlohmann::ordered_json;

// Parses a request body; invalid JSON (including invalid UTF-8 in strings) or a non-object is
// an ApiError 400.
Json parse_json_body(std::string_view body);

// The fields every generating endpoint shares.
struct GenerationFields {
  std::optional<int64_t> max_tokens;  // absent: the endpoint's default
  SamplingParams sampling;            // server defaults with the request's values applied
  bool seeded = false;                // the request gave a seed
  int n = 1;
  bool stream = false, include_usage = false;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false, skip_special_tokens = true;
  int top_logprobs = -1;  // EngineRequest meaning: -1 none, 0 chosen token only, k top-k
};

struct ChatRequest {
  std::string model;
  Json messages;  // validated array of {"role", "content", ...}
  Json tools;     // null when absent or tool_choice is "none"
  Json template_kwargs = Json::object();  // chat_template_kwargs
  bool add_generation_prompt = true;
  bool separate_reasoning = true;
  GenerationFields gen;
};

// One prompt: text, or token ids.
struct PromptInput {
  std::string text;
  std::vector<int32_t> ids;
  bool is_ids = false;
};

struct CompletionRequest {
  std::string model;
  std::vector<PromptInput> prompts;
  bool echo = false;
  GenerationFields gen;
};

// SGLang's /generate: {"text" | "input_ids", "sampling_params": {...}, "stream",
// "return_logprob", "top_logprobs_num"}; a list of texts or of id lists is a batch.
struct GenerateRequest {
  std::vector<PromptInput> prompts;
  bool batch = false;
  bool return_logprob = false;
  GenerationFields gen;
};

ChatRequest parse_chat_request(const Json& body, const SamplingParams& defaults);
CompletionRequest parse_completion_request(const Json& body, const SamplingParams& defaults);
GenerateRequest parse_generate_request(const Json& body, const SamplingParams& defaults);

// Upper bound on n (choices per request): each is a separate engine request.
inline constexpr int kMaxChoices = 64;

}  // namespace lowbit
