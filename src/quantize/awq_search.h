// AWQ (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization for LLM Compression and
// Acceleration"), `lowbit quantize --algorithm awq`: before rounding, scale each input channel
// of a layer group by s_j chosen from the calibration activations, X·Wᵀ = (X / s)·(W·diag(s))ᵀ,
// so the channels that carry large activations get finer weight codes, and fold 1/s into the
// tensor that produces X (the same four groups and folds as SmoothQuant, smooth_quant.h).
// Then clip each weight group's range where that lowers the group's output error.
//
// Scale search, as AutoAWQ / llm-compressor's AWQModifier do it: with x̄_j = mean |x_j| over
// every calibration row and w̄_j = mean over the group's rows of |w_rj| / max|w_r,group(j)|,
//   duo:   s = x̄^r / (w̄^(1−r) + 1e-4),  plain: s = x̄^r,  both clamped ≥ 1e-4 and divided by
//   sqrt(max s · min s), for r in 0, 1/20, …, 19/20,
// each candidate scored by the consumers' outputs on the sampled calibration rows with the
// weights quantized exactly as the format writer writes them (and activations fake-quantized
// per token where the scheme does so at run time) against the float outputs; "off" (s = 1) is
// a candidate, so the search never makes the sampled error worse. The score is upstream's
// pooled squared error, relative to the float outputs' energy (see candidate_error).
//
// Clip search (AutoAWQ's auto_clip): per output row and weight group, the range bound
// max|w| · (1 − i/20), i = 0 … 9, with the least Σ_t (x_t,g · (w_g − ŵ_g))² on the sampled
// rows; q_proj and k_proj are left unclipped as upstream does (their error passes through the
// attention softmax, which this per-layer error does not see). The weights are clamped to the
// bound before the writer rounds them, so the writer's own min/max scales follow.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "quantize/format_writer.h"
#include "quantize/smooth_quant.h"

namespace lowbit {
class ThreadPool;
}

namespace lowbit::quantize {

struct AwqOptions {
  int grid = 20;             // ratios r = i / grid, i < grid (upstream n_grid)
  bool plain = true;         // also the plain s = x̄^r candidates (upstream: duo only)
  bool clip = true;          // the clip search (--awq-no-clip turns it off)
  int clip_grid = 20;        // bounds 1 − i / clip_grid ...
  double max_shrink = 0.5;   // ... for i < max_shrink · clip_grid (upstream max_shrink)
};

// Integer-weight schemes whose activations are not statically scaled: weight-only W4A16
// (AWQ, compressed-tensors sym/asym) and the dynamic per-token int schemes. 0 when AWQ does
// not apply, else the activation bits the scheme fake-quantizes per token at run time
// (16 = none).
int awq_act_bits(OutFormat format, const std::string& scheme);

// The layers' groups that AWQ can scale (migration_groups with awq_act_bits as the filter).
SmoothPlan awq_groups(const QuantPlan& plan, const ModelConfig& config,
                      const std::function<bool(const std::string&)>& has_bias);

// Per output row and weight group of one layer, the bound its weights are clamped to.
struct AwqClip {
  int64_t n = 0, k = 0, group_size = 0, groups = 0;
  std::vector<float> bound;  // [n, groups]
  int64_t clipped = 0;       // entries with a bound below the group's max |w|
};

struct AwqPlan {
  SmoothPlan scales;                      // s per group, folded like SmoothQuant's
  std::map<std::string, AwqClip> clips;   // consumer layer → its bounds (clipped layers only)
  std::vector<bool> duo;                  // per group: the chosen s was the duo form
};

// How a layer is quantized: the format writer's result for weights `w` (already scaled).
using LayerQuantizer = std::function<QuantizedLinear(const LayerPlan& layer, std::vector<float> w)>;

// Chooses s for every group of `p.scales` and then the clip bounds of every consumer (from
// its final, scaled weight), one decoder layer at a time, candidates in parallel on `pool`.
void choose_awq(AwqPlan& p, const QuantPlan& plan, const std::map<std::string, LayerCalib>& calib,
                const WeightLoader& load, const LayerQuantizer& quantize, const AwqOptions& o, ThreadPool& pool,
                const std::function<void(int64_t, int64_t)>& progress = nullptr);

// Clamps a layer's (scaled) weight [n, k] to its chosen bounds; no-op for unclipped layers.
void apply_awq_clip(const AwqPlan& p, const std::string& layer, std::vector<float>& w);

// The report's notes: per decoder layer each group's ratio (or off) and error before → after,
// the clipped fraction, and the skipped groups.
std::vector<std::string> awq_notes(const AwqPlan& p);

// ---- building blocks (exposed for tests) ----

// AWQ's candidate s (see the top of the file) for per-channel x̄ and w̄ at ratio r.
std::vector<float> awq_factors(const std::vector<float>& x_mean, const std::vector<float>& w_mean, float ratio,
                               bool duo);
// w̄_j over the group's consumers: mean over all their rows of |w_rj| / (max over w_rj's
// quantization group of |w| + 1e-6), groups of `group_size` along K (0 = the whole row).
std::vector<float> awq_weight_mean(const GroupData& g, int64_t group_size);
// Per output row and group, the bound among `ratios` × max|w_group| with the least
// Σ_t (x_t,g · (w_g − ŵ_g))² for ŵ = dequant(w clamped), `x` [rows, k] the layer's input.
AwqClip search_clip(const LayerPlan& layer, const std::vector<float>& w, const float* x, int64_t rows,
                    const LayerQuantizer& quantize, const std::vector<float>& ratios);

}  // namespace lowbit::quantize
