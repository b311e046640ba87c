#include "quantize/scheme_choice.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/error.h"

namespace lowbit::quantize {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The candidates of unit u that are available, as knapsack options, and their indices.
struct UnitOptions {
  std::vector<std::vector<KnapsackOption>> options;
  std::vector<std::vector<int>> index;  // option → candidate
};

UnitOptions options_of(const std::vector<UnitScores>& units, bool minimise_bytes) {
  UnitOptions r;
  for (const UnitScores& u : units) {
    std::vector<KnapsackOption> opts;
    std::vector<int> idx;
    for (size_t c = 0; c < u.bytes.size(); ++c) {
      if (!u.available.empty() && !u.available[c]) continue;
      opts.push_back(minimise_bytes ? KnapsackOption{u.bytes[c], u.dkld[c]} : KnapsackOption{u.dkld[c], u.bytes[c]});
      idx.push_back(int(c));
    }
    if (opts.empty()) fail("scheme search: unit '{}' has no available candidate", u.label);
    r.options.push_back(std::move(opts));
    r.index.push_back(std::move(idx));
  }
  return r;
}

// Per unit the available candidate with the least `key` (ties: the other key, then order).
std::vector<int> fallback(const std::vector<UnitScores>& units, bool least_dkld) {
  std::vector<int> pick;
  for (const UnitScores& u : units) {
    int best = -1;
    for (size_t c = 0; c < u.bytes.size(); ++c) {
      if (!u.available.empty() && !u.available[c]) continue;
      auto key = [&](size_t i) {
        return least_dkld ? std::make_pair(u.dkld[i], u.bytes[i]) : std::make_pair(u.bytes[i], u.dkld[i]);
      };
      if (best < 0 || key(c) < key(size_t(best))) best = int(c);
    }
    pick.push_back(best);
  }
  return pick;
}

SchemeChoice finish(const std::vector<UnitScores>& units, std::vector<int> pick, bool reached) {
  SchemeChoice c;
  c.bytes = total_bytes(units, pick);
  c.predicted_kld = total_dkld(units, pick);
  c.pick = std::move(pick);
  c.reached = reached;
  return c;
}

}  // namespace

std::optional<std::vector<int>> min_cost_choice(const std::vector<std::vector<KnapsackOption>>& units, double budget,
                                                int bins) {
  if (bins < 1) fail("min_cost_choice: bins {} must be positive", bins);
  const size_t nu = units.size();
  std::vector<int> pick(nu, -1);
  if (!(budget > 0)) {  // only options that use nothing of the budget
    for (size_t u = 0; u < nu; ++u)
      for (size_t o = 0; o < units[u].size(); ++o)
        if (units[u][o].weight <= 0 && (pick[u] < 0 || units[u][o].cost < units[u][size_t(pick[u])].cost))
          pick[u] = int(o);
    for (int p : pick)
      if (p < 0) return std::nullopt;
    return pick;
  }
  const double bin = budget / bins;
  // Weight in whole bins, rounded up (the 1e-9 keeps exact multiples of a bin from gaining
  // one by division rounding); -1 when the option alone exceeds the budget.
  auto bins_of = [&](double w) -> int64_t {
    const double b = std::ceil(w / bin - 1e-9);
    return b > bins ? -1 : std::max<int64_t>(0, int64_t(b));
  };
  const size_t width = size_t(bins) + 1;
  std::vector<double> dp(width, 0.0), next(width);  // dp[b]: least cost with Σ bins ≤ b
  std::vector<std::vector<int16_t>> choice(nu, std::vector<int16_t>(width, -1));
  for (size_t u = 0; u < nu; ++u) {
    if (units[u].size() > size_t(std::numeric_limits<int16_t>::max())) fail("min_cost_choice: too many options");
    std::fill(next.begin(), next.end(), kInf);
    for (size_t o = 0; o < units[u].size(); ++o) {
      const int64_t w = bins_of(units[u][o].weight);
      if (w < 0) continue;
      const double c = units[u][o].cost;
      for (size_t b = size_t(w); b < width; ++b) {
        const double v = dp[b - size_t(w)] + c;
        if (v < next[b]) {
          next[b] = v;
          choice[u][b] = int16_t(o);
        }
      }
    }
    dp.swap(next);
  }
  if (dp[size_t(bins)] == kInf) return std::nullopt;
  size_t b = size_t(bins);
  for (size_t u = nu; u-- > 0;) {
    const int o = choice[u][b];
    pick[u] = o;
    b -= size_t(bins_of(units[u][size_t(o)].weight));
  }
  return pick;
}

double total_bytes(const std::vector<UnitScores>& units, const std::vector<int>& pick) {
  double s = 0;
  for (size_t u = 0; u < units.size(); ++u) s += units[u].bytes[size_t(pick[u])];
  return s;
}

double total_dkld(const std::vector<UnitScores>& units, const std::vector<int>& pick) {
  double s = 0;
  for (size_t u = 0; u < units.size(); ++u) s += units[u].dkld[size_t(pick[u])];
  return s;
}

SchemeChoice choose_for_kld(const std::vector<UnitScores>& units, double kld_budget) {
  const UnitOptions o = options_of(units, true);
  const auto chosen = min_cost_choice(o.options, kld_budget);
  if (!chosen) return finish(units, fallback(units, true), false);
  std::vector<int> pick;
  for (size_t u = 0; u < units.size(); ++u) pick.push_back(o.index[u][size_t((*chosen)[u])]);
  return finish(units, std::move(pick), true);
}

SchemeChoice choose_for_bytes(const std::vector<UnitScores>& units, double max_bytes) {
  const UnitOptions o = options_of(units, false);
  const auto chosen = min_cost_choice(o.options, max_bytes);
  if (!chosen) return finish(units, fallback(units, false), false);
  std::vector<int> pick;
  for (size_t u = 0; u < units.size(); ++u) pick.push_back(o.index[u][size_t((*chosen)[u])]);
  return finish(units, std::move(pick), true);
}

}  // namespace lowbit::quantize
