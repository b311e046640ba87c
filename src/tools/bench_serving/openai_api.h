// The OpenAI-compatible wire format as a benchmark sees it: the request body for one prompt,
// and the generated text, usage and errors read back from a streamed chunk or a whole response.
// Field choices follow what every such server accepts (SGLang, vLLM, llama.cpp's llama-server,
// lowbit serve): `max_tokens` rather than the newer `max_completion_tokens`, `ignore_eos` as an
// extension the others ignore.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lowbit::bench_serving {

enum class Api { kChat, kCompletions };

struct ApiOptions {
  Api api = Api::kChat;
  std::string model;
  bool stream = true;
  bool ignore_eos = true;  // generate exactly max_tokens, so every server does the same work
  nlohmann::json extra_body = nlohmann::json::object();  // merged last: overrides any field above
};

// "/v1/chat/completions" or "/v1/completions".
const char* endpoint_path(Api api);
// Greedy (temperature 0) request for `prompt` as the user message or completion prompt.
nlohmann::json request_body(const ApiOptions& options, const std::string& prompt, int64_t max_tokens);

// What one streamed chunk, or one whole non-streamed response, carries.
struct ResponsePiece {
  std::string text;  // generated text: content and reasoning_content (chat), text (completions)
  int64_t prompt_tokens = -1, completion_tokens = -1;  // from `usage`, when present
  std::string error;  // set when the server sent an error instead of a result
};

ResponsePiece read_stream_chunk(Api api, std::string_view json_text);
ResponsePiece read_response(Api api, std::string_view json_text);
// A readable message from an error response body: its error.message when it is OpenAI-style
// JSON, else the start of the body.
std::string error_message(std::string_view body);

}  // namespace lowbit::bench_serving
