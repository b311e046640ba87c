// Next-token distribution math for `lowbit eval`: perplexity, KL(P_base‖P_quant), top-1
// agreement, and llama.cpp's compact storage of base log-probabilities.
//
// Numerics: logits arrive as fp32; every log-softmax is done in fp64 (max subtracted, exp and
// sum in double), and KL terms are summed in double. At a 150k vocabulary the fp32 sum of
// probabilities alone would carry ~1e-5 relative error, as large as the KL of a good 8-bit
// quantization, so fp32 would blur exactly the differences this tool exists to measure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace lowbit {

// log Σ_i exp(logits_i), in double.
double log_sum_exp(std::span<const float> logits);
// out_i = log softmax(logits)_i, in double.
void log_softmax(std::span<const float> logits, std::span<double> out);
int32_t argmax(std::span<const float> logits);
// −log softmax(logits)[target]: the token's contribution to log-perplexity.
double negative_log_likelihood(std::span<const float> logits, int32_t target);

// How a quantized model's prediction of one token compares with the base model's.
struct TokenComparison {
  double kl = 0;         // KL(P_base ‖ P_quant) = Σ p_base (log p_base − log p_quant), nats
  double nll_base = 0;   // −log P_base(target)
  double nll_quant = 0;  // −log P_quant(target)
  double delta_p = 0;    // P_quant(target) − P_base(target)
  bool same_top = false;
};

TokenComparison compare_logits(std::span<const float> base, std::span<const float> quant, int32_t target);

// Compact base log-probs, as llama.cpp's --kl-divergence-base stores them: per row a small
// header and one uint16 per vocabulary entry, q_i = round((max(logp_i, lo) − lo) / scale)
// with lo = max(min_i logp_i, kLogProbFloor) and scale = (max_i logp_i − lo) / 65535, so
// logp_i = lo + scale·q_i to within scale/2 ≤ 16/65535/2 ≈ 1.2e-4 nats. Entries below the
// floor decode to it and, in a floored row, are left out of KL: each has p < e^-16 ≈ 1.1e-7.
// The header keeps the base model's top token and the target's log-prob exactly, so the
// same-top rate and the base perplexity do not depend on the rounding.
inline constexpr float kLogProbFloor = -16.0f;

struct CompactRowHeader {
  double target_logp = 0;  // exact log P_base(target)
  float lo = 0, scale = 0;
  int32_t target = 0;  // token the row predicts: checked against the text on reading
  int32_t top = 0;     // base model's argmax
};
static_assert(sizeof(CompactRowHeader) == 24);

inline size_t compact_row_bytes(int64_t vocab) { return sizeof(CompactRowHeader) + 2 * size_t(vocab); }
// Writes one row of compact_row_bytes(logits.size()) bytes to `out`.
void encode_compact_row(std::span<const float> logits, int32_t target, std::span<std::byte> out);
CompactRowHeader compact_row_header(std::span<const std::byte> row);
// Decoded log-probs (for tests and tools); entries at the floor decode to lo.
void decode_compact_row(std::span<const std::byte> row, std::span<double> logp);
// Same as compare_logits with the base given as a compact row. Errors if the row's target
// differs from `target` (the base file was made from another text or tokenizer).
TokenComparison compare_compact(std::span<const std::byte> base_row, std::span<const float> quant, int32_t target);

// Per-token results accumulated over a run, and the summary the CLI prints.
class EvalStats {
 public:
  void add(const TokenComparison& t);
  void add_nll(double nll);  // perplexity only (`eval ppl`)

  struct Ppl {
    double ppl = 0, ppl_stderr = 0;  // exp(mean NLL) and its standard error (delta method)
    double mean_nll = 0;
  };
  struct Summary {
    int64_t tokens = 0;
    Ppl base, quant;
    double kl_mean = 0, kl_stderr = 0, kl_median = 0, kl_p99 = 0, kl_max = 0;
    double same_top = 0;  // fraction of tokens whose top-1 agrees
    double delta_p_mean = 0, delta_p_rms = 0;
  };
  Summary summary() const;
  int64_t tokens() const { return int64_t(nll_quant_.size()); }

 private:
  std::vector<double> kl_, nll_base_, nll_quant_, delta_p_;
  int64_t same_top_ = 0;
};

// Linear-interpolated quantile (numpy's default) of `values`, q in [0, 1]; reorders values.
double quantile(std::vector<double>& values, double q);

}  // namespace lowbit
