#include "quantize/quant_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "core/error.h"
#include "formats/compressed_tensors_config.h"
#include "formats/format_util.h"

namespace lowbit::quantize {

namespace {

const std::vector<std::string> kMsModelSlim = {"W8A8",      "W8A8_DYNAMIC", "W4A4_DYNAMIC", "W4A8_DYNAMIC",
                                               "W8A8_MXFP8", "W4A8_MXFP",   "W4A4_MXFP4",   "FLOAT"};
const std::vector<std::string> kCompressedTensors = {"W8A8",       "W8A8_STATIC", "W8A8_STATIC_ASYM", "W4A16",
                                                     "W4A16_ASYM", "FP8",         "FP8_DYNAMIC",      "FP8_BLOCK",
                                                     "FLOAT"};
const std::vector<std::string> kAwq = {"W4A16", "FLOAT"};

constexpr OutFormat kFormats[] = {OutFormat::MsModelSlim, OutFormat::CompressedTensors, OutFormat::Awq};

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

// Group size along K that a layer of `scheme` uses under `format` (0 = not grouped).
int64_t group_size_for(OutFormat f, const std::string& scheme, const std::optional<int64_t>& given) {
  if (f == OutFormat::CompressedTensors && (scheme == "W4A16" || scheme == "W4A16_ASYM")) return given.value_or(128);
  if (f == OutFormat::Awq && scheme == "W4A16") return given.value_or(128);
  if (f == OutFormat::MsModelSlim && scheme == "W4A8_DYNAMIC") return given.value_or(0);
  return 0;
}

struct Rule {
  std::string text, scheme;
  formats::CtRegex regex;
};

}  // namespace

std::string_view format_name(OutFormat f) {
  switch (f) {
    case OutFormat::MsModelSlim: return "msmodelslim";
    case OutFormat::CompressedTensors: return "compressed-tensors";
    case OutFormat::Awq: return "awq";
  }
  return "?";
}

OutFormat parse_format(std::string_view name) {
  for (OutFormat f : kFormats)
    if (format_name(f) == name) return f;
  fail("--format '{}' is not a known output format (valid: msmodelslim, compressed-tensors, awq)", name);
}

const std::vector<std::string>& scheme_names(OutFormat f) {
  switch (f) {
    case OutFormat::MsModelSlim: return kMsModelSlim;
    case OutFormat::CompressedTensors: return kCompressedTensors;
    case OutFormat::Awq: return kAwq;
  }
  return kAwq;
}

void check_scheme(OutFormat f, const std::string& scheme, std::string_view where) {
  if (has(scheme_names(f), scheme)) return;
  std::vector<std::string_view> others;
  for (OutFormat g : kFormats)
    if (g != f && has(scheme_names(g), scheme)) others.push_back(format_name(g));
  const std::string elsewhere =
      others.empty() ? std::string()
                     : fmt::format(" ('{}' is a scheme of --format {}, not of {})", scheme, fmt::join(others, ", "),
                                   format_name(f));
  fail("{}: scheme '{}' is not valid for --format {}{}; valid schemes: {}", where, scheme, format_name(f), elsewhere,
       fmt::join(scheme_names(f), ", "));
}

bool scheme_needs_calibration(OutFormat f, const std::string& scheme) {
  if (f == OutFormat::MsModelSlim) return scheme == "W8A8";
  if (f == OutFormat::CompressedTensors) return scheme == "W8A8_STATIC" || scheme == "W8A8_STATIC_ASYM" || scheme == "FP8";
  return false;
}

std::vector<LinearLayer> linear_layers(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim,
                inter = c.intermediate_size;
  std::vector<LinearLayer> out;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    out.push_back({p + "self_attn.q_proj", q, h});
    out.push_back({p + "self_attn.k_proj", kv, h});
    out.push_back({p + "self_attn.v_proj", kv, h});
    out.push_back({p + "self_attn.o_proj", h, q});
    if (!c.is_moe_layer(i)) {
      out.push_back({p + "mlp.gate_proj", inter, h});
      out.push_back({p + "mlp.up_proj", inter, h});
      out.push_back({p + "mlp.down_proj", h, inter});
      continue;
    }
    const int64_t f = c.moe.moe_intermediate_size;
    out.push_back({p + "mlp.gate", c.moe.num_experts, h, true});
    for (int64_t e = 0; e < c.moe.num_experts; ++e) {
      const std::string x = fmt::format("{}mlp.experts.{}.", p, e);
      out.push_back({x + "gate_proj", f, h});
      out.push_back({x + "up_proj", f, h});
      out.push_back({x + "down_proj", h, f});
    }
  }
  if (!c.tie_word_embeddings) out.push_back({"lm_head", c.vocab_size, h});
  return out;
}

bool QuantPlan::needs_calibration() const {
  return std::any_of(layers.begin(), layers.end(),
                     [&](const LayerPlan& l) { return scheme_needs_calibration(format, l.scheme); });
}

const LayerPlan* QuantPlan::find(const std::string& prefix) const {
  for (const LayerPlan& l : layers)
    if (l.layer.prefix == prefix) return &l;
  return nullptr;
}

QuantPlan make_plan(const PlanOptions& o, const std::vector<LinearLayer>& layers) {
  check_scheme(o.format, o.scheme, "--scheme");
  if (o.group_size && *o.group_size < 0) fail("--group-size {} must be >= 0", *o.group_size);
  std::vector<Rule> overrides, ignores;
  for (const std::string& text : o.overrides) {
    const size_t eq = text.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
      fail("--override '{}' must be REGEX=SCHEME, e.g. 'model\\.layers\\.0\\..*=FLOAT'", text);
    const std::string where = fmt::format("--override '{}'", text);
    Rule r{text.substr(0, eq), text.substr(eq + 1), formats::CtRegex(text.substr(0, eq), where)};
    check_scheme(o.format, r.scheme, where);
    overrides.push_back(std::move(r));
  }
  for (const std::string& text : o.ignores)
    ignores.push_back(Rule{text, "FLOAT", formats::CtRegex(text, fmt::format("--ignore '{}'", text))});
  // A tied lm_head is the embedding matrix; quantizing it would change the embeddings too.
  if (o.tied_lm_head)
    for (const Rule& r : overrides)
      if (r.text.find("lm_head") != std::string::npos && r.scheme != "FLOAT")
        fail("--override '{}={}': lm_head is tied to model.embed_tokens (tie_word_embeddings), so it cannot be "
             "quantized on its own",
             r.text, r.scheme);

  QuantPlan plan;
  plan.format = o.format;
  for (const LinearLayer& layer : layers) {
    if (layer.router) {  // SGLang and vLLM run the router in float; the loaders expect it so
      plan.layers.push_back({layer, "FLOAT", "MoE router (float)"});
      continue;
    }
    LayerPlan lp{layer, o.scheme, "--scheme"};
    const bool head = layer.prefix == "lm_head";
    if (head) lp = {layer, "FLOAT", "lm_head default (float)"};
    bool decided = false;
    for (const Rule& r : ignores)
      if (r.regex.match(layer.prefix)) {
        lp = {layer, "FLOAT", fmt::format("--ignore '{}'", r.text)};
        decided = true;
        break;
      }
    for (size_t i = 0; !decided && i < overrides.size(); ++i) {
      const Rule& r = overrides[i];
      if (head && r.text.find("lm_head") == std::string::npos) continue;
      if (r.regex.match(layer.prefix)) {
        lp = {layer, r.scheme, fmt::format("--override '{}={}'", r.text, r.scheme)};
        decided = true;
      }
    }
    lp.group_size = group_size_for(o.format, lp.scheme, o.group_size);
    const int64_t k = layer.in_features;
    if (o.format == OutFormat::Awq && lp.scheme == "W4A16" && lp.group_size == 0)
      fail("--group-size 0: AWQ is group-wise only (e.g. --group-size 128)");
    if (lp.group_size > 0 && k % lp.group_size != 0)
      fail("layer '{}' ({}, {}): in_features {} is not a multiple of the group size {} (set --group-size)",
           layer.prefix, lp.scheme, lp.why, k, lp.group_size);
    const bool mx = o.format == OutFormat::MsModelSlim && lp.scheme.find("MXFP") != std::string::npos;
    if (mx && k % 32 != 0)
      fail("layer '{}' ({}): in_features {} is not a multiple of the MX block size 32", layer.prefix, lp.scheme, k);
    plan.layers.push_back(std::move(lp));
  }

  // Fused modules (q/k/v, gate/up) run as one matmul in the engines: one scheme each.
  std::vector<std::string> prefixes;
  for (const LayerPlan& l : plan.layers) prefixes.push_back(l.layer.prefix);
  for (const auto& group : formats::fused_groups(prefixes)) {
    const LayerPlan* first = plan.find(group[0]);
    for (size_t i = 1; i < group.size(); ++i) {
      const LayerPlan* other = plan.find(group[i]);
      if (other->scheme != first->scheme || other->group_size != first->group_size)
        fail("fused layers must share one scheme: '{}' is {} (from {}) but '{}' is {} (from {})", first->layer.prefix,
             first->scheme, first->why, other->layer.prefix, other->scheme, other->why);
    }
  }

  // msmodelslim stores a single global group_size (MX types record 32 there, as upstream).
  if (o.format == OutFormat::MsModelSlim) {
    std::map<int64_t, std::string> sizes;
    for (const LayerPlan& l : plan.layers) {
      if (l.scheme.find("MXFP") != std::string::npos) sizes.emplace(32, l.layer.prefix + " (" + l.scheme + ")");
      if (l.group_size > 0) sizes.emplace(l.group_size, l.layer.prefix + " (" + l.scheme + ")");
    }
    if (sizes.size() > 1)
      fail("msmodelslim records one global group_size, but '{}' needs {} and '{}' needs {}", sizes.begin()->second,
           sizes.begin()->first, sizes.rbegin()->second, sizes.rbegin()->first);
  }
  return plan;
}

}  // namespace lowbit::quantize
