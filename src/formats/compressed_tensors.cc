// compressed-tensors checkpoints (llm-compressor, vLLM): config.json `quantization_config`
// names config groups of QuantArgs with targets, plus an ignore list; each group's `format`
// says how its weights are stored. Group/ignore parsing is in compressed_tensors_config.cc.
// Tensor names and packing: compressed-tensors compressors/{pack_quantized,naive_quantized}
// and ../shared/spec/quantization.md "compressed-tensors".
#include <fmt/format.h>

#include <cstring>
#include <map>

#include "core/error.h"
#include "formats/compressed_tensors_config.h"
#include "formats/format.h"
#include "formats/format_util.h"

namespace lowbit {

namespace {
using formats::ceil_div;
using formats::CtArgs;
using formats::CtConfig;
using formats::CtGroup;
using formats::kFloatTypes;
using formats::LayerReader;
using formats::shape_string;

// How a group's tensors sit on disk.
enum class Layout { PackedInt4, Int8, Fp8 };

struct Resolved {
  SchemeSpec spec;
  Layout layout = Layout::Int8;
  const CtArgs* weights = nullptr;
  const CtArgs* input = nullptr;  // nullptr: weight-only
};

std::string describe(const CtArgs& a) {
  std::string s = fmt::format("{}-bit {} strategy {}", a.num_bits, a.is_float ? "float" : "int", a.strategy);
  if (a.group_size) s += fmt::format(" group_size {}", a.group_size);
  s += a.symmetric ? " symmetric" : " asymmetric";
  if (a.dynamic) s += " dynamic";
  return s;
}

// The group's QuantArgs mapped to a scheme, or an Error naming the group and what it holds.
Resolved resolve(const CtGroup& g, const std::string& label) {
  Resolved r;
  r.spec.origin = "compressed-tensors:" + g.name;
  const std::string where = fmt::format("{}: field 'quantization_config.config_groups.{}'", label, g.name);
  if (!g.weights) fail("{}: a group without `weights` is not supported", where);
  const CtArgs& w = *g.weights;
  r.weights = &w;
  r.input = g.input ? &*g.input : nullptr;
  const CtArgs* a = r.input;
  auto unsupported = [&]() -> Resolved {
    fail("{}: weights {}{} in format '{}' is not a supported scheme", where, describe(w),
         a ? " with input_activations " + describe(*a) : std::string(" without activation quantization"), g.format);
  };
  static const char* kFormats[] = {"int-quantized", "pack-quantized", "float-quantized", "naive-quantized"};
  if (std::find(std::begin(kFormats), std::end(kFormats), g.format) == std::end(kFormats))
    fail(
        "{}: format '{}' is not supported (supported: int-quantized, pack-quantized, float-quantized, "
        "naive-quantized)",
        where, g.format);
  if (w.dynamic) unsupported();
  SchemeSpec& s = r.spec;
  QuantArgs qw;
  qw.bits = int(w.num_bits);
  qw.symmetric = w.symmetric;
  if (!w.is_float && w.num_bits == 4 && !a) {
    // W4A16: weight-only int4, packed 8 per int32 along K.
    if (g.format != "pack-quantized" || (w.strategy != "group" && w.strategy != "channel")) unsupported();
    r.layout = Layout::PackedInt4;
    s.kind = SchemeKind::W4A16;
    s.encoding = WeightEncoding::Int4PackedInt32K;
    qw.granularity = w.strategy == "group" ? Granularity::Group : Granularity::Channel;
    qw.group_size = w.group_size;
    s.has_g_idx = w.actorder == "group";
    s.weight = qw;
    return r;
  }
  if (!w.is_float && w.num_bits == 8 && a && !a->is_float && a->num_bits == 8) {
    // W8A8 int: SGLang requires symmetric weights, per-tensor or per-channel.
    if (g.format == "pack-quantized" || !w.symmetric || (w.strategy != "channel" && w.strategy != "tensor"))
      unsupported();
    r.layout = Layout::Int8;
    qw.granularity = w.strategy == "channel" ? Granularity::Channel : Granularity::Tensor;
    QuantArgs qa{8, NumKind::Int, Granularity::Token, 0, 0, a->symmetric, a->dynamic};
    if (a->strategy == "token" && a->dynamic) {
      s.kind = SchemeKind::W8A8Dynamic;
    } else if (a->strategy == "tensor" && !a->dynamic) {
      s.kind = SchemeKind::W8A8StaticUnfolded;
      qa.granularity = Granularity::Tensor;
    } else {
      unsupported();
    }
    s.weight = qw;
    s.activation = qa;
    return r;
  }
  if (w.is_float && w.num_bits == 8 && (!a || (a->is_float && a->num_bits == 8))) {
    if (g.format == "pack-quantized" || g.format == "int-quantized" || !w.symmetric) unsupported();
    r.layout = Layout::Fp8;
    qw.kind = NumKind::FloatE4M3;
    std::optional<QuantArgs> qa;
    if (a) qa = QuantArgs{8, NumKind::FloatE4M3, Granularity::Tensor, 0, 0, a->symmetric, a->dynamic};
    if (w.strategy == "tensor" || w.strategy == "channel") {
      s.kind = SchemeKind::Fp8;
      qw.granularity = w.strategy == "channel" ? Granularity::Channel : Granularity::Tensor;
      if (a) {
        if (a->strategy == "token" && a->dynamic && a->symmetric)
          qa->granularity = Granularity::Token;
        else if (a->strategy != "tensor" || !a->symmetric)
          unsupported();
      }
    } else if (w.strategy == "block") {
      // DeepSeek-style blocks: [rows, cols] of W per scale; activations per token-group.
      s.kind = SchemeKind::Fp8Block;
      qw.granularity = Granularity::Block;
      qw.block_rows = w.block_structure[0];
      qw.group_size = w.block_structure[1];
      if (a) {
        if (a->strategy != "group" || !a->dynamic || !a->symmetric || a->group_size != w.block_structure[1])
          unsupported();
        qa->granularity = Granularity::Group;
        qa->group_size = a->group_size;
      }
    } else {
      unsupported();
    }
    s.weight = qw;
    s.activation = qa;
    return r;
  }
  return unsupported();
}

class CompressedTensorsFormat final : public Format {
 public:
  CompressedTensorsFormat(const Checkpoint& ckpt, const ModelConfig& config);
  std::string_view name() const override { return "compressed-tensors"; }
  SchemeSpec spec_for(const std::string& prefix) const override { return resolve_layer(prefix).spec; }
  LinearTensors tensors_for(const std::string& prefix, bool has_bias) const override;
  void check_fused(std::span<const std::string> prefixes) const override;

 private:
  // The layer's resolution; spec Float (layout unused) when ignored or matched by no target.
  Resolved resolve_layer(const std::string& prefix) const;
  std::vector<int64_t> read_weight_shape(const LayerReader& r) const;

  const Checkpoint& ckpt_;
  CtConfig config_;
  std::map<std::string, Resolved> groups_;  // by group name
};

CompressedTensorsFormat::CompressedTensorsFormat(const Checkpoint& ckpt, const ModelConfig& config)
    : ckpt_(ckpt),
      config_(formats::parse_ct_config(config.quantization_config, (ckpt.dir() / "config.json").string())) {
  for (const CtGroup& g : config_.groups) groups_[g.name] = resolve(g, config_.label);
  const auto prefixes = formats::prefixes_with_suffix(ckpt.names(), {".weight_packed", ".weight"});
  for (const auto& group : formats::fused_groups(prefixes)) check_fused(group);
}

Resolved CompressedTensorsFormat::resolve_layer(const std::string& prefix) const {
  if (formats::ct_ignored_by(config_, prefix)) return Resolved{formats::float_spec("compressed-tensors:ignore")};
  formats::CtMatch m = formats::ct_match(config_, prefix);
  if (m.group) return groups_.at(m.group->name);
  // Not targeted: compressed-tensors left the module alone, so it must be a float weight.
  const std::string w = prefix + ".weight";
  if (ckpt_.has(w)) {
    const DType d = ckpt_.get(w).dtype;
    if (d == DType::BF16 || d == DType::F16 || d == DType::F32)
      return Resolved{formats::float_spec("compressed-tensors:untargeted")};
  }
  fail("{}: linear layer '{}' matches no target of quantization_config.config_groups and is not in ignore",
       config_.label, prefix);
}

void CompressedTensorsFormat::check_fused(std::span<const std::string> prefixes) const {
  if (prefixes.size() < 2) return;
  auto state = [&](const std::string& p) {
    if (const formats::CtPattern* ig = formats::ct_ignored_by(config_, p))
      return fmt::format("ignored (by '{}')", ig->text);
    formats::CtMatch m = formats::ct_match(config_, p);
    return m.group ? fmt::format("in config group '{}' (target '{}')", m.group->name, m.target->text)
                   : std::string("not targeted");
  };
  auto key = [&](const std::string& p) {
    if (formats::ct_ignored_by(config_, p)) return std::string("ignore");
    formats::CtMatch m = formats::ct_match(config_, p);
    return m.group ? m.group->name : std::string();
  };
  const std::string first = key(prefixes[0]);
  for (size_t i = 1; i < prefixes.size(); ++i)
    if (key(prefixes[i]) != first)
      fail("{}: fused modules must agree on ignore and target: '{}' is {} but '{}' is {}", config_.label, prefixes[0],
           state(prefixes[0]), prefixes[i], state(prefixes[i]));
}

std::vector<int64_t> CompressedTensorsFormat::read_weight_shape(const LayerReader& r) const {
  TensorView v = r.get("weight_shape", {DType::I64, DType::I32}, {2});
  std::vector<int64_t> out(2);
  for (int i = 0; i < 2; ++i) {
    if (v.dtype == DType::I64) {
      std::memcpy(&out[i], static_cast<const char*>(v.data) + 8 * i, 8);
    } else {
      int32_t x;
      std::memcpy(&x, static_cast<const char*>(v.data) + 4 * i, 4);
      out[i] = x;
    }
    if (out[i] <= 0) r.fail_tensor("weight_shape", fmt::format("= {} must be positive", shape_string(out)));
  }
  return out;
}

LinearTensors CompressedTensorsFormat::tensors_for(const std::string& prefix, bool has_bias) const {
  const Resolved res = resolve_layer(prefix);
  const SchemeSpec& s = res.spec;
  if (s.kind == SchemeKind::Float) return formats::float_tensors(ckpt_, prefix, has_bias, s.origin);
  LayerReader r(ckpt_, prefix, s.origin + " (" + std::string(scheme_kind_name(s.kind)) + ")");
  LinearTensors t;
  t.prefix = prefix;
  int64_t n = 0, k = 0;
  auto scale_shape = [&](const CtArgs& a) -> std::vector<int64_t> {
    if (a.strategy == "channel") return {n, 1};
    if (a.strategy == "group") return {n, ceil_div(k, a.group_size)};
    if (a.strategy == "block") return {ceil_div(n, a.block_structure[0]), ceil_div(k, a.block_structure[1])};
    return {1};
  };
  // Per-tensor scales: [1] as written by compressed-tensors; older writers used a 0-d scalar.
  auto get_scale = [&](std::string_view suffix, const std::vector<int64_t>& shape,
                       std::initializer_list<DType> dtypes) {
    TensorView v = r.get(suffix, dtypes);
    if (shape == std::vector<int64_t>{1} && v.shape.empty()) return v;
    return r.get(suffix, dtypes, shape);
  };
  if (res.layout == Layout::PackedInt4) {
    t.weight = r.get("weight_packed", {DType::I32});
    const std::vector<int64_t> shape = read_weight_shape(r);
    n = shape[0];
    k = shape[1];
    if (t.weight.shape != std::vector<int64_t>{n, ceil_div(k, 8)})
      r.fail_tensor("weight_packed",
                    fmt::format("shape {} disagrees with weight_shape {}: expected [N, ceil(K/8)] = [{}, {}]",
                                shape_string(t.weight.shape), shape_string(shape), n, ceil_div(k, 8)));
    const std::vector<int64_t> ss = scale_shape(*res.weights);
    t.extra["weight_scale"] = r.get("weight_scale", kFloatTypes, ss);
    // Zero points are packed along N (packed_dim=0), also stored +8.
    if (!s.weight.symmetric) t.extra["weight_zero"] = r.get("weight_zero_point", {DType::I32}, {ceil_div(n, 8), ss[1]});
    if (s.has_g_idx) t.extra["weight_g_idx"] = r.get("weight_g_idx", {DType::I32}, {k});
  } else {
    const bool fp8 = res.layout == Layout::Fp8;
    t.weight = r.get("weight", {fp8 ? DType::F8_E4M3 : DType::I8});
    if (t.weight.shape.size() != 2)
      r.fail_tensor("weight", fmt::format("shape {}, expected [N, K]", shape_string(t.weight.shape)));
    n = t.weight.shape[0];
    k = t.weight.shape[1];
    t.extra["weight_scale"] = get_scale("weight_scale", scale_shape(*res.weights), kFloatTypes);
    if (res.input && !res.input->dynamic) {
      t.extra["input_scale"] = get_scale("input_scale", {1}, kFloatTypes);
      if (!res.input->symmetric)
        t.extra["input_zero"] =
            get_scale("input_zero_point", {1}, {DType::I8, DType::I32, DType::BF16, DType::F16, DType::F32});
    }
  }
  if (has_bias) t.bias = r.get("bias", kFloatTypes, {n});
  return t;
}

}  // namespace

std::unique_ptr<Format> make_compressed_tensors_format(const Checkpoint& ckpt, const ModelConfig& config) {
  return std::make_unique<CompressedTensorsFormat>(ckpt, config);
}

}  // namespace lowbit
