// The choice half of `lowbit quantize --target-kld X | --target-bits B` (scheme_search.h
// measures, this file decides): given, for every unit (a fused group of layers that must
// share one scheme: q/k/v, o, gate/up, down), the bytes each candidate scheme costs and the
// KL divergence it adds when it alone is quantized, pick one candidate per unit.
//
// The model is additive: the KLD of the mixed model is predicted as Σ ΔKLD_unit. Quantization
// errors of different layers are small and close to independent, so their effects on the
// log-probabilities add to first order; the search then measures the chosen mixture and
// tightens the budget where the prediction was low (scheme_search.cc).
//
// Both targets are a multiple-choice knapsack, solved exactly on a discretised budget:
//   --target-kld X:  minimise Σ bytes  subject to Σ ΔKLD ≤ X,
//   --target-bits B: minimise Σ ΔKLD   subject to Σ bytes ≤ B/8 · weights.
// The constrained quantity is rounded UP to whole bins of budget / bins, so a choice the DP
// accepts always meets the real constraint; it can only miss choices that use the last
// bins' worth of slack (at most units / bins of the budget; 16384 bins by default).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lowbit::quantize {

// One way to quantize a unit: what it costs (minimised) and what it uses of the budget.
struct KnapsackOption {
  double cost = 0;
  double weight = 0;  // ≥ 0
};

// One option per unit (an index into units[u]) minimising Σ cost subject to Σ weight ≤
// budget, with weights rounded up to bins of budget / bins; nullopt when no choice fits.
// Ties go to the lower option index. budget ≤ 0 is feasible only with zero-weight options.
std::optional<std::vector<int>> min_cost_choice(const std::vector<std::vector<KnapsackOption>>& units, double budget,
                                                int bins = 16384);

// What the search measured of one unit.
struct UnitScores {
  std::string label;               // "model.layers.3 q/k/v"
  int64_t weights = 0;             // parameters of the unit's layers
  std::vector<double> bytes;       // per candidate (search order), checkpoint bytes incl. scales
  std::vector<double> dkld;        // per candidate, KLD vs float with only this unit quantized
  std::vector<bool> available;     // candidate fits the unit (group size divides in_features, ...)
};

struct SchemeChoice {
  std::vector<int> pick;  // candidate index per unit
  bool reached = true;    // false: no choice meets the target (pick is the fallback, see below)
  double predicted_kld = 0, bytes = 0;
};

// --target-kld: the fewest bytes with Σ ΔKLD ≤ kld_budget. Unreachable (only when no
// zero-ΔKLD candidate exists for some unit, e.g. FLOAT excluded): every unit takes its
// least-ΔKLD candidate and reached = false.
SchemeChoice choose_for_kld(const std::vector<UnitScores>& units, double kld_budget);
// --target-bits: the least Σ ΔKLD with Σ bytes ≤ max_bytes. Unreachable (the cheapest
// candidates alone exceed it): every unit takes its cheapest candidate and reached = false.
SchemeChoice choose_for_bytes(const std::vector<UnitScores>& units, double max_bytes);

// Σ over units of the picked candidates' bytes and ΔKLD.
double total_bytes(const std::vector<UnitScores>& units, const std::vector<int>& pick);
double total_dkld(const std::vector<UnitScores>& units, const std::vector<int>& pick);

}  // namespace lowbit::quantize
