// The streaming parsers (reasoning, tool calls) fed whole and split at every byte boundary:
// the result must not depend on how tokens cut the text.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/auth.h"
#include "server/reasoning_parser.h"
#include "server/sse.h"
#include "server/tool_call_parser.h"

namespace lowbit {
namespace {

struct Split {
  std::string reasoning, content;
};

Split run_reasoning(const std::string& text, size_t piece, bool open = false) {
  ReasoningParser p(open);
  Split out;
  for (size_t i = 0; i < text.size(); i += piece) {
    auto d = p.push(text.substr(i, piece));
    out.reasoning += d.reasoning;
    out.content += d.content;
  }
  auto d = p.finish();
  out.reasoning += d.reasoning;
  out.content += d.content;
  return out;
}

TEST(ReasoningParser, SplitsThinkBlockAtAnyBoundary) {
  const std::string text = "<think>\nLet me add 2 and 2.\n</think>\n\nThe answer is 4.";
  for (size_t piece = 1; piece <= text.size(); ++piece) {
    Split s = run_reasoning(text, piece);
    EXPECT_EQ(s.reasoning, "Let me add 2 and 2.\n") << piece;
    EXPECT_EQ(s.content, "The answer is 4.") << piece;
  }
}

TEST(ReasoningParser, NoThinkBlockIsAllContent) {
  for (size_t piece : {1, 3, 100}) {
    Split s = run_reasoning("Hello <b>there</b>, <thin ice", piece);
    EXPECT_EQ(s.reasoning, "");
    EXPECT_EQ(s.content, "Hello <b>there</b>, <thin ice");
  }
  Split s = run_reasoning("<thi", 1);  // output ended inside what looked like a tag
  EXPECT_EQ(s.content, "<thi");
}

TEST(ReasoningParser, UnclosedThinkIsAllReasoning) {
  Split s = run_reasoning("<think>\nstill thinking when max_tokens hit </thi", 2);
  EXPECT_EQ(s.reasoning, "still thinking when max_tokens hit </thi");
  EXPECT_EQ(s.content, "");
}

TEST(ReasoningParser, PromptThatOpensTheBlock) {
  EXPECT_TRUE(ReasoningParser::prompt_opens_reasoning("<|im_start|>assistant\n<think>\n"));
  EXPECT_FALSE(ReasoningParser::prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_FALSE(ReasoningParser::prompt_opens_reasoning("<|im_start|>assistant\n"));
  Split s = run_reasoning("I think so.\n</think>\n\nYes.", 1, /*open=*/true);
  EXPECT_EQ(s.reasoning, "I think so.\n");
  EXPECT_EQ(s.content, "Yes.");
}

struct ToolRun {
  std::string content;
  std::vector<ToolCall> calls;
};

ToolRun run_tools(const std::string& text, size_t piece) {
  ToolCallParser p;
  ToolRun out;
  for (size_t i = 0; i < text.size(); i += piece) {
    auto d = p.push(text.substr(i, piece));
    out.content += d.content;
    for (auto& c : d.calls) out.calls.push_back(c);
  }
  auto d = p.finish();
  out.content += d.content;
  for (auto& c : d.calls) out.calls.push_back(c);
  return out;
}

TEST(ToolCallParser, ParsesQwenCallsAtAnyBoundary) {
  const std::string text =
      "Let me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  for (size_t piece = 1; piece <= text.size(); piece += 1) {
    ToolRun r = run_tools(text, piece);
    ASSERT_EQ(r.calls.size(), 2u) << piece;
    EXPECT_EQ(r.content, "Let me check.") << piece;
    EXPECT_EQ(r.calls[0].name, "get_weather");
    EXPECT_EQ(nlohmann::json::parse(r.calls[0].arguments), nlohmann::json::parse(R"({"city":"Paris","days":2})"));
    EXPECT_EQ(r.calls[1].name, "get_time");
    EXPECT_EQ(r.calls[1].arguments, "{}");
    EXPECT_EQ(r.calls[0].id.rfind("call_", 0), 0u);
    EXPECT_EQ(r.calls[0].id.size(), 5u + 24u);
    EXPECT_NE(r.calls[0].id, r.calls[1].id);
  }
}

TEST(ToolCallParser, InvalidJsonStaysContent) {
  ToolRun r = run_tools("<tool_call>\n{not json}\n</tool_call>", 4);
  EXPECT_TRUE(r.calls.empty());
  EXPECT_EQ(r.content, "<tool_call>\n{not json}\n</tool_call>");
  ToolRun plain = run_tools("a < b and <tool is fine", 1);
  EXPECT_EQ(plain.content, "a < b and <tool is fine");
}

TEST(ToolCallParser, UnclosedCompleteJsonStillCounts) {
  ToolRun r = run_tools("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}", 3);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, R"({"x":1})");
}

TEST(Auth, ConstantTimeEquals) {
  EXPECT_TRUE(constant_time_equals("secret-key", "secret-key"));
  EXPECT_FALSE(constant_time_equals("secret-key", "secret-kez"));
  EXPECT_FALSE(constant_time_equals("secret-key", "secret-key-longer"));
  EXPECT_FALSE(constant_time_equals("", "x"));
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_FALSE(constant_time_equals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(Auth, BearerToken) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer  abc "), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token(""), "");
}

TEST(Sse, OneLineEventsAndDone) {
  nlohmann::ordered_json j = {{"text", "line1\nline2"}};
  EXPECT_EQ(sse_event(j), "data: {\"text\":\"line1\\nline2\"}\n\n");
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
  nlohmann::ordered_json bad = {{"text", std::string("\xff")}};
  EXPECT_EQ(sse_event(bad), "data: {\"text\":\"\xEF\xBF\xBD\"}\n\n");  // replaced, not thrown
}

}  // namespace
}  // namespace lowbit
