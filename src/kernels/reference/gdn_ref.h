// The Gated DeltaNet oracle (kernels/gdn.h, ../shared/spec/qwen3-moe-next.md §2.5.2–2.5.5):
// plain loops in double, token by token, straight from the spec's formulas. The fast kernels
// (kernels/cpu/gdn_*) are tested against these; nothing else should call them.
#pragma once

#include <span>

#include "kernels/gdn.h"

namespace lowbit {

// §2.3 per-head scalars, in double: β = σ(b), g = −exp(A_log)·softplus(a + dt_bias) with
// softplus(x) = x > 20 ? x : log1p(exp(x)).
double gdn_beta_ref(double b);
double gdn_log_decay_ref(double a, double a_log, double dt_bias);

// gdn_conv's contract, one sequence after another, each channel's sum in double.
void gdn_conv_ref(const GdnShape& shape, const GdnWeights& w, std::span<const GdnSequence> batch);

// gdn_delta_rule's contract by the recurrent rule (§2.5.5): l2norm, scale, then per token
// S ← e^g S; u = Sᵀk; δ = β(v − u); S ← S + kδᵀ; o = Sᵀq, all in double; the state is read
// from and written back to fp32.
void gdn_delta_rule_ref(const GdnShape& shape, const GdnWeights& w, std::span<const GdnSequence> batch);

}  // namespace lowbit
