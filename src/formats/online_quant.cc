// Online quantization (`--quantization METHOD` on a float checkpoint): the checkpoint's float
// linear weights are handed to a quantized scheme, which quantizes them once at load as it
// repacks them (schemes/*: per-channel or per-group symmetric round-to-nearest-even for the
// integer schemes, the OCP rule for MX). Only the decoder's linear layers are affected:
// embeddings, norms and lm_head never reach a Format and stay float.
#include <fmt/format.h>

#include "core/error.h"
#include "formats/format.h"

namespace lowbit {

namespace {

struct OnlineMethod {
  std::string_view name, what;
  SchemeSpec spec;
};

QuantArgs int_args(int bits, Granularity g, int64_t group = 0, bool dynamic = false) {
  return QuantArgs{bits, NumKind::Int, g, group, 0, true, dynamic};
}
QuantArgs mx_args(bool fp4) {
  return QuantArgs{fp4 ? 4 : 8, fp4 ? NumKind::FloatE2M1 : NumKind::FloatE4M3, Granularity::Block, 32, 0, true, true};
}
SchemeSpec make_spec(SchemeKind kind, QuantArgs w, std::optional<QuantArgs> a) {
  SchemeSpec s;
  s.kind = kind;
  s.weight = w;
  s.activation = a;
  return s;
}

const std::vector<OnlineMethod>& methods() {
  static const std::vector<OnlineMethod> m = {
      {"w8a8_int8", "int8 per-channel weights, int8 per-token dynamic activations",
       make_spec(SchemeKind::W8A8Dynamic, int_args(8, Granularity::Channel), int_args(8, Granularity::Token, 0, true))},
      {"w4a8", "int4 per-channel weights, int8 per-token dynamic activations",
       make_spec(SchemeKind::W4A8Dynamic, int_args(4, Granularity::Channel), int_args(8, Granularity::Token, 0, true))},
      {"w4a4", "int4 per-channel weights, int4 per-token dynamic activations",
       make_spec(SchemeKind::W4A4Dynamic, int_args(4, Granularity::Channel), int_args(4, Granularity::Token, 0, true))},
      {"w4a16", "int4 weights, one scale per group of 128 along K, float activations",
       make_spec(SchemeKind::W4A16, int_args(4, Granularity::Group, 128), std::nullopt)},
      {"mxfp8", "MXFP8 weights and activations (E4M3, E8M0 scale per 32)",
       make_spec(SchemeKind::Mxfp8, mx_args(false), mx_args(false))},
      {"mxfp4", "MXFP4 weights and activations (E2M1, E8M0 scale per 32; msmodelslim W4A4_MXFP4)",
       make_spec(SchemeKind::Mxfp4, mx_args(true), mx_args(true))},
      {"w4a8_mxfp", "MXFP4 weights, MXFP8 activations (msmodelslim W4A8_MXFP)",
       make_spec(SchemeKind::Mxfp4, mx_args(true), mx_args(false))},
  };
  return m;
}

class OnlineQuantFormat final : public Format {
 public:
  OnlineQuantFormat(std::unique_ptr<Format> base, const OnlineMethod& method)
      : base_(std::move(base)), method_(method), name_("online:" + std::string(method.name)) {
    spec_ = method.spec;
    spec_.origin = name_;
  }
  std::string_view name() const override { return name_; }
  SchemeSpec spec_for(const std::string& prefix) const override {
    const SchemeSpec base = base_->spec_for(prefix);
    if (base.kind != SchemeKind::Float)
      fail("--quantization {}: layer '{}' is already quantized ({}); online quantization needs a float checkpoint",
           method_.name, prefix, base.origin);
    return spec_;
  }
  LinearTensors tensors_for(const std::string& prefix, bool has_bias) const override {
    return base_->tensors_for(prefix, has_bias);
  }

 private:
  std::unique_ptr<Format> base_;
  const OnlineMethod& method_;
  std::string name_;
  SchemeSpec spec_;
};

}  // namespace

std::vector<std::pair<std::string, std::string>> online_quantization_methods() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : methods()) out.emplace_back(m.name, m.what);
  return out;
}

std::unique_ptr<Format> make_online_quant_format(std::unique_ptr<Format> base, std::string_view method) {
  for (const auto& m : methods())
    if (m.name == method) return std::make_unique<OnlineQuantFormat>(std::move(base), m);
  std::string names;
  for (const auto& m : methods()) names += (names.empty() ? "" : ", ") + std::string(m.name);
  fail("--quantization: unknown method '{}' (supported: {})", method, names);
}

}  // namespace lowbit
