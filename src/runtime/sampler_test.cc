#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

namespace lowbit {
namespace {

std::vector<float> logits_of(std::vector<double> probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(p > 0 ? float(std::log(p)) : -INFINITY);
  return l;
}

std::map<int32_t, int> histogram(const SamplingParams& p, const std::vector<float>& logits, int draws) {
  Sampler s(p, int64_t(logits.size()));
  std::map<int32_t, int> h;
  for (int i = 0; i < draws; ++i) {
    s.start({});
    auto l = logits;
    h[s.sample(l.data())]++;
  }
  return h;
}

TEST(Sampler, GreedyPicksArgmax) {
  SamplingParams p;
  auto l = logits_of({0.1, 0.5, 0.4});
  Sampler s(p, 3);
  EXPECT_EQ(s.sample(l.data()), 1);
}

TEST(Sampler, SeedIsReproducibleAndDistributionIsRight) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 123;
  const auto l = logits_of({0.1, 0.2, 0.3, 0.4});
  auto a = histogram(p, l, 20000), b = histogram(p, l, 20000);
  EXPECT_EQ(a, b);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(a[i] / 20000.0, 0.1 * (i + 1), 0.015) << i;
}

TEST(Sampler, TopKTopPMinP) {
  const auto l = logits_of({0.05, 0.15, 0.3, 0.5});
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  auto h = histogram(p, l, 5000);
  EXPECT_EQ(h.count(0) + h.count(1), 0u);
  EXPECT_NEAR(h[3] / 5000.0, 0.5 / 0.8, 0.03);
  p.top_k = 0;
  p.top_p = 0.75f;  // {0.5, 0.3} reach 0.8 >= 0.75
  h = histogram(p, l, 5000);
  EXPECT_EQ(h.count(0) + h.count(1), 0u);
  p.top_p = 1.0f;
  p.min_p = 0.35f;  // keep p >= 0.175: {0.3, 0.5}
  h = histogram(p, l, 5000);
  EXPECT_EQ(h.count(0) + h.count(1), 0u);
  EXPECT_GT(h[2], 0);
}

TEST(Sampler, Penalties) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  Sampler s(p, 3);
  const std::vector<int32_t> prompt = {0};
  s.start(prompt);
  std::vector<float> l = {3.0f, 2.0f, -1.0f};  // token 0 penalised: 3/2 = 1.5 < 2
  EXPECT_EQ(s.sample(l.data()), 1);
  EXPECT_FLOAT_EQ(l[0], 1.5f);
  SamplingParams q;
  q.frequency_penalty = 1.0f;
  q.presence_penalty = 0.5f;
  Sampler t(q, 2);
  t.start({});
  std::vector<float> m = {1.0f, 0.0f};
  EXPECT_EQ(t.sample(m.data()), 0);  // now token 0 has count 1: 1 - 0.5 - 1 = -0.5 < 0
  m = {1.0f, 0.0f};
  EXPECT_EQ(t.sample(m.data()), 1);
}

TEST(Sampler, RejectsBadParams) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_THROW(Sampler(p, 3), std::exception);
  p = {};
  p.temperature = -1;
  EXPECT_THROW(Sampler(p, 3), std::exception);
}

TEST(Sampler, GenerationDefaultsFollowTransformers) {
  GenerationDefaults g;
  EXPECT_EQ(SamplingParams::from_generation_defaults(g).temperature, 0.0f);  // do_sample absent: greedy
  g.do_sample = true;
  g.temperature = 0.6;
  auto p = SamplingParams::from_generation_defaults(g);
  EXPECT_FLOAT_EQ(p.temperature, 0.6f);
  EXPECT_EQ(p.top_k, 50);
}

}  // namespace
}  // namespace lowbit
