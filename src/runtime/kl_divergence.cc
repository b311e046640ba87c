#include "runtime/kl_divergence.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"

namespace lowbit {

namespace {

float max_of(std::span<const float> x) { return *std::max_element(x.begin(), x.end()); }

// Σ_i exp(x_i − max) in double, with max = max_i x_i; returns log Σ exp(x_i).
double lse_with_max(std::span<const float> x, float max) {
  double sum = 0;
  for (float v : x) sum += std::exp(double(v) - double(max));
  return double(max) + std::log(sum);
}

void check_row(std::span<const float> logits, int32_t target) {
  LOWBIT_CHECK(!logits.empty(), "empty logits row");
  if (target < 0 || size_t(target) >= logits.size())
    fail("target token {} outside the vocabulary of {}", target, logits.size());
}

}  // namespace

double log_sum_exp(std::span<const float> logits) { return lse_with_max(logits, max_of(logits)); }

void log_softmax(std::span<const float> logits, std::span<double> out) {
  LOWBIT_CHECK(out.size() == logits.size(), "{} outputs for {} logits", out.size(), logits.size());
  const double lse = log_sum_exp(logits);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - lse;
}

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

double negative_log_likelihood(std::span<const float> logits, int32_t target) {
  check_row(logits, target);
  return log_sum_exp(logits) - double(logits[target]);
}

TokenComparison compare_logits(std::span<const float> base, std::span<const float> quant, int32_t target) {
  if (base.size() != quant.size())
    fail("base vocabulary {} differs from quantized vocabulary {}", base.size(), quant.size());
  check_row(base, target);
  const double lse_b = log_sum_exp(base), lse_q = log_sum_exp(quant);
  double kl = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const double lb = double(base[i]) - lse_b, lq = double(quant[i]) - lse_q;
    kl += std::exp(lb) * (lb - lq);
  }
  TokenComparison t;
  t.kl = kl;
  t.nll_base = lse_b - double(base[target]);
  t.nll_quant = lse_q - double(quant[target]);
  t.delta_p = std::exp(-t.nll_quant) - std::exp(-t.nll_base);
  t.same_top = argmax(base) == argmax(quant);
  return t;
}

void encode_compact_row(std::span<const float> logits, int32_t target, std::span<std::byte> out) {
  check_row(logits, target);
  LOWBIT_CHECK(out.size() == compact_row_bytes(int64_t(logits.size())), "row buffer of {} bytes", out.size());
  const float max = max_of(logits);
  const double lse = lse_with_max(logits, max);
  const float min = *std::min_element(logits.begin(), logits.end());
  CompactRowHeader h;
  h.target = target;
  h.top = argmax(logits);
  h.target_logp = double(logits[target]) - lse;
  const double hi = double(max) - lse;
  const double lo = std::max(double(min) - lse, double(kLogProbFloor));
  h.lo = float(lo);
  h.scale = float((hi - double(h.lo)) / 65535.0);
  const double inv = h.scale > 0 ? 1.0 / double(h.scale) : 0.0;
  auto* q = reinterpret_cast<uint16_t*>(out.data() + sizeof(h));
  for (size_t i = 0; i < logits.size(); ++i) {
    const double v = std::max(double(logits[i]) - lse, double(h.lo));
    q[i] = uint16_t(std::clamp(std::lround((v - double(h.lo)) * inv), 0L, 65535L));
  }
  std::memcpy(out.data(), &h, sizeof(h));
}

CompactRowHeader compact_row_header(std::span<const std::byte> row) {
  LOWBIT_CHECK(row.size() >= sizeof(CompactRowHeader), "row of {} bytes", row.size());
  CompactRowHeader h;
  std::memcpy(&h, row.data(), sizeof(h));
  return h;
}

void decode_compact_row(std::span<const std::byte> row, std::span<double> logp) {
  LOWBIT_CHECK(row.size() == compact_row_bytes(int64_t(logp.size())), "row of {} bytes", row.size());
  const CompactRowHeader h = compact_row_header(row);
  const auto* q = reinterpret_cast<const uint16_t*>(row.data() + sizeof(h));
  for (size_t i = 0; i < logp.size(); ++i) logp[i] = double(h.lo) + double(h.scale) * double(q[i]);
}

TokenComparison compare_compact(std::span<const std::byte> base_row, std::span<const float> quant, int32_t target) {
  check_row(quant, target);
  if (base_row.size() != compact_row_bytes(int64_t(quant.size())))
    fail("base log-prob row of {} bytes does not match a vocabulary of {}", base_row.size(), quant.size());
  const CompactRowHeader h = compact_row_header(base_row);
  if (h.target != target)
    fail(
        "base log-probs predict token {} where the text has {}: the base file was made from another text, "
        "tokenizer or --ctx",
        h.target, target);
  const auto* q = reinterpret_cast<const uint16_t*>(base_row.data() + sizeof(h));
  const double lse_q = log_sum_exp(quant);
  const bool floored = h.lo == kLogProbFloor;
  double kl = 0;
  for (size_t i = 0; i < quant.size(); ++i) {
    if (floored && q[i] == 0) continue;  // below the floor: p_base < e^-16, not stored
    const double lb = double(h.lo) + double(h.scale) * double(q[i]);
    kl += std::exp(lb) * (lb - (double(quant[i]) - lse_q));
  }
  TokenComparison t;
  t.kl = kl;
  t.nll_base = -h.target_logp;
  t.nll_quant = lse_q - double(quant[target]);
  t.delta_p = std::exp(-t.nll_quant) - std::exp(h.target_logp);
  t.same_top = h.top == argmax(quant);
  return t;
}

void EvalStats::add(const TokenComparison& t) {
  kl_.push_back(t.kl);
  nll_base_.push_back(t.nll_base);
  nll_quant_.push_back(t.nll_quant);
  delta_p_.push_back(t.delta_p);
  same_top_ += t.same_top;
}

void EvalStats::add_nll(double nll) { nll_quant_.push_back(nll); }

namespace {

struct MeanStderr {
  double mean = 0, stderr_ = 0;
};
MeanStderr mean_stderr(const std::vector<double>& v) {
  MeanStderr m;
  if (v.empty()) return m;
  const double n = double(v.size());
  double sum = 0;
  for (double x : v) sum += x;
  m.mean = sum / n;
  // Two passes: E[x²] − E[x]² cancels catastrophically when the spread is small.
  double ss = 0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  if (v.size() > 1) m.stderr_ = std::sqrt(ss / (n - 1) / n);
  return m;
}

EvalStats::Ppl ppl_of(const std::vector<double>& nll) {
  EvalStats::Ppl p;
  if (nll.empty()) return p;
  const MeanStderr m = mean_stderr(nll);
  p.mean_nll = m.mean;
  p.ppl = std::exp(m.mean);
  p.ppl_stderr = p.ppl * m.stderr_;  // d exp(x) = exp(x) dx
  return p;
}

}  // namespace

double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const double pos = q * double(v.size() - 1);
  const size_t i = size_t(pos);
  std::nth_element(v.begin(), v.begin() + i, v.end());
  const double a = v[i];
  if (i + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + i + 1, v.end());
  return a + (b - a) * (pos - double(i));
}

EvalStats::Summary EvalStats::summary() const {
  Summary s;
  s.tokens = tokens();
  s.quant = ppl_of(nll_quant_);
  if (kl_.empty()) return s;
  s.base = ppl_of(nll_base_);
  const MeanStderr kl = mean_stderr(kl_);
  s.kl_mean = kl.mean;
  s.kl_stderr = kl.stderr_;
  std::vector<double> sorted = kl_;
  s.kl_median = quantile(sorted, 0.5);
  s.kl_p99 = quantile(sorted, 0.99);
  s.kl_max = *std::max_element(kl_.begin(), kl_.end());
  s.same_top = double(same_top_) / double(kl_.size());
  double dp = 0, dp2 = 0;
  for (double x : delta_p_) dp += x, dp2 += x * x;
  s.delta_p_mean = dp / double(delta_p_.size());
  s.delta_p_rms = std::sqrt(dp2 / double(delta_p_.size()));
  return s;
}

}  // namespace lowbit
