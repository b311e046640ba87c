// msmodelslim (Ascend) checkpoints: quant_model_description.json maps every tensor name to a
// type string ("W8A8", "W8A8_DYNAMIC", ...), and each type stores its own companion tensors
// next to `<prefix>.weight`. Layout facts: ../shared/spec/quantization.md "msmodelslim",
// checked against msmodelslim save/ascendv1.py and SGLang srt/layers/quantization/modelslim/.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/format.h"
#include "formats/format_util.h"
#include "io/config_fields.h"
#include "io/json_util.h"

namespace lowbit {

namespace {
using formats::kFloatTypes;
using formats::LayerReader;

constexpr std::string_view kDescriptionFile = "quant_model_description.json";

enum class MsType { Float, W8A8, W8A8Dynamic, W4A4Dynamic, W4A8Dynamic, W8A8Mxfp8, W4A8Mxfp, W4A4Mxfp4 };

struct KnownType {
  std::string_view name;
  MsType type;
};
constexpr KnownType kLoadedTypes[] = {
    {"FLOAT", MsType::Float},
    {"W8A8", MsType::W8A8},
    {"W8A8_DYNAMIC", MsType::W8A8Dynamic},
    {"W4A4_DYNAMIC", MsType::W4A4Dynamic},
    {"W4A8_DYNAMIC", MsType::W4A8Dynamic},
    {"W8A8_MXFP8", MsType::W8A8Mxfp8},
    {"W4A8_MXFP", MsType::W4A8Mxfp},
    {"W4A4_MXFP4", MsType::W4A4Mxfp4},
};
// Real msmodelslim types whose math we do not implement: refused by name, never guessed at.
constexpr std::string_view kRejectedTypes[] = {
    "W8A8_MIX", "W8A16", "WFP8AFP8_DYNAMIC", "W16A16S", "W4A4_MXFP4_DUALSCALE", "C8"};

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// The type, or an Error naming the description file and the entry.
MsType parse_type(const std::string& label, const std::string& key, const std::string& value) {
  for (const KnownType& k : kLoadedTypes)
    if (value == k.name) return k.type;
  const bool rejected =
      std::find(std::begin(kRejectedTypes), std::end(kRejectedTypes), value) != std::end(kRejectedTypes) ||
      contains(value, "FLATQUANT") || contains(value, "SVD") || contains(value, "FAQuant") ||
      contains(value, "FAKQuant");
  if (rejected) fail("{}: entry '{}' has type '{}', which lowbit does not support", label, key, value);
  fail("{}: entry '{}' has unknown quantization type '{}'", label, key, value);
}

class MsModelSlimFormat final : public Format {
 public:
  explicit MsModelSlimFormat(const Checkpoint& ckpt);
  std::string_view name() const override { return "msmodelslim"; }
  SchemeSpec spec_for(const std::string& prefix) const override;
  LinearTensors tensors_for(const std::string& prefix, bool has_bias) const override;
  void check_fused(std::span<const std::string> prefixes) const override;

 private:
  struct Entry {
    MsType type;
    std::string type_name;
  };
  // The entry for `<prefix>.weight`; nullptr when the description has none.
  const Entry* find(const std::string& prefix) const;
  LinearTensors read_dynamic(LayerReader& r, bool has_bias, bool int4) const;
  LinearTensors read_w4a8(LayerReader& r, bool has_bias) const;
  LinearTensors read_mx(LayerReader& r, bool has_bias, bool fp4) const;
  // The W4A8 group size: the JSON's `group_size`, or, in older files that do not write it,
  // K divided by the columns of weight_scale_second (which must divide evenly).
  int64_t group_size_for(const LayerReader& r, int64_t k) const;

  const Checkpoint& ckpt_;
  std::string label_;         // path of the description file, for messages
  bool packed_w4a8_ = false;  // version "1.0.0": W4A8_DYNAMIC weights packed along N
  int64_t group_size_ = 0;
  std::map<std::string, Entry> entries_;  // by tensor name
};

MsModelSlimFormat::MsModelSlimFormat(const Checkpoint& ckpt)
    : ckpt_(ckpt), label_((ckpt.dir() / kDescriptionFile).string()) {
  const nlohmann::json j = parse_json_unique_keys(read_text_file(ckpt.dir() / kDescriptionFile), label_);
  ConfigFields f(j, label_);
  if (auto v = f.opt_string("version")) {
    if (*v != "1.0.0")
      f.fail_field("version", fmt::format("= '{}' is not a known layout (expected \"1.0.0\" or absent)", *v));
    packed_w4a8_ = true;
  }
  f.opt_string("model_quant_type");  // a summary that omits W4A8_DYNAMIC: type-checked, never used
  if (auto g = f.opt_int("group_size")) {
    if (*g < 0) f.fail_field("group_size", fmt::format("= {} must be >= 0", *g));
    group_size_ = *g;
  }
  // msmodelslim writes these two globally (null when off); quantized KV / FA caches change the
  // attention math, which we do not implement.
  for (std::string_view key : {"kv_quant_type", "fa_quant_type"})
    if (auto v = f.opt_string(key))
      f.fail_field(key, fmt::format("= '{}': quantized KV cache / attention is not supported", *v));
  // Per-tensor entries are the keys naming a tensor (they contain '.'); other global keys
  // ("metadata", "optional", future additions) are not entries.
  for (const auto& [key, value] : j.items()) {
    if (key.find('.') == std::string::npos) continue;
    if (!value.is_string())
      f.fail_field(key, fmt::format("must be a quantization type string, got {}", json_type_name(value)));
    const std::string type_name = value.get<std::string>();
    entries_[key] = Entry{parse_type(label_, key, type_name), type_name};
    // Anti-outlier smoothing leaves a bias on RMSNorm (SGLang patches RMSNorm for it); the
    // model has no such term, so running without it would be silently wrong.
    if (key.size() > 9 && key.ends_with("norm.bias"))
      fail("{}: entry '{}': anti-outlier norm bias is not supported", label_, key);
  }
  std::vector<std::string> weights;
  for (const auto& [key, e] : entries_)
    if (key.ends_with(".weight")) weights.push_back(key.substr(0, key.size() - 7));
  for (const auto& group : formats::fused_groups(weights)) check_fused(group);
}

const MsModelSlimFormat::Entry* MsModelSlimFormat::find(const std::string& prefix) const {
  auto it = entries_.find(prefix + ".weight");
  return it == entries_.end() ? nullptr : &it->second;
}

void MsModelSlimFormat::check_fused(std::span<const std::string> prefixes) const {
  const Entry* first = prefixes.empty() ? nullptr : find(prefixes[0]);
  for (size_t i = 1; i < prefixes.size(); ++i) {
    const Entry* other = find(prefixes[i]);
    const std::string_view a = first ? std::string_view(first->type_name) : "(no entry)";
    const std::string_view b = other ? std::string_view(other->type_name) : "(no entry)";
    if (a != b)
      fail("{}: fused modules must share one type: '{}.weight' is {} but '{}.weight' is {}", label_, prefixes[0], a,
           prefixes[i], b);
  }
}

SchemeSpec MsModelSlimFormat::spec_for(const std::string& prefix) const {
  const Entry* e = find(prefix);
  if (!e) {
    // Layers msmodelslim did not describe can only be plain float weights.
    const std::string w = prefix + ".weight";
    if (ckpt_.has(w)) {
      const DType d = ckpt_.get(w).dtype;
      if (d == DType::BF16 || d == DType::F16 || d == DType::F32)
        return formats::float_spec("msmodelslim:FLOAT (no entry)");
    }
    fail("{}: no entry '{}.weight' for linear layer '{}'", label_, prefix, prefix);
  }
  SchemeSpec s;
  s.origin = "msmodelslim:" + e->type_name;
  QuantArgs w, a;
  switch (e->type) {
    case MsType::Float:
      return s;
    case MsType::W8A8:
      s.kind = SchemeKind::W8A8Static;
      a.granularity = Granularity::Tensor;
      a.symmetric = false;
      break;
    case MsType::W8A8Dynamic:
      s.kind = SchemeKind::W8A8Dynamic;
      a.granularity = Granularity::Token;
      a.dynamic = true;
      break;
    case MsType::W4A4Dynamic:
      s.kind = SchemeKind::W4A4Dynamic;
      s.encoding = WeightEncoding::Int4InInt8;
      w.bits = a.bits = 4;
      a.granularity = Granularity::Token;
      a.dynamic = true;
      break;
    case MsType::W4A8Dynamic:
      s.kind = SchemeKind::W4A8Dynamic;
      s.encoding = packed_w4a8_ ? WeightEncoding::Int4PackedRowPairs : WeightEncoding::Int4InInt8;
      w.bits = 4;
      if (ckpt_.has(prefix + ".weight_scale_second")) {
        w.granularity = Granularity::Group;  // per-channel scale × per-group scale_second
        LayerReader r(ckpt_, prefix, s.origin);
        const TensorView wt = r.get("weight");
        w.group_size = group_size_for(r, wt.shape.size() == 2 ? wt.shape[1] : 0);
      }
      a.granularity = Granularity::Token;
      a.dynamic = true;
      break;
    case MsType::W8A8Mxfp8:
    case MsType::W4A8Mxfp:
    case MsType::W4A4Mxfp4: {
      const bool fp4_w = e->type != MsType::W8A8Mxfp8, fp4_a = e->type == MsType::W4A4Mxfp4;
      s.kind = fp4_w ? SchemeKind::Mxfp4 : SchemeKind::Mxfp8;
      s.encoding = fp4_w ? WeightEncoding::Fp4PackedK : WeightEncoding::Native;
      w = QuantArgs{fp4_w ? 4 : 8, fp4_w ? NumKind::FloatE2M1 : NumKind::FloatE4M3, Granularity::Block, 32};
      a = QuantArgs{fp4_a ? 4 : 8, fp4_a ? NumKind::FloatE2M1 : NumKind::FloatE4M3, Granularity::Block, 32};
      a.dynamic = true;
      break;
    }
  }
  s.weight = w;
  s.activation = a;
  return s;
}

LinearTensors MsModelSlimFormat::tensors_for(const std::string& prefix, bool has_bias) const {
  const SchemeSpec spec = spec_for(prefix);
  const Entry* e = find(prefix);
  if (!e || e->type == MsType::Float) return formats::float_tensors(ckpt_, prefix, has_bias, spec.origin);
  LayerReader r(ckpt_, prefix, spec.origin);
  switch (e->type) {
    case MsType::W8A8: {
      LinearTensors t;
      t.prefix = prefix;
      t.weight = r.get("weight", {DType::I8});
      if (t.weight.shape.size() != 2) r.fail_tensor("weight", "expected [N, K]");
      const int64_t n = t.weight.shape[0];
      t.extra["quant_bias"] = r.get("quant_bias", {DType::I32}, {n});
      t.extra["input_scale"] = r.get("input_scale", kFloatTypes, {1});
      t.extra["input_zero"] = r.get("input_offset", kFloatTypes, {1});
      // fp32, or (older fp16 models) I64 holding the fp32 bit pattern in its low 32 bits:
      // handed over as stored, the scheme decodes by dtype.
      t.extra["deq_scale"] = r.get("deq_scale", {DType::F32, DType::I64}, {n});
      // The float bias (and the zero-point correction) is already inside quant_bias; a separate
      // `.bias` tagged FLOAT may exist and must not be added again, so it is not handed over.
      return t;
    }
    case MsType::W8A8Dynamic:
      return read_dynamic(r, has_bias, false);
    case MsType::W4A4Dynamic:
      return read_dynamic(r, has_bias, true);
    case MsType::W4A8Dynamic:
      return read_w4a8(r, has_bias);
    case MsType::W8A8Mxfp8:
      return read_mx(r, has_bias, false);
    default:
      return read_mx(r, has_bias, true);
  }
}

LinearTensors MsModelSlimFormat::read_dynamic(LayerReader& r, bool has_bias, bool int4) const {
  LinearTensors t;
  t.prefix = r.prefix();
  t.weight = r.get("weight", {DType::I8});
  if (t.weight.shape.size() != 2) r.fail_tensor("weight", "expected [N, K]");
  const int64_t n = t.weight.shape[0];
  TensorView scale = r.get("weight_scale", kFloatTypes);
  // Per-group files store [N, K/g] here; their math (per-group W8A8/W4A4) is not implemented.
  if (scale.shape.size() == 2 && scale.shape[0] == n && scale.shape[1] > 1)
    r.fail_tensor("weight_scale",
                  fmt::format("shape {}: per-group {} is not supported", formats::shape_string(scale.shape),
                              int4 ? "W4A4_DYNAMIC" : "W8A8_DYNAMIC"));
  t.extra["weight_scale"] = r.get("weight_scale", kFloatTypes, {n, 1});
  t.extra["weight_zero"] = r.get("weight_offset", kFloatTypes, {n, 1});
  if (has_bias) t.bias = r.get("bias", kFloatTypes, {n});
  return t;
}

LinearTensors MsModelSlimFormat::read_w4a8(LayerReader& r, bool has_bias) const {
  LinearTensors t;
  t.prefix = r.prefix();
  TensorView scale = r.get("weight_scale", kFloatTypes);
  if (scale.shape.size() != 2 || scale.shape[1] != 1)
    r.fail_tensor("weight_scale", fmt::format("shape {}, expected [N, 1]", formats::shape_string(scale.shape)));
  const int64_t n = scale.shape[0];
  t.weight = r.get("weight", {DType::I8});
  if (t.weight.shape.size() != 2) r.fail_tensor("weight", "expected a 2-D tensor");
  const int64_t k = t.weight.shape[1];
  if (packed_w4a8_) {
    // version 1.0.0: two output rows per byte, so [N/2, K].
    if (n % 2 != 0 || t.weight.shape[0] != n / 2)
      r.fail_tensor(
          "weight",
          fmt::format(
              "shape {}, expected [N/2, K] = [{}, {}] (version 1.0.0 packs W4A8 along N; weight_scale has N = {})",
              formats::shape_string(t.weight.shape), n / 2, k, n));
  } else if (t.weight.shape[0] != n) {
    r.fail_tensor("weight",
                  fmt::format("shape {}, expected [N, K] with N = {} from weight_scale (unpacked: no version 1.0.0)",
                              formats::shape_string(t.weight.shape), n));
  }
  t.extra["weight_scale"] = scale;
  t.extra["weight_zero"] = r.get("weight_offset", kFloatTypes, {n, 1});
  if (r.has("weight_scale_second")) {
    const int64_t g = group_size_for(r, k);
    t.extra["weight_scale_second"] = r.get("weight_scale_second", kFloatTypes, {n, k / g});
    // Real msmodelslim writes these (all-zero) offsets as I64; older files as floats.
    t.extra["weight_zero_second"] =
        r.get("weight_offset_second", {DType::BF16, DType::F16, DType::F32, DType::I64, DType::I32, DType::I8},
              {n, k / g});
  }
  // scale_bias (8·Σ_k w·s, an NPU-kernel artefact) is deliberately not read.
  if (has_bias) t.bias = r.get("bias", kFloatTypes, {n});
  return t;
}

int64_t MsModelSlimFormat::group_size_for(const LayerReader& r, int64_t k) const {
  if (group_size_ > 0) {
    if (k % group_size_ != 0)
      fail("{}: field 'group_size' = {} does not divide K = {} of per-group layer '{}'", label_, group_size_, k,
           r.prefix());
    return group_size_;
  }
  const TensorView s = r.get("weight_scale_second", kFloatTypes);
  if (s.shape.size() != 2 || s.shape[1] <= 0 || k <= 0 || k % s.shape[1] != 0)
    r.fail_tensor("weight_scale_second",
                  fmt::format("shape {}: without a 'group_size' in {} the group size is K / columns, and K = {} "
                              "is not a multiple of the columns",
                              formats::shape_string(s.shape), label_, k));
  return k / s.shape[1];
}

LinearTensors MsModelSlimFormat::read_mx(LayerReader& r, bool has_bias, bool fp4) const {
  LinearTensors t;
  t.prefix = r.prefix();
  t.weight = fp4 ? r.get("weight", {DType::U8, DType::I8}) : r.get("weight", {DType::F8_E4M3});
  if (t.weight.shape.size() != 2) r.fail_tensor("weight", "expected a 2-D tensor");
  const int64_t n = t.weight.shape[0], k = fp4 ? 2 * t.weight.shape[1] : t.weight.shape[1];
  if (k % 32 != 0) r.fail_tensor("weight", fmt::format("K = {} is not a multiple of the MX block size 32", k));
  t.extra["weight_scale"] = r.get("weight_scale", {DType::U8}, {n, k / 32});
  if (has_bias) t.bias = r.get("bias", kFloatTypes, {n});
  return t;
}

}  // namespace

std::unique_ptr<Format> make_msmodelslim_format(const Checkpoint& ckpt) {
  return std::make_unique<MsModelSlimFormat>(ckpt);
}

}  // namespace lowbit
