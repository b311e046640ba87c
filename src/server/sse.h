// Server-sent events as OpenAI streams them: one "data: <json>" event per chunk, a blank line
// after each, and a final "data: [DONE]".
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lowbit {

inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// JSON is dumped on one line (a newline inside an event would end the data field); invalid
// UTF-8 is replaced, never thrown on.
std::string sse_event(const nlohmann::ordered_json& data);

}  // namespace lowbit
