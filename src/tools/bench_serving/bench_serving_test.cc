// bench-serving's pure parts: SSE framing under arbitrary splits, reading OpenAI chunks and
// errors, numpy-equal percentiles, SGLang's metric definitions, and exact-length random prompts.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "tools/bench_serving/datasets.h"
#include "tools/bench_serving/metrics.h"
#include "tools/bench_serving/openai_api.h"
#include "tools/bench_serving/sse_parser.h"

namespace lowbit::bench_serving {
namespace {

std::vector<SseEvent> parse_in_pieces(std::string_view stream, size_t piece) {
  SseParser parser;
  std::vector<SseEvent> events;
  auto keep = [&](const SseEvent& e) { events.push_back(e); };
  for (size_t i = 0; i < stream.size(); i += piece) parser.feed(stream.substr(i, piece), keep);
  parser.finish(keep);
  return events;
}

TEST(SseParser, SameEventsWhateverTheSplit) {
  const std::string stream =
      ": keep-alive\r\n\r\n"
      "data: {\"a\":1}\r\n\r\n"
      "event: message\ndata:{\"b\":2}\n\n"
      "data: line1\ndata: line2\n\n"
      "error: {\"message\":\"boom\"}\n\n"
      "data: [DONE]";  // no closing blank line: delivered by finish()
  for (size_t piece : {1, 2, 3, 7, 1000}) {
    const auto events = parse_in_pieces(stream, piece);
    ASSERT_EQ(events.size(), 5u) << "piece " << piece;
    EXPECT_EQ(events[0].data, "{\"a\":1}");
    EXPECT_EQ(events[1].data, "{\"b\":2}");
    EXPECT_EQ(events[2].data, "line1\nline2");
    EXPECT_EQ(events[3].error, "{\"message\":\"boom\"}");
    EXPECT_EQ(events[4].data, "[DONE]");
  }
}

TEST(OpenAiApi, ReadsChatAndCompletionChunks) {
  auto chat = read_stream_chunk(Api::kChat, R"({"choices":[{"index":0,"delta":{"content":"Hi","reasoning_content":"hm "}}]})");
  EXPECT_EQ(chat.text, "hm Hi");
  EXPECT_EQ(read_stream_chunk(Api::kChat, R"({"choices":[{"delta":{"role":"assistant","content":null}}]})").text, "");
  auto usage = read_stream_chunk(Api::kChat, R"({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5}})");
  EXPECT_EQ(usage.prompt_tokens, 7);
  EXPECT_EQ(usage.completion_tokens, 5);
  EXPECT_EQ(read_stream_chunk(Api::kCompletions, R"({"choices":[{"text":" x"}]})").text, " x");
  EXPECT_EQ(read_response(Api::kChat, R"({"choices":[{"message":{"content":"whole"}}]})").text, "whole");
}

TEST(OpenAiApi, ErrorsInEveryShape) {
  EXPECT_EQ(read_stream_chunk(Api::kChat, R"({"error":{"message":"bad","type":"x"}})").error, "bad");
  EXPECT_EQ(read_stream_chunk(Api::kChat, R"({"object":"error","message":"vllm says no"})").error, "vllm says no");
  EXPECT_NE(read_stream_chunk(Api::kChat, "not json").error.find("not a JSON object"), std::string::npos);
  EXPECT_EQ(error_message(R"({"error":{"message":"model not found"}})"), "model not found");
  EXPECT_EQ(error_message("Internal Server Error"), "Internal Server Error");
}

TEST(OpenAiApi, BodyHasTheFieldsAndExtraOverrides) {
  ApiOptions o;
  o.model = "m";
  o.extra_body = {{"temperature", 0.6}, {"top_p", 0.9}};
  auto body = request_body(o, "hello", 12);
  EXPECT_EQ(body["messages"][0]["content"], "hello");
  EXPECT_EQ(body["max_tokens"], 12);
  EXPECT_EQ(body["ignore_eos"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["temperature"], 0.6);
  EXPECT_EQ(body["top_p"], 0.9);
  o.api = Api::kCompletions;
  o.stream = false;
  body = request_body(o, "hello", 3);
  EXPECT_EQ(body["prompt"], "hello");
  EXPECT_FALSE(body.contains("stream_options"));
}

TEST(Metrics, PercentileMatchesNumpyLinear) {
  const std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);  // np.percentile([1,2,3,4], 50)
  EXPECT_DOUBLE_EQ(percentile(v, 99), 3.97);
  EXPECT_DOUBLE_EQ(percentile({5}, 99), 5);
  EXPECT_DOUBLE_EQ(percentile({}, 50), 0);
}

TEST(Metrics, SglangDefinitions) {
  std::vector<RequestResult> results(3);
  auto ok = [](int64_t prompt, int64_t output, double ttft, double latency, std::vector<double> itl) {
    RequestResult r;
    r.success = true;
    r.prompt_len = prompt;
    r.output_len = r.retokenized_len = output;
    r.ttft_s = ttft;
    r.latency_s = latency;
    r.itl_s = std::move(itl);
    return r;
  };
  results[0] = ok(10, 5, 0.1, 0.5, {0.1, 0.1, 0.1, 0.1});
  results[1] = ok(20, 1, 0.2, 0.2, {});
  results[2].error = "HTTP 500: oops";
  results[2].prompt_len = 30;
  const BenchMetrics m = compute_metrics(results, 2.0);
  EXPECT_EQ(m.completed, 2);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.first_error, "HTTP 500: oops");
  EXPECT_EQ(m.total_input, 30);  // failed requests' prompts are not counted
  EXPECT_EQ(m.total_output, 6);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.0);
  EXPECT_DOUBLE_EQ(m.output_throughput, 3.0);
  EXPECT_DOUBLE_EQ(m.total_throughput, 18.0);
  EXPECT_NEAR(m.ttft.mean, 150, 1e-9);
  EXPECT_EQ(m.tpot.count, 1);  // a one-token answer has no TPOT
  EXPECT_NEAR(m.tpot.mean, 100, 1e-9);  // (500 - 100) / (5 - 1)
  EXPECT_EQ(m.itl.count, 4);
  EXPECT_NEAR(m.concurrency, 0.35, 1e-12);  // (0.5 + 0.2) / 2
}

TEST(Datasets, RandomPromptsHaveTheirTokenLengths) {
  const std::filesystem::path dir = std::filesystem::path(LOWBIT_SOURCE_DIR) / "models/smollm2-135m-instruct";
  if (!std::filesystem::exists(dir / "tokenizer.json")) GTEST_SKIP() << dir << " is missing";
  const Tokenizer tok = Tokenizer::from_dir(dir);
  std::mt19937_64 rng(7);
  const auto prompts = random_dataset(tok, {.num_prompts = 20, .input_len = 64, .output_len = 8, .range_ratio = 0.5}, rng);
  ASSERT_EQ(prompts.size(), 20u);
  for (const auto& p : prompts) {
    EXPECT_EQ(p.prompt_len, int64_t(tok.encode(p.text).size()));
    EXPECT_GE(p.output_len, 4);
    EXPECT_LE(p.output_len, 8);
    EXPECT_GE(p.prompt_len, 32);
    EXPECT_LE(p.prompt_len, 64);
  }
  const RandomText random_text(tok);
  for (int64_t n : {1, 2, 5, 17, 100, 1000}) EXPECT_EQ(tok.encode(random_text.make(n, rng)).size(), size_t(n)) << n;
  std::mt19937_64 rng2(7);
  const auto gsp = shared_prefix_dataset(tok, {.num_groups = 3, .prompts_per_group = 4, .system_prompt_len = 40,
                                               .question_len = 10, .output_len = 6}, rng2);
  ASSERT_EQ(gsp.size(), 12u);
  // Random text may itself hold "\n\n", so groups are told apart by their first characters.
  std::map<std::string, int> groups;
  for (const auto& p : gsp) {
    ++groups[p.text.substr(0, 24)];
    EXPECT_EQ(p.output_len, 6);
    EXPECT_NEAR(double(p.prompt_len), 40 + 10 + 1, 3);  // system + "\n\n" + question, merges aside
  }
  EXPECT_EQ(groups.size(), 3u);
  for (const auto& [prefix, count] : groups) EXPECT_EQ(count, 4);
}

}  // namespace
}  // namespace lowbit::bench_serving
