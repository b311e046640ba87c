#include "io/rope_config.h"

#include <fmt/format.h>

#include "core/error.h"
#include "io/json_util.h"

namespace lowbit {

using nlohmann::json;

namespace {

constexpr double kDefaultTheta = 10000.0;  // RotaryEmbeddingConfigMixin.default_theta

// transformers: `rope_scaling or rope_parameters`, so an empty or null rope_scaling falls
// through to rope_parameters. Returns nullptr when neither is set.
const json* pick_rope_object(const ConfigFields& config, std::string& name) {
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const json* v = config.find(key);
    if (!v) continue;
    if (!v->is_object())
      config.fail_field(key, fmt::format("must be an object, got {}", json_type_name(*v)));
    if (v->empty()) continue;
    name = key;
    return v;
  }
  return nullptr;
}

// v5 may nest parameters by layer type ({"full_attention": {...}}). Every layer of the
// models we run is full attention, so only that entry can apply.
const json* unnest_layer_types(const ConfigFields& config, const json* rope, std::string& name) {
  auto full = rope->find("full_attention");
  if (full == rope->end() || !full->is_object()) return rope;
  for (const auto& [key, value] : rope->items()) {
    if (key != "full_attention" && value.is_object() && value != *full)
      config.fail_field(name, fmt::format("has per-layer-type RoPE parameters ('{}' differs from "
                                          "'full_attention'), which are not supported",
                                          key));
  }
  name += ".full_attention";
  return &*full;
}

double positive(const ConfigFields& fields, const char* key, double v) {
  if (!(v > 0)) fields.fail_field(key, fmt::format("must be positive, got {}", v));
  return v;
}

double required_positive_number(const ConfigFields& fields, const char* key,
                                std::string_view type) {
  auto v = fields.opt_number(key);
  if (!v) fields.fail_field(key, fmt::format("is required for rope_type '{}'", type));
  return positive(fields, key, *v);
}

// llama3 and yarn: a top-level original_max_position_embeddings wins (Phi3 convention),
// then the rope object's, then max_position_embeddings.
int64_t original_max_positions(const ConfigFields& config, const ConfigFields& rope,
                               int64_t max_position_embeddings) {
  std::optional<int64_t> v = config.opt_int("original_max_position_embeddings");
  const ConfigFields& source = v ? config : rope;
  if (!v) v = rope.opt_int("original_max_position_embeddings");
  if (!v) return max_position_embeddings;
  if (*v <= 0)
    source.fail_field("original_max_position_embeddings",
                      fmt::format("must be positive, got {}", *v));
  return *v;
}

void parse_llama3(const ConfigFields& rope, RopeScaling& s) {
  s.factor = required_positive_number(rope, "factor", s.type);
  s.low_freq_factor = required_positive_number(rope, "low_freq_factor", s.type);
  s.high_freq_factor = required_positive_number(rope, "high_freq_factor", s.type);
  // The smoothing ramp divides by (high - low).
  if (s.high_freq_factor <= s.low_freq_factor)
    rope.fail_field("high_freq_factor",
                    fmt::format("({}) must be greater than low_freq_factor ({})",
                                s.high_freq_factor, s.low_freq_factor));
}

void parse_yarn(const ConfigFields& rope, int64_t max_position_embeddings, RopeScaling& s) {
  if (!rope.contains("factor")) rope.fail_field("factor", "is required for rope_type 'yarn'");
  // A null factor means "the context extension ratio", as in _compute_yarn_parameters.
  if (auto f = rope.opt_number("factor"))
    s.factor = positive(rope, "factor", *f);
  else
    s.factor = double(max_position_embeddings) / double(s.original_max_position_embeddings);
  // transformers reads these with `or`, so 0 means the default too.
  if (auto v = rope.opt_number("beta_fast"); v && *v != 0) s.beta_fast = *v;
  if (auto v = rope.opt_number("beta_slow"); v && *v != 0) s.beta_slow = *v;
  s.attention_factor = rope.opt_number("attention_factor");
  if (s.attention_factor && *s.attention_factor < 0)
    rope.fail_field("attention_factor", fmt::format("must be >= 0, got {}", *s.attention_factor));
  s.mscale = rope.opt_number("mscale");
  s.mscale_all_dim = rope.opt_number("mscale_all_dim");
  s.truncate = rope.opt_bool("truncate").value_or(true);
}

}  // namespace

RopeConfig parse_rope_config(const ConfigFields& config, int64_t max_position_embeddings,
                             double default_partial_rotary_factor) {
  RopeConfig out;
  out.partial_rotary_factor = default_partial_rotary_factor;
  out.theta = config.opt_number("rope_theta").value_or(kDefaultTheta);
  std::string name;
  const json* rope_json = pick_rope_object(config, name);
  if (auto p = config.opt_number("partial_rotary_factor")) out.partial_rotary_factor = *p;
  if (!rope_json) {
    positive(config, "rope_theta", out.theta);
    return out;
  }
  rope_json = unnest_layer_types(config, rope_json, name);
  ConfigFields rope(*rope_json, config.label(), name + ".");

  if (auto theta = rope.opt_number("rope_theta")) out.theta = *theta;
  positive(rope.find("rope_theta") ? rope : config, "rope_theta", out.theta);
  // transformers reads the factor from the RoPE parameters (v5 copies the top-level one in).
  if (auto p = rope.opt_number("partial_rotary_factor")) out.partial_rotary_factor = *p;

  RopeScaling& s = out.scaling;
  // "rope_type" wins over the older "type" when both are present.
  s.type = rope.opt_string("rope_type").value_or(rope.opt_string("type").value_or("default"));
  if (s.type == "default") return out;
  if (s.type == "linear") {
    s.factor = required_positive_number(rope, "factor", s.type);
    return out;
  }
  if (s.type == "llama3" || s.type == "yarn") {
    s.original_max_position_embeddings =
        original_max_positions(config, rope, max_position_embeddings);
    if (s.type == "llama3")
      parse_llama3(rope, s);
    else
      parse_yarn(rope, max_position_embeddings, s);
    return out;
  }
  rope.fail_field(rope.contains("rope_type") ? "rope_type" : "type",
                  fmt::format("'{}' is not a supported RoPE type (supported: default, linear, "
                              "llama3, yarn)",
                              s.type));
}

}  // namespace lowbit
