// The choice logic of `lowbit quantize --target-kld / --target-bits` (scheme_choice.h) against
// brute force, its edge cases, the fast exp and row KL the measurement uses (scheme_probe.h),
// and the candidate lists (scheme_search.h). The measurement itself runs end to end in
// tests/python/test_scheme_search.py.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "quantize/scheme_choice.h"
#include "quantize/scheme_probe.h"
#include "quantize/scheme_search.h"
#include "runtime/kl_divergence.h"

namespace lowbit::quantize {
namespace {

using Units = std::vector<std::vector<KnapsackOption>>;

// The least Σ cost with Σ weight ≤ budget over every combination; +inf when none fits.
double brute_force(const Units& units, double budget) {
  std::vector<size_t> idx(units.size(), 0);
  double best = INFINITY;
  while (true) {
    double c = 0, w = 0;
    for (size_t u = 0; u < units.size(); ++u) c += units[u][idx[u]].cost, w += units[u][idx[u]].weight;
    if (w <= budget) best = std::min(best, c);
    size_t u = 0;
    while (u < units.size() && ++idx[u] == units[u].size()) idx[u++] = 0;
    if (u == units.size()) break;
  }
  return best;
}

double cost_of(const Units& units, const std::vector<int>& pick, double* weight = nullptr) {
  double c = 0, w = 0;
  for (size_t u = 0; u < units.size(); ++u) c += units[u][size_t(pick[u])].cost, w += units[u][size_t(pick[u])].weight;
  if (weight) *weight = w;
  return c;
}

// Weights on a grid of budget / bins: the discretisation is exact, so the DP is the optimum.
TEST(MinCostChoice, MatchesBruteForceOnGridWeights) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 300; ++trial) {
    const int bins = 64;
    const double budget = 2.0;
    const int nu = 1 + int(rng() % 6);
    Units units(static_cast<size_t>(nu));
    for (auto& opts : units) {
      const int no = 1 + int(rng() % 4);
      for (int o = 0; o < no; ++o)
        opts.push_back({double(rng() % 1000), double(rng() % 40) * budget / bins});
    }
    const double best = brute_force(units, budget);
    const auto pick = min_cost_choice(units, budget, bins);
    ASSERT_EQ(pick.has_value(), std::isfinite(best)) << "trial " << trial;
    if (!pick) continue;
    double w = 0;
    EXPECT_DOUBLE_EQ(cost_of(units, *pick, &w), best) << "trial " << trial;
    EXPECT_LE(w, budget + 1e-12);
  }
}

// Arbitrary real weights: the choice always fits the real budget, and costs no more than the
// best choice under the budget less one bin per unit (the most the rounding up can take).
TEST(MinCostChoice, RealWeightsFeasibleAndNearOptimal) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  for (int trial = 0; trial < 300; ++trial) {
    const int bins = 1000;
    const int nu = 1 + int(rng() % 6);
    Units units(static_cast<size_t>(nu));
    for (auto& opts : units) {
      const int no = 1 + int(rng() % 4);
      for (int o = 0; o < no; ++o) opts.push_back({uni(rng) * 100, uni(rng) * uni(rng)});
    }
    const double budget = uni(rng) * nu * 0.5;
    const auto pick = min_cost_choice(units, budget, bins);
    const double slack_best = brute_force(units, budget - nu * budget / bins);
    if (std::isfinite(slack_best)) {
      ASSERT_TRUE(pick.has_value()) << "trial " << trial;
    }
    if (!pick) {
      EXPECT_FALSE(std::isfinite(brute_force(units, budget - 1e-9 * budget))) << "trial " << trial;
      continue;
    }
    double w = 0;
    const double c = cost_of(units, *pick, &w);
    EXPECT_LE(w, budget * (1 + 1e-9)) << "trial " << trial;
    EXPECT_LE(c, slack_best + 1e-9) << "trial " << trial;
    EXPECT_GE(c, brute_force(units, budget) - 1e-9) << "trial " << trial;
  }
}

TEST(MinCostChoice, ZeroBudgetTakesZeroWeightOptionsOnly) {
  const Units units = {{{5, 0.0}, {1, 0.1}}, {{3, 0.0}, {2, 0.0}}};
  auto pick = min_cost_choice(units, 0.0);
  ASSERT_TRUE(pick);
  EXPECT_EQ(*pick, (std::vector<int>{0, 1}));
  EXPECT_FALSE(min_cost_choice({{{1, 0.1}}}, 0.0));
  EXPECT_FALSE(min_cost_choice({{{1, 0.1}}}, 0.05));  // the only option exceeds the budget
}

// Three candidates (W4, W8, FLOAT) per unit, the way the search fills them in.
std::vector<UnitScores> three_units() {
  std::vector<UnitScores> u(3);
  const double dk[3][3] = {{0.02, 0.002, 0}, {0.05, 0.004, 0}, {0.01, 0.001, 0}};
  for (size_t i = 0; i < 3; ++i) {
    u[i].label = "unit " + std::to_string(i);
    u[i].weights = 1000;
    u[i].bytes = {560, 1010, 2000};
    u[i].dkld = {dk[i][0], dk[i][1], dk[i][2]};
    u[i].available = {true, true, true};
  }
  return u;
}

TEST(ChooseForKld, LooseTargetTakesTheCheapestEverywhere) {
  const SchemeChoice c = choose_for_kld(three_units(), 10.0);
  EXPECT_TRUE(c.reached);
  EXPECT_EQ(c.pick, (std::vector<int>{0, 0, 0}));
  EXPECT_DOUBLE_EQ(c.bytes, 3 * 560);
  EXPECT_NEAR(c.predicted_kld, 0.08, 1e-12);
}

TEST(ChooseForKld, TightTargetKeepsTheSensitiveUnitAtEightBits) {
  // 0.035: W4 on units 0 and 2 (0.03) plus W8 on unit 1 (0.004) fits; W4 on unit 1 never does.
  const SchemeChoice c = choose_for_kld(three_units(), 0.035);
  EXPECT_TRUE(c.reached);
  EXPECT_EQ(c.pick, (std::vector<int>{0, 1, 0}));
  EXPECT_LE(c.predicted_kld, 0.035);
}

TEST(ChooseForKld, TinyTargetKeepsEverythingFloat) {
  const SchemeChoice c = choose_for_kld(three_units(), 1e-6);
  EXPECT_TRUE(c.reached);
  EXPECT_EQ(c.pick, (std::vector<int>{2, 2, 2}));
  EXPECT_EQ(c.predicted_kld, 0);
}

TEST(ChooseForKld, UnreachableWithoutFloatFallsBackToLeastKld) {
  auto u = three_units();
  for (auto& x : u) x.available[2] = false;  // FLOAT excluded: 0.007 is the least reachable
  const SchemeChoice c = choose_for_kld(u, 0.005);
  EXPECT_FALSE(c.reached);
  EXPECT_EQ(c.pick, (std::vector<int>{1, 1, 1}));
}

TEST(ChooseForKld, UnavailableCandidateIsNeverPicked) {
  auto u = three_units();
  u[2].available[0] = false;  // e.g. a group size that does not divide in_features
  const SchemeChoice c = choose_for_kld(u, 10.0);
  EXPECT_EQ(c.pick, (std::vector<int>{0, 0, 1}));
}

TEST(ChooseForBytes, BudgetBetweenUniformPoints) {
  // 3 × 560 = 1680 bytes at least; 2200 bytes buys W8 on exactly one unit: the most sensitive.
  const SchemeChoice c = choose_for_bytes(three_units(), 2200);
  EXPECT_TRUE(c.reached);
  EXPECT_EQ(c.pick, (std::vector<int>{0, 1, 0}));
  EXPECT_LE(c.bytes, 2200);
  // All FLOAT needs 6000 bytes; rounding each unit up to whole bins can take up to 3 bins more.
  const SchemeChoice all = choose_for_bytes(three_units(), 6000 * (1 + 3.0 / 16384));
  EXPECT_EQ(all.pick, (std::vector<int>{2, 2, 2}));
  const SchemeChoice none = choose_for_bytes(three_units(), 1000);
  EXPECT_FALSE(none.reached);
  EXPECT_EQ(none.pick, (std::vector<int>{0, 0, 0}));
}

TEST(SchemeProbe, FastExpIsAccurate) {
  double worst = 0;
  for (float x = -87.0f; x <= 0.0f; x += 0.0137f)
    worst = std::max(worst, std::fabs(double(exp_nonpositive(x)) / std::exp(double(x)) - 1.0));
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(exp_nonpositive(0.0f), 1.0f);
  EXPECT_GE(exp_nonpositive(-1000.0f), 0.0f);
}

TEST(SchemeProbe, RowKlMatchesCompareLogits) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 3.0f);
  const int64_t vocab = 5000;
  std::vector<float> base(vocab), quant(vocab);
  for (int64_t i = 0; i < vocab; ++i) base[size_t(i)] = g(rng), quant[size_t(i)] = base[size_t(i)] + 0.1f * g(rng);
  std::vector<double> logp(vocab);
  log_softmax(base, logp);
  std::vector<float> p(vocab);
  double plp = 0, ps = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    p[size_t(i)] = float(std::exp(logp[size_t(i)]));
    plp += double(p[size_t(i)]) * logp[size_t(i)];
    ps += p[size_t(i)];
  }
  const double want = compare_logits(base, quant, 0).kl;
  EXPECT_NEAR(row_kl(p.data(), plp, ps, quant.data(), vocab), want, 1e-6 + 1e-4 * want);
  EXPECT_NEAR(row_kl(p.data(), plp, ps, base.data(), vocab), 0.0, 1e-6);
}

TEST(SearchCandidates, DefaultsAndValidation) {
  auto ct = search_candidates(OutFormat::CompressedTensors, "", std::nullopt);
  ASSERT_EQ(ct.size(), 4u);
  EXPECT_EQ(ct[0].label(), "W4A16 g128");
  EXPECT_EQ(ct[1].label(), "W4A16 g32");
  EXPECT_EQ(ct[2].label(), "W8A8");
  EXPECT_EQ(ct[3].label(), "FLOAT");
  auto ms = search_candidates(OutFormat::MsModelSlim, "W8A8_DYNAMIC", std::nullopt);
  ASSERT_EQ(ms.size(), 2u);  // FLOAT added
  EXPECT_EQ(ms[1].scheme, "FLOAT");
  auto g = search_candidates(OutFormat::CompressedTensors, "W4A16_ASYM:64, W8A8", std::nullopt);
  EXPECT_EQ(g[0].label(), "W4A16_ASYM g64");

  auto message = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { search_candidates(OutFormat::MsModelSlim, "W4A16", std::nullopt); }).find("compressed-tensors"),
            std::string::npos);
  EXPECT_NE(message([] { search_candidates(OutFormat::CompressedTensors, "W8A8_STATIC", std::nullopt); })
                .find("cannot simulate"),
            std::string::npos);
  EXPECT_NE(message([] { search_candidates(OutFormat::CompressedTensors, "W8A8:32", std::nullopt); })
                .find("has no group size"),
            std::string::npos);
  EXPECT_NE(message([] { search_candidates(OutFormat::CompressedTensors, "W4A16:x", std::nullopt); })
                .find("whole number"),
            std::string::npos);
  EXPECT_NE(message([] { search_candidates(OutFormat::CompressedTensors, "W8A8,W8A8", std::nullopt); })
                .find("twice"),
            std::string::npos);
  EXPECT_NE(message([] {
              search_candidates(OutFormat::MsModelSlim, "W4A8_DYNAMIC:64,W4A8_DYNAMIC:0", std::nullopt);
            }).find("one global group size"),
            std::string::npos);

  SearchOptions o;
  EXPECT_NE(message([&] { check_search_options(o); }).find("needs --target-kld"), std::string::npos);
  o.target_kld = 0.05;
  o.target_bits = 5;
  EXPECT_NE(message([&] { check_search_options(o); }).find("exclusive"), std::string::npos);
  o.target_bits.reset();
  o.target_kld = -1;
  EXPECT_NE(message([&] { check_search_options(o); }).find("positive"), std::string::npos);
}

}  // namespace
}  // namespace lowbit::quantize
