// `lowbit quantize --target-kld X | --target-bits B`: chooses the scheme of every searched
// unit (q/k/v, o, gate/up, down of each decoder layer; fused layers share one scheme, lm_head
// and --ignore / --override layers stay as the plan has them) from its measured sensitivity,
// then writes the mixed checkpoint through the normal writer path.
//
// Measurement, on the first --search-tokens calibration tokens cut into eval windows (ctx 512,
// the second half of each window scored, as `lowbit eval kld`): the float model runs once and
// its next-token distributions are kept; then, for every unit and candidate, the unit alone is
// swapped for a fake-quantized layer (the weights exactly as the format writer writes and its
// readers dequantize them, activations quantized per token where the scheme does so at run
// time) and the mean KL(float ‖ variant) over the scored tokens is that candidate's ΔKLD. A
// swap in decoder layer L leaves layers < L unchanged, so their o_proj / down_proj outputs
// (all the residual stream receives) are replayed from the float run and q/k/v/gate/up before
// them are not computed: a unit costs about (30 − L)/30 of a forward on a 30-layer model.
//
// Choice: scheme_choice.h (exact multiple-choice knapsack on the additive ΔKLD model). Then
// the mixed model (every chosen layer fake-quantized at once) is measured; --target-kld
// re-chooses under a corrected ΔKLD budget (bracketed between budgets that met and missed the
// target) for a few rounds, and keeps the fewest bytes among the choices that met it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/model_config.h"
#include "quantize/quant_plan.h"
#include "quantize/scheme_choice.h"

namespace lowbit::quantize {

// One candidate: a scheme of the output format and its group size along K (0: per channel
// or not grouped).
struct SearchCandidate {
  std::string scheme;
  int64_t group_size = 0;
  std::string label() const;  // "W4A16 g32", "W8A8", "FLOAT"
};

struct SearchOptions {
  std::optional<double> target_kld;   // --target-kld: mean KL(float ‖ quantized), nats per token
  std::optional<double> target_bits;  // --target-bits: average bits per searched weight, scales included
  std::string schemes;                // --search-schemes "SCHEME[:GROUP],..."; empty = the format's default
  std::optional<int64_t> group_size;  // --group-size: the default group of group-wise candidates
  int64_t tokens = 512;               // --search-tokens: calibration tokens the KLD is measured on
  int64_t ctx = 512;                  // window length (the second half of each window is scored)
  int rounds = 5;                     // --target-kld verification rounds at most
};

// The candidates for `format`, cheapest first, validated before any work: every scheme must be
// one of the format's (check_scheme) and one the search can simulate (FLOAT, weight-only, or
// per-token dynamic activations: static activation scales need calibration ranges per layer,
// which a sensitivity pass does not produce); GROUP only for group-wise schemes; msmodelslim and
// awq store one global group size, so their candidates must agree on it. FLOAT is always
// added (--target-kld needs a candidate that costs no KLD). Defaults: compressed-tensors W4A16
// g128, W4A16 g32, W8A8, FLOAT; msmodelslim W4A8_DYNAMIC, W8A8_DYNAMIC, FLOAT; awq W4A16, FLOAT
// (--group-size, when given, replaces the default W4A16 / W4A8 groups).
std::vector<SearchCandidate> search_candidates(OutFormat format, const std::string& list,
                                               std::optional<int64_t> group_size);

// Checks of the options alone (an Error names the flag): exactly one target, in range.
void check_search_options(const SearchOptions& o);

struct SearchRound {
  double budget = 0;     // the ΔKLD (or bytes) budget the choice was made under
  double predicted = 0;  // Σ ΔKLD of the choice
  double measured = 0;   // KLD of the mixed model on the search tokens
  double bytes = 0;
};

struct UniformAlternative {
  std::string label;  // "W8A8" (units it does not fit stay FLOAT)
  double bytes = 0, predicted = 0, measured = 0;
};

struct SchemeSearchReport {
  std::string target;  // "--target-kld 0.05"
  std::vector<SearchCandidate> candidates;
  std::vector<UnitScores> units;                // per searched unit
  std::vector<std::vector<std::string>> layers;  // per unit, its layer prefixes
  std::vector<int> pick;                        // the written choice
  std::vector<SearchRound> rounds;
  std::vector<UniformAlternative> uniform;
  double fixed_kld = 0;       // KLD of the --override layers alone (0 without)
  double measured_kld = 0;    // of the written choice, on the search tokens
  double bytes = 0;           // of the searched layers as written
  int64_t weights = 0;        // parameters of the searched layers
  bool reached = true;
  int64_t tokens = 0, scored = 0, passes = 0;
  double seconds = 0;
  std::vector<std::string> notes;
  double bits_per_weight() const { return weights ? 8.0 * bytes / double(weights) : 0.0; }
};

struct SearchInputs {
  std::shared_ptr<const Checkpoint> ckpt;  // the float model's, shared with the probe's model
  const ModelConfig* config = nullptr;
  std::vector<int32_t> tokens;  // calibration tokens, already cut to SearchOptions::tokens
  int threads = 0;
  std::function<void(int64_t done, int64_t total)> progress;  // forward passes
};

// Measures, chooses and rewrites the plan's searched layers (those whose `why` is "--scheme":
// the caller makes the plan with scheme FLOAT as a placeholder) to the chosen scheme, group
// size and why = the target flag. Errors before the measurement for an unsupported model or
// candidate; an Error too when the choice leaves every layer FLOAT (nothing to quantize).
SchemeSearchReport search_schemes(QuantPlan& plan, const SearchOptions& o, const SearchInputs& in);

// The per-unit table (unit, scheme, ΔKLD alone, bytes), the rounds, the totals against the
// uniform alternatives.
std::string format_search_report(const SchemeSearchReport& r);
nlohmann::ordered_json search_report_json(const SchemeSearchReport& r);

}  // namespace lowbit::quantize
