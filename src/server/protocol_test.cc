// Request parsing and validation (every bad field is a 400 naming it) and the response shapes.
#include <gtest/gtest.h>

#include "server/openai_protocol.h"
#include "server/openai_responses.h"

namespace lowbit {
namespace {

Json J(const char* s) { return Json::parse(s); }

// The ApiError a parse throws, or status 0.
template <class F>
ApiError error_of(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "no error");
}

TEST(Protocol, InvalidJsonAndUtf8Are400) {
  EXPECT_EQ(error_of([] { parse_json_body("{"); }).status(), 400);
  EXPECT_EQ(error_of([] { parse_json_body(""); }).status(), 400);
  EXPECT_EQ(error_of([] { parse_json_body("[1]"); }).status(), 400);
  // A number beyond a double is valid JSON syntax but nlohmann throws out_of_range (fuzzer find).
  EXPECT_EQ(error_of([] { parse_json_body(R"({"max_tokens": 2e4000})"); }).status(), 400);
  ApiError e = error_of([] { parse_json_body("{\"prompt\": \"\xff\xfe\"}"); });
  EXPECT_EQ(e.status(), 400);
  EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
}

TEST(Protocol, ChatFields) {
  SamplingParams defaults;
  ChatRequest r = parse_chat_request(
      J(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0.5,"top_p":0.9,
           "top_k":-1,"min_p":0.1,"seed":7,"n":2,"stop":"x","logprobs":true,"top_logprobs":3,"stream":true,
           "stream_options":{"include_usage":true},"chat_template_kwargs":{"enable_thinking":false},
           "repetition_penalty":1.1,"ignore_eos":true})"),
      defaults);
  EXPECT_EQ(*r.gen.max_tokens, 5);
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 0.5f);
  EXPECT_EQ(r.gen.sampling.top_k, 0);
  EXPECT_TRUE(r.gen.seeded);
  EXPECT_EQ(r.gen.sampling.seed, 7u);
  EXPECT_EQ(r.gen.n, 2);
  EXPECT_EQ(r.gen.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(r.gen.top_logprobs, 3);
  EXPECT_TRUE(r.gen.stream && r.gen.include_usage && r.gen.ignore_eos);
  EXPECT_EQ(r.template_kwargs["enable_thinking"], false);
  ChatRequest alias = parse_chat_request(J(R"({"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":9})"), defaults);
  EXPECT_EQ(*alias.gen.max_tokens, 9);
  EXPECT_EQ(alias.gen.top_logprobs, -1);
}

TEST(Protocol, BadValuesName400Params) {
  SamplingParams d;
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"messages":"hi"})", "messages"},
      {R"({"messages":[]})", "messages"},
      {R"({"messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":"user","content":5}]})", "messages[0].content"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":-1})", "max_tokens"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":"10"})", "max_tokens"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1e30})", "max_tokens"},
      // Floats beyond int64: range-checked before the cast (converting them is undefined;
      // the fuzzer found top_k = 6e85).
      {R"({"messages":[{"role":"user","content":"x"}],"top_k":6e85})", "top_k"},
      {R"({"messages":[{"role":"user","content":"x"}],"seed":-1e300})", "seed"},
      {R"({"messages":[{"role":"user","content":"x"}],"seed":9223372036854775808.0})", "seed"},
      {R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "temperature"},
      {R"({"messages":[{"role":"user","content":"x"}],"temperature":-1})", "temperature"},
      {R"({"messages":[{"role":"user","content":"x"}],"top_p":0})", "top_p"},
      {R"({"messages":[{"role":"user","content":"x"}],"n":0})", "n"},
      {R"({"messages":[{"role":"user","content":"x"}],"n":1000})", "n"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})", "stop"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":""})", "stop"},
      {R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "top_logprobs"},
      {R"({"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":50})", "top_logprobs"},
      {R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
      {R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", "tools[0]"},
      {R"({"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":[]})", "chat_template_kwargs"},
      {R"({"messages":[{"role":"user","content":"x"}],"presence_penalty":3})", "presence_penalty"},
  };
  for (const auto& c : cases) {
    ApiError e = error_of([&] { parse_chat_request(J(c.body), d); });
    EXPECT_EQ(e.status(), 400) << c.body;
    EXPECT_EQ(e.param(), c.param) << c.body << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(c.param), std::string::npos) << e.what();
  }
}

TEST(Protocol, CompletionPrompts) {
  SamplingParams d;
  auto r = parse_completion_request(J(R"({"prompt":"hello","echo":true,"logprobs":2})"), d);
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "hello");
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.gen.top_logprobs, 2);
  r = parse_completion_request(J(R"({"prompt":["a","b"]})"), d);
  EXPECT_EQ(r.prompts.size(), 2u);
  r = parse_completion_request(J(R"({"prompt":[1,2,3]})"), d);
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_TRUE(r.prompts[0].is_ids);
  EXPECT_EQ(r.prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
  r = parse_completion_request(J(R"({"prompt":[[1,2],[3]]})"), d);
  EXPECT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(error_of([&] { parse_completion_request(J(R"({"prompt":[1,-2]})"), d); }).param(), "prompt");
  EXPECT_EQ(error_of([&] { parse_completion_request(J(R"({"prompt":{}})"), d); }).param(), "prompt");
  EXPECT_EQ(error_of([&] { parse_completion_request(J(R"({})"), d); }).param(), "prompt");
}

TEST(Protocol, GenerateNative) {
  SamplingParams d;
  auto r = parse_generate_request(
      J(R"({"text":"hi","sampling_params":{"max_new_tokens":4,"temperature":0,"stop":["\n"]},"stream":true})"), d);
  EXPECT_EQ(*r.gen.max_tokens, 4);
  EXPECT_TRUE(r.gen.stream);
  EXPECT_FALSE(r.batch);
  r = parse_generate_request(J(R"({"input_ids":[[1,2],[3,4]]})"), d);
  EXPECT_TRUE(r.batch);
  EXPECT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(error_of([&] { parse_generate_request(J(R"({"text":"a","input_ids":[1]})"), d); }).status(), 400);
  EXPECT_EQ(error_of([&] { parse_generate_request(J(R"({"text":"a","sampling_params":{"top_k":"x"}})"), d); }).param(),
            "sampling_params.top_k");
}

TEST(Responses, ChatShape) {
  ResponseHeader h{"chatcmpl-1", 123, "m"};
  ChatChoice c;
  c.content = "hi";
  c.finish_reason = "stop";
  c.tool_calls.push_back({"call_x", "f", R"({"a":1})"});
  Json j = chat_completion_json(h, {c}, {3, 2, 1});
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], R"({"a":1})");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["type"], "function");
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
  Json chunk = chat_chunk_json(h, 1, {{"content", "x"}}, nullptr, "", true);
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_EQ(chunk["choices"][0]["index"], 1);
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(chunk.contains("usage") && chunk["usage"].is_null());
  Json u = usage_chunk_json(h, "chat.completion.chunk", {3, 2, 0});
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["completion_tokens"], 2);
}

TEST(Responses, CompletionShape) {
  ResponseHeader h{"cmpl-1", 1, "m"};
  TextChoice c;
  c.text = "abc";
  c.finish_reason = "length";
  Json j = completion_json(h, {c}, {1, 1, 0});
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
}

TEST(Responses, ErrorShape) {
  Json e = error_json(400, "bad 'n'", "n");
  EXPECT_EQ(e["error"]["message"], "bad 'n'");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "n");
  EXPECT_EQ(e["error"]["code"], 400);
}

}  // namespace
}  // namespace lowbit
