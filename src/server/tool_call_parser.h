// The qwen25 tool-call parser (SGLang's --tool-call-parser qwen25, also what Qwen3 writes):
// the model emits
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
// and the API returns OpenAI tool_calls with arguments as a JSON string. Streaming-safe: text
// that could be the start of "<tool_call>" is held back, and a call is released only once its
// closing tag has arrived (a complete call per delta, never half an arguments string).
// A block whose JSON does not parse as {"name": string, "arguments": object|string} comes
// back as ordinary content, tags included, so nothing the model wrote is lost.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

struct ToolCall {
  std::string id;         // "call_" + 24 random alphanumerics
  std::string name;
  std::string arguments;  // JSON text
};

class ToolCallParser {
 public:
  struct Delta {
    std::string content;
    std::vector<ToolCall> calls;
  };
  Delta push(std::string_view text);
  Delta finish();
  int calls_seen() const { return calls_seen_; }

 private:
  void emit_content(Delta& d, std::string_view text);
  void close_call(Delta& d, std::string_view body, bool closed);

  std::string held_;
  std::string blank_;  // whitespace after a call, shown only if real content follows
  bool in_call_ = false;
  int calls_seen_ = 0;
};

}  // namespace lowbit
