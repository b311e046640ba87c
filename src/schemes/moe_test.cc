// The CPU MoeMethod (schemes/routed_experts.cc) and its routing against a scalar reference
// written from ../shared/spec/qwen3-moe-next.md §1.4, in double: p = softmax(z) over all E,
// the k largest p (ties to the lower id), optional renormalisation, then
// y = Σ_j w_j · W_down · (silu(W_gate x) ⊙ W_up x).
// Tolerance: the implementation sums in fp32 over K ≤ 64 terms per dot product, twice in
// sequence (gate/up then down), with silu in between; γ_64 = 64·2^-24 ≈ 3.8e-6 per dot product
// relative to Σ|terms|, which is within a few × max|y| for these O(1) weights. 2e-5 × max|y|
// leaves room for that and fails on any routing mistake (one wrong expert moves y by O(max|y|)).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "io/test_util.h"
#include "schemes/float_linear.h"
#include "schemes/moe_method.h"

namespace lowbit {
namespace {

struct Problem {
  int64_t m, E, k, H, F;
  bool normalize;
  std::vector<float> x, logits;
  std::vector<std::vector<float>> gate, up, down;  // per expert [F,H], [F,H], [H,F]
  std::vector<std::vector<float>> gate_up;         // per expert [2F,H]
};

Problem make_problem(int64_t m, int64_t E, int64_t k, int64_t H, int64_t F, bool normalize, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  Problem p{m, E, k, H, F, normalize, {}, {}, {}, {}, {}, {}};
  auto fill = [&](std::vector<float>& v, size_t n, float s) {
    v.resize(n);
    for (auto& e : v) e = s * d(rng);
  };
  fill(p.x, size_t(m * H), 1.0f);
  fill(p.logits, size_t(m * E), 2.0f);
  p.gate.resize(size_t(E));
  p.up.resize(size_t(E));
  p.down.resize(size_t(E));
  p.gate_up.resize(size_t(E));
  for (int64_t e = 0; e < E; ++e) {
    fill(p.gate[size_t(e)], size_t(F * H), 1.0f / std::sqrt(float(H)));
    fill(p.up[size_t(e)], size_t(F * H), 1.0f / std::sqrt(float(H)));
    fill(p.down[size_t(e)], size_t(H * F), 1.0f / std::sqrt(float(F)));
    auto& gu = p.gate_up[size_t(e)];
    gu = p.gate[size_t(e)];
    gu.insert(gu.end(), p.up[size_t(e)].begin(), p.up[size_t(e)].end());
  }
  return p;
}

// (experts, weights) of one token, from the spec.
std::vector<std::pair<int64_t, double>> reference_route(const float* z, int64_t E, int64_t k, bool normalize) {
  double mx = -INFINITY;
  for (int64_t e = 0; e < E; ++e) mx = std::max(mx, double(z[e]));
  std::vector<double> p(static_cast<size_t>(E));
  double sum = 0;
  for (int64_t e = 0; e < E; ++e) sum += p[size_t(e)] = std::exp(double(z[e]) - mx);
  std::vector<int64_t> ids(static_cast<size_t>(E));
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return p[size_t(a)] > p[size_t(b)]; });
  std::vector<std::pair<int64_t, double>> out;
  double kept = 0;
  for (int64_t j = 0; j < k; ++j) {
    out.emplace_back(ids[size_t(j)], p[size_t(ids[size_t(j)])] / sum);
    kept += out.back().second;
  }
  if (normalize)
    for (auto& o : out) o.second /= kept;
  return out;
}

std::vector<double> reference_moe(const Problem& p) {
  std::vector<double> y(size_t(p.m * p.H), 0.0);
  std::vector<double> act(static_cast<size_t>(p.F));
  for (int64_t t = 0; t < p.m; ++t) {
    const float* x = p.x.data() + t * p.H;
    for (auto [e, w] : reference_route(p.logits.data() + t * p.E, p.E, p.k, p.normalize)) {
      for (int64_t f = 0; f < p.F; ++f) {
        double g = 0, u = 0;
        for (int64_t h = 0; h < p.H; ++h) {
          g += double(p.gate[size_t(e)][size_t(f * p.H + h)]) * x[h];
          u += double(p.up[size_t(e)][size_t(f * p.H + h)]) * x[h];
        }
        act[size_t(f)] = g / (1.0 + std::exp(-g)) * u;
      }
      for (int64_t h = 0; h < p.H; ++h) {
        double s = 0;
        for (int64_t f = 0; f < p.F; ++f) s += double(p.down[size_t(e)][size_t(h * p.F + f)]) * act[size_t(f)];
        y[size_t(t * p.H + h)] += w * s;
      }
    }
  }
  return y;
}

std::unique_ptr<LinearMethod> float_linear(const std::vector<float>& w, int64_t n, int64_t k, const std::string& name) {
  LinearTensors t{name, TensorView{name + ".weight", DType::F32, {n, k}, w.data()}, std::nullopt, {}};
  return std::make_unique<FloatLinear>(t, LinearShape{k, n}, cpu_features());
}

std::unique_ptr<MoeMethod> build(const Problem& p, bool fused_gate_up) {
  std::vector<ExpertLinears> experts(static_cast<size_t>(p.E));
  for (int64_t e = 0; e < p.E; ++e) {
    const std::string n = "experts." + std::to_string(e);
    ExpertLinears& x = experts[size_t(e)];
    if (fused_gate_up) {
      x.gate_up = float_linear(p.gate_up[size_t(e)], 2 * p.F, p.H, n + ".gate_up_proj");
    } else {
      x.gate = float_linear(p.gate[size_t(e)], p.F, p.H, n + ".gate_proj");
      x.up = float_linear(p.up[size_t(e)], p.F, p.H, n + ".up_proj");
    }
    x.down = float_linear(p.down[size_t(e)], p.H, p.F, n + ".down_proj");
  }
  return make_routed_experts("test.mlp.experts", {p.E, p.k, p.normalize}, std::move(experts), nullptr);
}

void expect_matches_reference(const Problem& p, ThreadPool& pool) {
  const std::vector<double> want = reference_moe(p);
  double scale = 0;
  for (double v : want) scale = std::max(scale, std::abs(v));
  for (bool fused : {true, false}) {
    auto moe = build(p, fused);
    // Strided rows: y and x with padding, to check ldx/ldy are honoured.
    const int64_t ldx = p.H + 3, ldy = p.H + 5, ldr = p.E + 2;
    std::vector<float> x(size_t(p.m * ldx), NAN), z(size_t(p.m * ldr), NAN), y(size_t(p.m * ldy), -7.0f);
    for (int64_t t = 0; t < p.m; ++t) {
      std::copy_n(p.x.data() + t * p.H, p.H, x.data() + t * ldx);
      std::copy_n(p.logits.data() + t * p.E, p.E, z.data() + t * ldr);
    }
    moe->apply(x.data(), ldx, p.m, z.data(), ldr, y.data(), ldy, pool);
    double worst = 0;
    for (int64_t t = 0; t < p.m; ++t) {
      for (int64_t h = 0; h < p.H; ++h)
        worst = std::max(worst, std::abs(double(y[size_t(t * ldy + h)]) - want[size_t(t * p.H + h)]));
      for (int64_t h = p.H; h < ldy && t + 1 < p.m; ++h) ASSERT_EQ(y[size_t(t * ldy + h)], -7.0f) << "padding written";
    }
    EXPECT_LE(worst, 2e-5 * scale) << "fused gate_up " << fused << ", m " << p.m << ", E " << p.E << ", k " << p.k;
  }
}

TEST(RouteTokens, MatchesReferenceAndGroupsByExpert) {
  for (bool normalize : {false, true}) {
    const Problem p = make_problem(29, 8, 3, 4, 4, normalize, 5);
    RoutePlan plan;
    route_tokens(p.logits.data(), p.E, p.m, {p.E, p.k, normalize}, plan);
    for (int64_t t = 0; t < p.m; ++t) {
      const auto want = reference_route(p.logits.data() + t * p.E, p.E, p.k, normalize);
      double total = 0;
      for (int64_t j = 0; j < p.k; ++j) {
        EXPECT_EQ(plan.expert[size_t(t * p.k + j)], want[size_t(j)].first) << "token " << t << " choice " << j;
        EXPECT_NEAR(plan.weight[size_t(t * p.k + j)], want[size_t(j)].second, 1e-6);
        total += plan.weight[size_t(t * p.k + j)];
      }
      if (normalize)
        EXPECT_NEAR(total, 1.0, 1e-6);
      else
        EXPECT_LT(total, 1.0);
    }
    ASSERT_EQ(plan.offsets.front(), 0);
    ASSERT_EQ(plan.offsets.back(), p.m * p.k);
    for (int64_t e = 0; e < p.E; ++e)
      for (int64_t i = plan.offsets[size_t(e)]; i < plan.offsets[size_t(e + 1)]; ++i) {
        EXPECT_EQ(plan.expert[size_t(plan.order[size_t(i)])], e);
        if (i > plan.offsets[size_t(e)]) {
          EXPECT_LT(plan.order[size_t(i - 1)], plan.order[size_t(i)]);
        }
      }
  }
}

TEST(RouteTokens, TiesGoToTheLowerExpert) {
  const std::vector<float> z = {1.0f, 3.0f, 3.0f, 0.5f, 3.0f};
  RoutePlan plan;
  route_tokens(z.data(), 5, 1, {5, 2, true}, plan);
  EXPECT_EQ(plan.expert[0], 1);
  EXPECT_EQ(plan.expert[1], 2);
  EXPECT_FLOAT_EQ(plan.weight[0], 0.5f);
}

TEST(RouteTokens, TopKOutOfRangeIsAnError) {
  const std::vector<float> z(4, 0.0f);
  RoutePlan plan;
  testing::expect_error([&] { route_tokens(z.data(), 4, 1, {4, 5, false}, plan); }, {"top_k 5", "num_experts = 4"});
}

TEST(RoutedExperts, RandomBatchesMatchReference) {
  ThreadPool pool(2);
  for (int64_t m : {1, 2, 7, 37})
    for (bool normalize : {false, true})
      expect_matches_reference(make_problem(m, 8, 3, 32, 24, normalize, uint32_t(m)), pool);
  expect_matches_reference(make_problem(19, 6, 2, 40, 17, true, 9), pool);  // odd sizes
}

TEST(RoutedExperts, ExpertWithNoTokens) {
  ThreadPool pool(2);
  Problem p = make_problem(23, 8, 2, 32, 16, true, 11);
  for (int64_t t = 0; t < p.m; ++t) p.logits[size_t(t * p.E + 5)] = -30.0f;  // expert 5 never chosen
  RoutePlan plan;
  route_tokens(p.logits.data(), p.E, p.m, {p.E, p.k, true}, plan);
  ASSERT_EQ(plan.offsets[6] - plan.offsets[5], 0);
  expect_matches_reference(p, pool);
}

TEST(RoutedExperts, AllTokensOnOneExpert) {
  ThreadPool pool(2);
  Problem p = make_problem(31, 8, 1, 32, 16, false, 12);
  for (int64_t t = 0; t < p.m; ++t) p.logits[size_t(t * p.E + 2)] = 30.0f;
  RoutePlan plan;
  route_tokens(p.logits.data(), p.E, p.m, {p.E, p.k, false}, plan);
  ASSERT_EQ(plan.offsets[3] - plan.offsets[2], p.m);
  expect_matches_reference(p, pool);
}

// The per-expert token counters add up each batch's routing, and the balancedness of the
// counts is mean / max.
TEST(RoutedExperts, CountsTokensPerExpert) {
  ThreadPool pool(2);
  Problem p = make_problem(23, 8, 2, 32, 16, true, 11);
  for (int64_t t = 0; t < p.m; ++t) p.logits[size_t(t * p.E + 5)] = -30.0f;  // expert 5 never chosen
  auto moe = build(p, true);
  EXPECT_EQ(moe->expert_token_counts(), std::vector<int64_t>(size_t(p.E), 0));
  RoutePlan plan;
  route_tokens(p.logits.data(), p.E, p.m, {p.E, p.k, true}, plan);
  std::vector<float> y(size_t(p.m * p.H));
  for (int call = 1; call <= 2; ++call) {
    moe->apply(p.x.data(), p.H, p.m, p.logits.data(), p.E, y.data(), p.H, pool);
    const std::vector<int64_t> counts = moe->expert_token_counts();
    ASSERT_EQ(int64_t(counts.size()), p.E);
    int64_t sum = 0;
    for (int64_t e = 0; e < p.E; ++e) {
      EXPECT_EQ(counts[size_t(e)], call * (plan.offsets[size_t(e + 1)] - plan.offsets[size_t(e)])) << e;
      sum += counts[size_t(e)];
    }
    EXPECT_EQ(sum, call * p.m * p.k);
    EXPECT_EQ(counts[5], 0);
  }
  EXPECT_DOUBLE_EQ(expert_balancedness({4, 4, 4, 4}), 1.0);
  EXPECT_DOUBLE_EQ(expert_balancedness({8, 0, 0, 0}), 0.25);
  EXPECT_DOUBLE_EQ(expert_balancedness({3, 1}), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(expert_balancedness({0, 0}), 1.0);
}

TEST(RoutedExperts, TopKEqualsNumExperts) {
  ThreadPool pool(2);
  for (bool normalize : {false, true}) expect_matches_reference(make_problem(13, 4, 4, 32, 16, normalize, 13), pool);
}

TEST(RoutedExperts, ExpertsOfDifferentShapesAreAnError) {
  Problem p = make_problem(1, 2, 1, 8, 4, true, 14);
  std::vector<ExpertLinears> experts(2);
  experts[0].gate_up = float_linear(p.gate_up[0], 8, 8, "e0.gate_up");
  experts[0].down = float_linear(p.down[0], 8, 4, "e0.down");
  std::vector<float> big(8 * 8, 0.0f);
  experts[1].gate_up = float_linear(big, 8, 8, "e1.gate_up");
  experts[1].down = float_linear(p.down[1], 8, 4, "e1.down");
  experts[1].down = float_linear(big, 4, 8, "e1.down");  // [H=4, F=8]: wrong
  testing::expect_error(
      [&] {
        make_routed_experts("model.layers.3.mlp.experts", {2, 1, true}, std::move(experts), nullptr);
      },
      {"model.layers.3.mlp.experts", "expert 1"});
}

}  // namespace
}  // namespace lowbit
