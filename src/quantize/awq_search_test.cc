// AWQ's building blocks (awq_search.h) against the formulas written out here, and the clip
// search against a scalar recomputation of every group's output error.
#include "quantize/awq_search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "quantize/quantize_test_util.h"

namespace lowbit::quantize {
namespace {

TEST(AwqFactors, DuoAndPlainFollowTheFormulaAndAreNormalised) {
  const std::vector<float> x = {1.0f, 4.0f, 0.25f}, w = {0.5f, 0.25f, 1.0f};
  for (bool duo : {false, true})
    for (float r : {0.0f, 0.3f, 0.5f, 0.95f}) {
      const std::vector<float> s = awq_factors(x, w, r, duo);
      std::vector<double> raw(3);
      for (int j = 0; j < 3; ++j) {
        double v = std::pow(double(x[j]), double(r));
        if (duo) v /= std::pow(double(w[j]), 1.0 - double(r)) + 1e-4;
        raw[size_t(j)] = std::max(v, 1e-4);
      }
      const double mx = *std::max_element(raw.begin(), raw.end()), mn = *std::min_element(raw.begin(), raw.end());
      for (int j = 0; j < 3; ++j) EXPECT_NEAR(s[size_t(j)], raw[size_t(j)] / std::sqrt(mx * mn), 1e-5) << r << duo;
    }
  // Plain at ratio 0 is the identity, the "off" candidate.
  for (float v : awq_factors(x, w, 0.0f, false)) EXPECT_FLOAT_EQ(v, 1.0f);
}

TEST(AwqFactors, ZeroActivationChannelsAreClampedNotZero) {
  const std::vector<float> s = awq_factors({0.0f, 1.0f}, {1.0f, 1.0f}, 0.5f, false);
  EXPECT_GT(s[0], 0.0f);
  EXPECT_TRUE(std::isfinite(s[0]) && std::isfinite(s[1]));
}

TEST(AwqWeightMean, NormalisesByEachGroupsMax) {
  // Two consumers sharing K = 4, groups of 2: w̄_j = mean over the 3 rows of |w| / group max.
  const std::vector<float> a = {1, -2, 4, 0, /**/ 3, 3, -1, 1};
  const std::vector<float> b = {0, 0, 2, -8};
  GroupData g;
  g.w = {&a, &b};
  g.n = {2, 1};
  g.k = 4;
  const std::vector<float> m = awq_weight_mean(g, 2);
  const double e = 1e-6;
  const std::vector<double> want = {(1 / (2 + e) + 3 / (3 + e) + 0) / 3, (2 / (2 + e) + 3 / (3 + e) + 0) / 3,
                                    (4 / (4 + e) + 1 / (1 + e) + 2 / (8 + e)) / 3,
                                    (0 + 1 / (1 + e) + 8 / (8 + e)) / 3};
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(m[size_t(j)], want[size_t(j)], 1e-6) << j;
  // Per channel (group 0 = whole row).
  const std::vector<float> pc = awq_weight_mean(g, 0);
  EXPECT_NEAR(pc[2], (4 / (4 + e) + 1 / (3 + e) + 2 / (8 + e)) / 3, 1e-6);
}

// A stand-in writer: symmetric 4-bit per (row, group of 8) with s = max|w| / 7, dequantized.
QuantizedLinear sym4_quantize(const LayerPlan& l, std::vector<float> w) {
  const int64_t n = l.layer.out_features, k = l.layer.in_features, gs = l.group_size;
  QuantizedLinear q;
  q.dequant.resize(w.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c0 = 0; c0 < k; c0 += gs) {
      float m = 0;
      for (int64_t j = c0; j < c0 + gs; ++j) m = std::max(m, std::fabs(w[size_t(r * k + j)]));
      const float s = m / 7.0f;
      for (int64_t j = c0; j < c0 + gs; ++j)
        q.dequant[size_t(r * k + j)] = s > 0 ? std::clamp(std::nearbyint(w[size_t(r * k + j)] / s), -8.0f, 7.0f) * s : 0;
    }
  return q;
}

double group_error(const std::vector<float>& w, const std::vector<float>& dq, const std::vector<float>& x, int64_t rows,
                   int64_t k, int64_t r, int64_t c0, int64_t gs) {
  double e = 0;
  for (int64_t t = 0; t < rows; ++t) {
    double d = 0;
    for (int64_t j = c0; j < c0 + gs; ++j) d += double(x[size_t(t * k + j)]) * (w[size_t(r * k + j)] - dq[size_t(r * k + j)]);
    e += d * d;
  }
  return e;
}

TEST(AwqClip, EachGroupTakesTheBoundWithTheLeastOutputError) {
  const int64_t n = 6, k = 32, gs = 8, rows = 40;
  std::vector<float> w = test_util::randn(n * k, 11), x = test_util::randn(rows * k, 12);
  // Heavy tails: one large weight in some groups, where clipping it pays.
  for (int64_t r = 0; r < n; r += 2) w[size_t(r * k + 3)] = 9.0f;
  LayerPlan l;
  l.layer.prefix = "model.layers.0.mlp.down_proj";
  l.layer.out_features = n;
  l.layer.in_features = k;
  l.group_size = gs;
  const std::vector<float> ratios = {1.0f, 0.9f, 0.8f, 0.7f, 0.6f};
  const AwqClip c = search_clip(l, w, x.data(), rows, sym4_quantize, ratios);
  ASSERT_EQ(c.groups, k / gs);
  ASSERT_EQ(c.bound.size(), size_t(n * c.groups));
  EXPECT_GT(c.clipped, 0);
  // Scalar recomputation: for every (row, group) the chosen bound's error is the least of the
  // candidates', and the bound is one of ratio × max|w|.
  std::vector<std::vector<float>> dq;
  for (float ratio : ratios) {
    std::vector<float> wc = w;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c0 = 0; c0 < k; c0 += gs) {
        float m = 0;
        for (int64_t j = c0; j < c0 + gs; ++j) m = std::max(m, std::fabs(w[size_t(r * k + j)]));
        for (int64_t j = c0; j < c0 + gs; ++j) wc[size_t(r * k + j)] = std::clamp(wc[size_t(r * k + j)], -ratio * m, ratio * m);
      }
    dq.push_back(sym4_quantize(l, wc).dequant);
  }
  AwqPlan p;
  p.clips[l.layer.prefix] = c;
  std::vector<float> clipped = w;
  apply_awq_clip(p, l.layer.prefix, clipped);
  const std::vector<float> dq_chosen = sym4_quantize(l, clipped).dequant;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < c.groups; ++g) {
      double best = 1e300;
      for (const auto& d : dq) best = std::min(best, group_error(w, d, x, rows, k, r, g * gs, gs));
      const double chosen = group_error(w, dq_chosen, x, rows, k, r, g * gs, gs);
      EXPECT_LE(chosen, best * (1 + 1e-4) + 1e-9) << r << " " << g;
    }
  // The unclipped rows' groups without an outlier keep most of their range.
  EXPECT_LT(c.clipped, n * c.groups);
}

TEST(AwqClip, WrongWeightSizeIsAnError) {
  LayerPlan l;
  l.layer.prefix = "x";
  l.layer.out_features = 2;
  l.layer.in_features = 8;
  l.group_size = 8;
  const std::vector<float> x(8, 1.0f);
  EXPECT_THROW(search_clip(l, std::vector<float>(15, 1.0f), x.data(), 1, sym4_quantize, {1.0f}), Error);
}

TEST(AwqActBits, SchemesAwqAppliesTo) {
  EXPECT_EQ(awq_act_bits(OutFormat::Awq, "W4A16"), 16);
  EXPECT_EQ(awq_act_bits(OutFormat::CompressedTensors, "W4A16_ASYM"), 16);
  EXPECT_EQ(awq_act_bits(OutFormat::CompressedTensors, "W8A8"), 8);
  EXPECT_EQ(awq_act_bits(OutFormat::MsModelSlim, "W4A4_DYNAMIC"), 4);
  // Static activation scales (SmoothQuant's ground), FP8/MX and float: not AWQ's.
  EXPECT_EQ(awq_act_bits(OutFormat::CompressedTensors, "W8A8_STATIC"), 0);
  EXPECT_EQ(awq_act_bits(OutFormat::MsModelSlim, "W8A8"), 0);
  EXPECT_EQ(awq_act_bits(OutFormat::CompressedTensors, "FP8_DYNAMIC"), 0);
  EXPECT_EQ(awq_act_bits(OutFormat::MsModelSlim, "W8A8_MXFP8"), 0);
  EXPECT_EQ(awq_act_bits(OutFormat::Awq, "FLOAT"), 0);
}

}  // namespace
}  // namespace lowbit::quantize
