// AutoAWQ checkpoints, GEMM variant: config.json `quantization_config` {quant_method "awq",
// bits 4, group_size g, zero_point true, version "gemm"}. Every quantized linear layer stores
// `qweight` int32 [K, N/8], `qzeros` int32 [K/g, N/8] and `scales` fp16 [K/g, N], transposed
// against Hugging Face's [N, K] (WeightEncoding::Int4AwqGemm documents the nibble order).
// Layers named in `modules_to_not_convert` stay float. Checked against AutoAWQ
// awq/modules/linear/gemm.py and SGLang srt/layers/quantization/awq.py.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "formats/format.h"
#include "formats/format_util.h"
#include "io/config_fields.h"
#include "io/json_util.h"

namespace lowbit {

namespace {
using formats::LayerReader;

class AwqFormat final : public Format {
 public:
  AwqFormat(const Checkpoint& ckpt, const ModelConfig& config);
  std::string_view name() const override { return "awq"; }
  SchemeSpec spec_for(const std::string& prefix) const override;
  LinearTensors tensors_for(const std::string& prefix, bool has_bias) const override;
  void check_fused(std::span<const std::string> prefixes) const override {
    formats::check_same_spec(*this, prefixes, label_);
  }

 private:
  bool skipped(const std::string& prefix) const;

  const Checkpoint& ckpt_;
  std::string label_;
  int64_t group_size_ = 0;
  std::vector<std::string> not_converted_;
};

AwqFormat::AwqFormat(const Checkpoint& ckpt, const ModelConfig& config)
    : ckpt_(ckpt), label_((ckpt.dir() / "config.json").string()) {
  ConfigFields f(config.quantization_config, label_, "quantization_config.");
  const int64_t bits = f.opt_int("bits").value_or(f.opt_int("w_bit").value_or(0));
  if (bits != 4) f.fail_field("bits", fmt::format("= {}: only 4-bit AWQ is supported", bits));
  group_size_ = f.opt_int("group_size").value_or(f.opt_int("q_group_size").value_or(0));
  if (group_size_ <= 0) f.fail_field("group_size", fmt::format("= {} must be > 0", group_size_));
  if (!f.opt_bool("zero_point").value_or(true))
    f.fail_field("zero_point", "= false: symmetric AWQ is not supported (only zero_point true)");
  std::string version = f.opt_string("version").value_or("gemm");
  std::transform(version.begin(), version.end(), version.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  // GEMV, GEMV_fast, Marlin, ExLlama and IPEX variants pack the same numbers differently.
  if (version != "gemm") f.fail_field("version", fmt::format("= '{}': only the 'gemm' layout is supported", version));
  if (const nlohmann::json* m = f.find("modules_to_not_convert")) {
    if (!m->is_array())
      f.fail_field("modules_to_not_convert", fmt::format("must be a list, got {}", json_type_name(*m)));
    for (const auto& e : *m) {
      if (!e.is_string()) f.fail_field("modules_to_not_convert", "must hold strings only");
      not_converted_.push_back(e.get<std::string>());
    }
  }
  for (const auto& group : formats::fused_groups(formats::prefixes_with_suffix(ckpt.names(), {".qweight", ".weight"})))
    check_fused(group);
}

// As SGLang's is_layer_skipped_awq: a listed module name contained in the layer name.
bool AwqFormat::skipped(const std::string& prefix) const {
  return std::any_of(not_converted_.begin(), not_converted_.end(),
                     [&](const std::string& m) { return prefix.find(m) != std::string::npos; });
}

SchemeSpec AwqFormat::spec_for(const std::string& prefix) const {
  if (skipped(prefix)) return formats::float_spec("awq:modules_to_not_convert");
  SchemeSpec s;
  s.kind = SchemeKind::W4A16;
  s.encoding = WeightEncoding::Int4AwqGemm;
  s.weight = QuantArgs{4, NumKind::Int, Granularity::Group, group_size_, 0, /*symmetric=*/false, false};
  s.origin = "awq:gemm";
  return s;
}

LinearTensors AwqFormat::tensors_for(const std::string& prefix, bool has_bias) const {
  if (skipped(prefix)) return formats::float_tensors(ckpt_, prefix, has_bias, "awq:modules_to_not_convert");
  LayerReader r(ckpt_, prefix, fmt::format("awq gemm, group_size {}", group_size_));
  LinearTensors t;
  t.prefix = prefix;
  t.weight = r.get("qweight", {DType::I32});
  const TensorView scales = r.get("scales", {DType::F16, DType::BF16});
  if (t.weight.shape.size() != 2 || scales.shape.size() != 2)
    r.fail_tensor(t.weight.shape.size() != 2 ? "qweight" : "scales", "expected a 2-D tensor");
  const int64_t k = t.weight.shape[0], n = scales.shape[1];
  if (n % 8 != 0) r.fail_tensor("scales", fmt::format("N = {} is not a multiple of 8", n));
  if (k % group_size_ != 0)
    r.fail_tensor("qweight", fmt::format("K = {} is not a multiple of group_size {}", k, group_size_));
  t.weight = r.get("qweight", {DType::I32}, {k, n / 8});
  t.extra["weight_scale"] = r.get("scales", {DType::F16, DType::BF16}, {k / group_size_, n});
  t.extra["weight_zero"] = r.get("qzeros", {DType::I32}, {k / group_size_, n / 8});
  if (has_bias) t.bias = r.get("bias", formats::kFloatTypes, {n});
  return t;
}

}  // namespace

std::unique_ptr<Format> make_awq_format(const Checkpoint& ckpt, const ModelConfig& config) {
  return std::make_unique<AwqFormat>(ckpt, config);
}

}  // namespace lowbit
