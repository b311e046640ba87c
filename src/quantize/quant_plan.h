// Which scheme every linear layer of a float model gets in `lowbit quantize`: the output
// format and its scheme names (upstream spellings), --scheme / --override / --ignore
// resolved per layer, and the checks that must hold before any work is done (fused groups
// share one scheme, static schemes have calibration data, group sizes fit).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/model_config.h"

namespace lowbit::quantize {

enum class OutFormat { MsModelSlim, CompressedTensors, Awq };

std::string_view format_name(OutFormat f);
// "msmodelslim" | "compressed-tensors" | "awq"; an Error lists the valid names otherwise.
OutFormat parse_format(std::string_view name);
// Every scheme name the format accepts, FLOAT included, in the order --help shows them.
const std::vector<std::string>& scheme_names(OutFormat f);
// An Error unless `scheme` is one of scheme_names(f); the message lists them and, when the
// name belongs to another format, says which.
void check_scheme(OutFormat f, const std::string& scheme, std::string_view where);
// Static activation scales (W8A8 msmodelslim, W8A8_STATIC*, FP8 compressed-tensors).
bool scheme_needs_calibration(OutFormat f, const std::string& scheme);

struct LinearLayer {
  std::string prefix;  // "model.layers.3.mlp.down_proj"
  int64_t out_features = 0, in_features = 0;
  bool router = false;  // a MoE layer's router (mlp.gate): always float, as upstream keeps it
};
// q/k/v/o of every decoder layer, then its dense gate/up/down, or in a MoE layer
// (ModelConfig::is_moe_layer) the router and each expert's gate/up/down
// (mlp.experts.<e>.gate_proj ...); lm_head last when it is not tied.
std::vector<LinearLayer> linear_layers(const ModelConfig& config);

struct PlanOptions {
  OutFormat format = OutFormat::CompressedTensors;
  std::string scheme;                  // --scheme, for every layer not matched below
  std::vector<std::string> overrides;  // "REGEX=SCHEME", first match wins
  std::vector<std::string> ignores;    // REGEX: keep float (checked before overrides)
  std::optional<int64_t> group_size;   // --group-size
  bool tied_lm_head = false;           // lm_head shares model.embed_tokens.weight
};

struct LayerPlan {
  LinearLayer layer;
  std::string scheme;  // a scheme name of the format, or "FLOAT"
  std::string why;     // "--scheme", "--override 'RE'", "--ignore 'RE'", "lm_head default"
  int64_t group_size = 0;  // along K for group-wise schemes; 0 = per channel / not grouped
};

struct QuantPlan {
  OutFormat format = OutFormat::CompressedTensors;
  std::vector<LayerPlan> layers;
  bool needs_calibration() const;
  const LayerPlan* find(const std::string& prefix) const;
};

// Regexes use Python re.match semantics (anchored at the start only) on the layer prefix.
// lm_head is only ever matched by an --override whose pattern mentions "lm_head" (the
// brief: embeddings, norms and lm_head stay float unless targeted explicitly); a tied
// lm_head cannot be quantized. Errors name the option and the layers involved.
QuantPlan make_plan(const PlanOptions& options, const std::vector<LinearLayer>& layers);

}  // namespace lowbit::quantize
