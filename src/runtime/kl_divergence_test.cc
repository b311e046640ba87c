#include "runtime/kl_divergence.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "core/error.h"
#include "runtime/eval_text.h"

namespace lowbit {
namespace {

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(float(std::log(p)));
  return l;
}

std::vector<float> random_logits(int64_t n, uint32_t seed, float spread = 4.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, spread);
  std::vector<float> l(static_cast<size_t>(n));
  for (auto& x : l) x = d(rng);
  return l;
}

TEST(KlDivergence, LogSoftmaxOfKnownDistribution) {
  // Shifting logits by a constant must not change anything.
  const std::vector<float> l = {1.0f + 100, 2.0f + 100, 3.0f + 100};
  std::vector<double> out(3);
  log_softmax(l, out);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(out[size_t(i)], double(i + 1) - std::log(z), 1e-12);
  EXPECT_NEAR(negative_log_likelihood(l, 2), std::log(z) - 3.0, 1e-12);
  EXPECT_EQ(argmax(l), 2);
}

TEST(KlDivergence, HandComputedPair) {
  // P = (1/2, 1/4, 1/4), Q = (1/4, 1/2, 1/4): KL = 1/2 ln 2 + 1/4 ln(1/2) = 1/4 ln 2.
  const auto p = logits_of({0.5, 0.25, 0.25}), q = logits_of({0.25, 0.5, 0.25});
  const TokenComparison t = compare_logits(p, q, 1);
  EXPECT_NEAR(t.kl, 0.25 * std::log(2.0), 1e-7);  // inputs are fp32 logs: ~1e-8 each
  EXPECT_NEAR(t.nll_base, std::log(4.0), 1e-7);
  EXPECT_NEAR(t.nll_quant, std::log(2.0), 1e-7);
  EXPECT_NEAR(t.delta_p, 0.25, 1e-7);
  EXPECT_FALSE(t.same_top);
}

TEST(KlDivergence, IdenticalModelsGiveZeroAndFullAgreement) {
  EvalStats stats;
  for (uint32_t s = 0; s < 20; ++s) {
    const auto l = random_logits(5000, s);
    stats.add(compare_logits(l, l, int32_t(s * 7)));
  }
  const auto sum = stats.summary();
  EXPECT_EQ(sum.tokens, 20);
  EXPECT_EQ(sum.kl_max, 0.0);  // same fp32 inputs, same double arithmetic: exactly 0
  EXPECT_EQ(sum.same_top, 1.0);
  EXPECT_EQ(sum.base.ppl, sum.quant.ppl);
  EXPECT_EQ(sum.delta_p_rms, 0.0);
}

TEST(KlDivergence, ShiftedDistributionGivesClosedFormKl) {
  // Two-point distributions: P = (p, 1−p), Q = (q, 1−q) with the logit of Q shifted by d.
  // KL = p ln(p/q) + (1−p) ln((1−p)/(1−q)).
  const double p = 0.8, d = 0.7;
  const double q = 1.0 / (1.0 + (1 - p) / p * std::exp(d));
  const std::vector<float> base = {float(std::log(p / (1 - p))), 0.0f};
  const std::vector<float> quant = {float(std::log(p / (1 - p)) - d), 0.0f};
  const double want = p * std::log(p / q) + (1 - p) * std::log((1 - p) / (1 - q));
  EXPECT_NEAR(compare_logits(base, quant, 0).kl, want, 1e-7);
  // Same on a large vocabulary: the rest of the mass is spread over 10^5 equal entries.
  std::vector<float> big_b(100001, -30.0f), big_q(100001, -30.0f);
  big_b[0] = base[0], big_b[1] = 0, big_q[0] = quant[0], big_q[1] = 0;
  EXPECT_NEAR(compare_logits(big_b, big_q, 1).kl, want, 1e-6);
}

TEST(KlDivergence, KlIsNonNegativeAndAsymmetric) {
  const auto a = random_logits(1000, 1), b = random_logits(1000, 2);
  const double ab = compare_logits(a, b, 0).kl, ba = compare_logits(b, a, 0).kl;
  EXPECT_GT(ab, 0);
  EXPECT_GT(ba, 0);
  EXPECT_NE(ab, ba);
}

TEST(KlDivergence, SummaryStatistics) {
  EvalStats stats;
  for (int i = 1; i <= 100; ++i) {
    TokenComparison t;
    t.kl = double(i);
    t.nll_base = std::log(2.0);
    t.nll_quant = std::log(3.0);
    t.same_top = i % 4 != 0;
    stats.add(t);
  }
  const auto s = stats.summary();
  EXPECT_DOUBLE_EQ(s.kl_mean, 50.5);
  EXPECT_DOUBLE_EQ(s.kl_median, 50.5);
  EXPECT_NEAR(s.kl_p99, 99.01, 1e-12);  // numpy.quantile(1..100, 0.99)
  EXPECT_DOUBLE_EQ(s.kl_max, 100);
  EXPECT_DOUBLE_EQ(s.same_top, 0.75);
  EXPECT_NEAR(s.base.ppl, 2.0, 1e-12);
  EXPECT_NEAR(s.quant.ppl, 3.0, 1e-12);
  EXPECT_NEAR(s.quant.ppl_stderr, 0.0, 1e-12);
}

TEST(KlDivergence, PerplexityOfUniformIsVocabSize) {
  EvalStats stats;
  const std::vector<float> flat(1000, 0.5f);
  for (int i = 0; i < 10; ++i) stats.add_nll(negative_log_likelihood(flat, i));
  EXPECT_NEAR(stats.summary().quant.ppl, 1000.0, 1e-9);
}

TEST(CompactLogProbs, RoundTripErrorIsWithinHalfAStep) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto l = random_logits(49152, seed, seed == 3 ? 0.1f : 5.0f);  // seed 3: nothing floored
    std::vector<std::byte> row(compact_row_bytes(int64_t(l.size())));
    encode_compact_row(l, 17, row);
    std::vector<double> exact(l.size()), decoded(l.size());
    log_softmax(l, exact);
    decode_compact_row(row, decoded);
    const CompactRowHeader h = compact_row_header(row);
    EXPECT_LE(h.scale, 16.0 / 65535 * 1.0001);
    EXPECT_EQ(h.top, argmax(l));
    EXPECT_EQ(h.target, 17);
    EXPECT_DOUBLE_EQ(h.target_logp, exact[17]);
    const double bound = 0.5 * h.scale + 1e-6;  // + float rounding of lo and scale
    for (size_t i = 0; i < l.size(); ++i) {
      if (exact[i] < kLogProbFloor) {
        EXPECT_EQ(decoded[i], double(kLogProbFloor));
      } else {
        ASSERT_NEAR(decoded[i], exact[i], bound) << i;
      }
    }
  }
}

TEST(CompactLogProbs, KlAgainstStoredBaseMatchesExact) {
  const auto base = random_logits(49152, 11, 3.0f);
  std::vector<std::byte> row(compact_row_bytes(int64_t(base.size())));
  encode_compact_row(base, 5, row);
  // Against itself: |KL| ≤ Σ p·e^ε·|ε| ≤ δ·e^δ with δ = scale/2 ≈ 1.2e-4.
  const TokenComparison self = compare_compact(row, base, 5);
  EXPECT_LT(std::abs(self.kl), 1.3e-4);
  EXPECT_TRUE(self.same_top);
  EXPECT_EQ(self.delta_p, 0.0);
  // Against a perturbed model: same KL as from the float logits, within the same bound plus
  // the floored tail (entries below e^-16 are not stored).
  auto quant = base;
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (auto& x : quant) x += noise(rng);
  const TokenComparison exact = compare_logits(base, quant, 5), stored = compare_compact(row, quant, 5);
  EXPECT_GT(exact.kl, 0.01);
  EXPECT_NEAR(stored.kl, exact.kl, 2e-4 + 1e-3 * exact.kl);
  EXPECT_DOUBLE_EQ(stored.nll_base, exact.nll_base);
  EXPECT_DOUBLE_EQ(stored.nll_quant, exact.nll_quant);
  EXPECT_EQ(stored.same_top, exact.same_top);
  EXPECT_THROW(compare_compact(row, quant, 6), Error);  // another text
}

TEST(EvalWindows, ScoresTheSecondHalfOfEachWindow) {
  std::vector<int32_t> ids(100);
  for (int i = 0; i < 100; ++i) ids[size_t(i)] = i;
  const EvalWindows w(ids, 16, 0, std::nullopt);
  EXPECT_EQ(w.count(), 6);  // 96 tokens used, the last 4 dropped
  EXPECT_EQ(w.first_scored(), 8);
  EXPECT_EQ(w.scored_per_window(), 7);
  EXPECT_EQ(w.window(2)[0], 32);
  EXPECT_EQ(w.target(2, 0), 32 + 9);
  EXPECT_EQ(w.target(2, 6), 32 + 15);
  const EvalWindows b(ids, 16, 40, 99);
  EXPECT_EQ(b.count(), 2);
  EXPECT_EQ(b.window(1)[0], 99);
  EXPECT_EQ(b.window(1)[1], 17);
  EXPECT_THROW(EvalWindows(ids, 128, 0, std::nullopt), Error);
}

TEST(BaseFile, RoundTripAndTruncationIsDetected) {
  const auto path = std::filesystem::path(::testing::TempDir()) / "kld_base_test.bin";
  const int64_t vocab = 50;
  BaseFileHeader h{.vocab = uint32_t(vocab), .ctx = 8, .windows = 2, .scored_per_window = 3};
  std::vector<std::byte> rows(3 * compact_row_bytes(vocab));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = std::byte(i * 7);
  {
    BaseFileWriter w(path, h);
    w.write_window(rows);
    w.write_window(rows);
    w.finish();
  }
  {
    BaseFileReader r(path);
    EXPECT_EQ(r.header().windows, 2u);
    std::vector<std::byte> got;
    r.read_window(got);
    EXPECT_EQ(got, rows);
  }
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1);
  EXPECT_THROW(BaseFileReader{path}, Error);
  {
    BaseFileWriter unfinished(path, h);  // destroyed without finish(): the file goes away
    unfinished.write_window(rows);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace lowbit
