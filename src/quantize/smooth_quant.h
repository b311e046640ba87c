// SmoothQuant for static-activation int8 schemes (`lowbit quantize --smooth auto|ALPHA`):
// migrates activation outliers into the weights, X·Wᵀ = (X·diag(s)⁻¹)·(diag(s)·W)ᵀ, with
// s_j = max|X_j|^α / max|W_:,j|^(1−α) (Xiao et al. 2023), and folds diag(s)⁻¹ into the
// tensor that produces X so nothing is added at inference. Per decoder layer four groups:
//   attn: q/k/v_proj (one input)        ÷ s folded into input_layernorm.weight,
//   mlp:  gate/up_proj (one input)      ÷ s folded into post_attention_layernorm.weight,
//   down: down_proj                     ÷ s folded into up_proj's rows, since
//                                        silu(g)·(u / s) = (silu(g)·u) / s exactly,
//   o:    o_proj                        ÷ s folded into v_proj's rows (attention is linear in
//                                        v per channel); under GQA the query heads of one KV
//                                        head read the same v, so their channels share s.
// A producer with a bias is left alone (its bias would need the 1/s too).
// α is fixed or searched per group on the calibration sample rows: the simulated int8 output
// error (per-channel symmetric weights, static per-tensor activations over the exact smoothed
// range) against the float output, relative per token (summed over the group's layers) and
// averaged over the tokens; "off" (s = 1) is a candidate, so the search never makes the
// sampled error worse.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "quantize/calibration.h"
#include "quantize/format_writer.h"
#include "quantize/quant_plan.h"

namespace lowbit {
class ThreadPool;
}

namespace lowbit::quantize {

struct SmoothOptions {
  std::optional<float> alpha;  // nullopt: search `grid` per group
  std::vector<float> grid = {0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f};
};
// "auto" or a number in [0, 1]; an Error names --smooth otherwise.
SmoothOptions parse_smooth(const std::string& value);

struct SmoothGroup {
  std::string label;                   // "model.layers.3 attn"
  std::vector<std::string> consumers;  // linear prefixes: weight columns × s
  std::string norm;                    // norm tensor ÷ s, or empty
  std::string producer;                // linear prefix whose weight rows ÷ producer_s, or empty
  // o group: consumer channel h·head_dim + d belongs to KV head h / tie_heads, and s is the
  // same for the tie_heads query heads of a KV head (1 elsewhere: every channel its own s).
  int64_t tie_heads = 1, head_dim = 0;
  bool symmetric_act = false;            // the consumers' activation grid (compressed-tensors W8A8_STATIC)
  std::vector<float> s;                  // [k]; empty: left unsmoothed
  std::vector<float> producer_s;         // the producer's row divisors (s, or s per KV channel)
  std::optional<float> alpha;            // nullopt: off (s = 1 had the least error)
  double err_before = 0, err_after = 0;  // simulated relative output error, s = 1 and chosen
};

struct SmoothPlan {
  std::vector<SmoothGroup> groups;
  std::vector<std::string> skipped;  // "model.layers.0 down: up_proj is FLOAT", ...
  // The chosen s of a linear layer's columns / rows, a norm tensor's divisor; nullptr if none.
  const std::vector<float>* column_scale(const std::string& layer) const;
  const std::vector<float>* row_divisor(const std::string& layer) const;
  const std::vector<float>* norm_divisor(const std::string& tensor) const;
};

// Linear layers whose activations are int8 with a static per-tensor scale: msmodelslim W8A8,
// compressed-tensors W8A8_STATIC and W8A8_STATIC_ASYM (msmodelslim's W4A8 is dynamic).
bool scheme_has_static_int8_act(OutFormat f, const std::string& scheme);

// The groups of `plan` that can be smoothed (every consumer static int8; the down and o groups
// also need a quantized producer without bias, whose weight the worker rewrites), s not
// chosen yet. Layers are found by name (model.layers.N.self_attn.q_proj, ...); the rest goes
// to `skipped`. `config` gives the attention heads (o group), `has_bias` a layer's bias.
SmoothPlan smoothing_groups(const QuantPlan& plan, const ModelConfig& config,
                            const std::function<bool(const std::string&)>& has_bias);

// The same four groups per decoder layer for any scale migration (SmoothQuant, AWQ): a group
// is kept when every consumer's scheme passes `eligible`, else skipped with "<scheme> is not
// <what>".
struct GroupFilter {
  std::function<bool(const std::string& scheme)> eligible;
  std::string what;  // "int8 with static activation scales"
};
SmoothPlan migration_groups(const QuantPlan& plan, const ModelConfig& config,
                            const std::function<bool(const std::string&)>& has_bias, const GroupFilter& filter);

// Loads a linear layer's weight as fp32 [out, in].
using WeightLoader = std::function<std::vector<float>(const std::string& prefix)>;

struct GroupData;
// The loop every migration search shares: one decoder layer (its consecutive groups) at a
// time, only its consumers' weights in memory, `search(begin, end, data)` choosing s for
// sp.groups[begin, end) with data[i] describing group begin + i. `flag` names the option in
// errors ("--smooth"); `progress(done, total)` counts groups.
void search_layer_groups(SmoothPlan& sp, const std::map<std::string, LayerCalib>& calib, const WeightLoader& load,
                         const char* flag,
                         const std::function<void(size_t begin, size_t end, std::vector<GroupData>& data)>& search,
                         const std::function<void(int64_t, int64_t)>& progress);

// Chooses s for every group from the calibration statistics (per-channel ranges and sample
// rows of each consumer), one decoder layer's weights in memory at a time, the candidates of
// a layer in parallel on `pool`. `progress(done, total)` counts groups.
void choose_smoothing(SmoothPlan& sp, const std::map<std::string, LayerCalib>& calib, const WeightLoader& load,
                      const SmoothOptions& o, ThreadPool& pool,
                      const std::function<void(int64_t, int64_t)>& progress = nullptr);

// Rewrites one layer for the smoothed model: weight columns × s (a consumer), rows ÷ s (the
// down group's up_proj), and the static input range from the per-channel ranges (both
// input_range and input_range_mean: the exact range of x / s; a mean of per-sequence ranges
// would need per-sequence per-channel statistics, and after smoothing the outlier channels
// that made the two differ are flattened). Returns the sample rows as the smoothed layer sees
// them (x / s), or an empty vector when its input is unchanged.
std::vector<float> smooth_layer(const SmoothPlan& sp, const std::string& prefix, const LayerCalib* c, LinearInput& in);
// The norm weight (fp32) as folded: w_j / s_j.
std::vector<float> fold_norm(std::vector<float> w, const std::vector<float>& s);
// One note per decoder layer: α and simulated error before → after of each group, plus the
// skipped groups.
std::vector<std::string> smoothing_notes(const SmoothPlan& sp, const SmoothOptions& o);

// ---- building blocks (exposed for tests) ----

// s_j = act_absmax_j^α / w_absmax_j^(1−α), clamped to [1e-5, 1e5]; 1 where either is 0.
std::vector<float> smoothing_factors(const std::vector<float>& act_absmax, const std::vector<float>& w_absmax,
                                     float alpha);
// The exact range of x / s over the calibration rows: [min_j ch_min_j / s_j, max_j ch_max_j / s_j]
// (s_j > 0; s empty = all ones).
std::pair<float, float> smoothed_range(const std::vector<float>& ch_min, const std::vector<float>& ch_max,
                                       const std::vector<float>& s);

// One group's data for the simulated error: the consumers' fp32 weights, the sample rows and
// the per-channel input ranges.
struct GroupData {
  std::vector<const std::vector<float>*> w;  // each [n_i, k]
  std::vector<int64_t> n;
  int64_t k = 0;
  const float* x = nullptr;  // rows × k
  int64_t rows = 0;
  const std::vector<float>* ch_min = nullptr;
  const std::vector<float>* ch_max = nullptr;
  bool symmetric_act = false;
  const LayerCalib* calib = nullptr;  // the first consumer's statistics (all consumers share the input)
};
// mean over rows r of Σ_layers ||y_r − ref_r||² / Σ_layers ||ref_r||², rows whose reference
// is zero left out. y[i] and ref[i] are [rows, n_i]: per token, so the few tokens with
// massive activations do not decide the search for every other token.
double relative_token_error(const std::vector<std::vector<float>>& y, const std::vector<std::vector<float>>& ref,
                            const std::vector<int64_t>& n, int64_t rows);
// mean over rows r of Σ_layers ||X̂_r·Ŵᵀ − X_r·Wᵀ||² / Σ_layers ||X_r·Wᵀ||² (rows with a zero
// output are left out), X̂ = int8 fake-quant of X / s over
// smoothed_range, Ŵ = per-row symmetric int8 fake-quant of W·diag(s). `y_ref` holds X·Wᵀ per
// layer (float_outputs). s empty = unsmoothed.
double simulated_error(const GroupData& g, const std::vector<float>& s, const std::vector<std::vector<float>>& y_ref);
std::vector<std::vector<float>> float_outputs(const GroupData& g);
// Each channel's value replaced by the max over the channels that share its s (tie_heads).
std::vector<float> tie_channels(const std::vector<float>& v, int64_t tie_heads, int64_t head_dim);
// The producer's row divisors for a consumer's s: s itself, or (tied) one per KV channel.
std::vector<float> producer_divisors(const std::vector<float>& s, int64_t tie_heads, int64_t head_dim);
// act |max| per channel and the group's weight |max| per column.
std::vector<float> act_absmax(const std::vector<float>& ch_min, const std::vector<float>& ch_max);
std::vector<float> weight_col_absmax(const GroupData& g);

}  // namespace lowbit::quantize
