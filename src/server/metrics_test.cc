#include <gtest/gtest.h>

#include "runtime/engine.h"
#include "server/metrics.h"

namespace lowbit {
namespace {

TEST(Histogram, CumulativeBucketsSumAndCount) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 20.0}) h.observe(v);
  std::string out;
  h.write(out, "x", "m=\"a\"");
  EXPECT_NE(out.find("x_bucket{m=\"a\",le=\"0.1\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_bucket{m=\"a\",le=\"1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_bucket{m=\"a\",le=\"10\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_bucket{m=\"a\",le=\"+Inf\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_sum{m=\"a\"} 20.65\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_count{m=\"a\"} 4\n"), std::string::npos) << out;
}

TEST(ServerMetrics, SglangNamesAndEngineStats) {
  ServerMetrics m("my \"model\"");
  m.observe_ttft(0.25);
  m.observe_inter_token(0.01);
  m.observe_finished(2.0, 0.25, 8);
  EngineStats s;
  s.running = 3;
  s.queued = 2;
  s.kv_pages_used = 5;
  s.kv_pages_total = 20;
  s.page_size = 32;
  s.prompt_tokens_total = 100;
  s.cached_tokens_total = 40;
  s.generation_tokens_total = 7;
  s.prefix_queried_tokens = 50;
  s.prefix_hit_tokens = 20;
  s.prefix_cached_pages = 2;
  const std::string out = m.render(s);
  const std::string l = "{model_name=\"my \\\"model\\\"\"}";
  for (const std::string& line :
       {"sglang:prompt_tokens_total" + l + " 100", "sglang:generation_tokens_total" + l + " 7",
        "sglang:num_running_reqs" + l + " 3", "sglang:num_queue_reqs" + l + " 2", "sglang:token_usage" + l + " 0.25",
        "sglang:cache_hit_rate" + l + " 0.4", "lowbit_kv_pages_used" + l + " 5", "lowbit_kv_pages_in_requests" + l + " 3",
        "sglang:time_to_first_token_seconds_count" + l + " 1", "sglang:e2e_request_latency_seconds_count" + l + " 1",
        "sglang:time_per_output_token_seconds_sum" + l + " 0.25", "sglang:inter_token_latency_seconds_count" + l + " 1",
        std::string("# TYPE sglang:time_to_first_token_seconds histogram")})
    EXPECT_NE(out.find(line + "\n"), std::string::npos) << line << "\n" << out;
  EXPECT_EQ(out.find("lowbit_moe_expert"), std::string::npos) << "expert series only when the engine reports them";
}

// --enable-expert-distribution-metrics: one counter per layer and expert, one balancedness
// gauge per layer.
TEST(ServerMetrics, ExpertDistribution) {
  ServerMetrics m("moe");
  EngineStats s;
  s.expert_tokens = {{1, {6, 2, 0, 0}}, {3, {2, 2, 2, 2}}};
  const std::string out = m.render(s);
  for (const std::string& line :
       {std::string("# TYPE lowbit_moe_expert_tokens_total counter"),
        std::string("lowbit_moe_expert_tokens_total{model_name=\"moe\",layer=\"1\",expert=\"0\"} 6"),
        std::string("lowbit_moe_expert_tokens_total{model_name=\"moe\",layer=\"1\",expert=\"3\"} 0"),
        std::string("lowbit_moe_expert_tokens_total{model_name=\"moe\",layer=\"3\",expert=\"2\"} 2"),
        std::string("lowbit_moe_expert_balancedness{model_name=\"moe\",layer=\"1\"} 0.3333333333333333"),
        std::string("lowbit_moe_expert_balancedness{model_name=\"moe\",layer=\"3\"} 1")})
    EXPECT_NE(out.find(line + "\n"), std::string::npos) << line << "\n" << out;
}

}  // namespace
}  // namespace lowbit
