// compressed-tensors output, as llm-compressor 0.14 + compressed-tensors 0.19 save it
// (model.save_pretrained(save_compressed=True)): model.safetensors with the compressors'
// tensor names (weight / weight_packed + weight_shape, weight_scale, weight_zero_point,
// input_scale, input_zero_point), scales in the model's dtype, and config.json's
// quantization_config as QuantizationConfig.from_pretrained builds it: config_groups
// group_0.. in module order (targets ["Linear"] when there is one group, else re: patterns
// naming each group's layers), every float Linear in `ignore`, format per group and a
// global one ("mixed-precision" when they differ). Quantizers run in the checkpoint dtype,
// as upstream (IntScaleRule::CompressedTensors, quantize_weight_asym_ct, quantize_weight_fp8).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <set>

#include "core/error.h"
#include "core/int4_packing.h"
#include "core/quant_types.h"
#include "formats/format_util.h"
#include "kernels/reference/quant_gemm_ref.h"
#include "kernels/reference/quantize_ref.h"
#include "quantize/extra_gemm_ref.h"
#include "quantize/format_writer.h"

namespace lowbit::quantize {

namespace {

using ojson = nlohmann::ordered_json;

constexpr int64_t kFp8Block = 128;

ComputeDType compute_of(DType d) {
  return d == DType::BF16 ? ComputeDType::BF16 : d == DType::F16 ? ComputeDType::F16 : ComputeDType::F32;
}

std::string group_format(const std::string& s) {
  if (s.starts_with("W8A8")) return "int-quantized";
  if (s.starts_with("W4A16")) return "pack-quantized";
  return "float-quantized";
}

// One QuantizationArgs, every field in the order model_dump(sort) gives.
ojson args(int bits, const char* type, bool symmetric, const char* strategy, std::optional<int64_t> group_size,
           bool dynamic, const char* observer, bool block = false) {
  ojson a = ojson::object();
  a["actorder"] = nullptr;
  a["block_structure"] = block ? ojson::array({kFp8Block, kFp8Block}) : ojson(nullptr);
  a["dynamic"] = dynamic;
  a["group_size"] = group_size ? ojson(*group_size) : ojson(nullptr);
  a["num_bits"] = bits;
  a["observer"] = observer ? ojson(observer) : ojson(nullptr);
  a["observer_kwargs"] = ojson::object();
  a["scale_dtype"] = nullptr;
  a["strategy"] = strategy;
  a["symmetric"] = symmetric;
  a["type"] = type;
  a["zp_dtype"] = symmetric ? ojson(nullptr) : ojson("torch.int8");
  return a;
}

// The scheme's config group body (without targets), as llm-compressor's presets fill it in.
ojson scheme_json(const std::string& s, int64_t group_size) {
  ojson w, a = nullptr;
  const char* wobs = "memoryless_minmax";
  if (s == "W8A8") {
    w = args(8, "int", true, "channel", {}, false, wobs);
    a = args(8, "int", true, "token", {}, true, nullptr);
  } else if (s == "W8A8_STATIC" || s == "W8A8_STATIC_ASYM") {
    w = args(8, "int", true, "channel", {}, false, wobs);
    a = args(8, "int", s == "W8A8_STATIC", "tensor", {}, false, "minmax");
  } else if (s == "W4A16" || s == "W4A16_ASYM") {
    w = group_size > 0 ? args(4, "int", s == "W4A16", "group", group_size, false, wobs)
                       : args(4, "int", s == "W4A16", "channel", {}, false, wobs);
  } else if (s == "FP8") {
    w = args(8, "float", true, "tensor", {}, false, wobs);
    a = args(8, "float", true, "tensor", {}, false, "static_minmax");
  } else if (s == "FP8_DYNAMIC") {
    w = args(8, "float", true, "channel", {}, false, wobs);
    a = args(8, "float", true, "token", {}, true, nullptr);
  } else if (s == "FP8_BLOCK") {
    w = args(8, "float", true, "block", {}, false, wobs, true);
    a = args(8, "float", true, "group", kFp8Block, true, nullptr);
  } else {
    fail("compressed-tensors writer: unexpected scheme '{}'", s);
  }
  ojson g = ojson::object();
  g["format"] = group_format(s);
  g["input_activations"] = a;
  g["output_activations"] = nullptr;
  g["targets"] = ojson::array();
  g["weights"] = w;
  return g;
}

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view(".^$*+?()[]{}|\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// re: targets naming exactly `prefixes`: one pattern per projection with the layer indices
// as an alternation, e.g. re:^model\.layers\.(?:0|3)\.mlp\.down_proj$. A MoE layer's experts
// always share one scheme (make_plan), so they take one pattern per projection with the expert
// index as \d+: re:^model\.layers\.(?:1)\.mlp\.experts\.\d+\.gate_proj$.
std::vector<std::string> targets_for(const std::vector<std::string>& prefixes) {
  std::map<std::string, std::vector<std::string>> by_suffix;  // escaped suffix -> layer indices
  std::vector<std::string> others;
  for (const std::string& p : prefixes) {
    const std::string head = "model.layers.";
    const size_t dot = p.find('.', head.size());
    if (!p.starts_with(head) || dot == std::string::npos) {
      others.push_back(p);
      continue;
    }
    const std::string layer = p.substr(head.size(), dot - head.size());
    std::string key = regex_escape(p.substr(dot + 1));
    if (const auto e = formats::parse_expert_prefix(p); e && e->experts.size() > dot)
      key = regex_escape(e->experts.substr(dot + 1)) + "\\.\\d+\\." + regex_escape(e->leaf);
    auto& idx = by_suffix[key];
    if (idx.empty() || idx.back() != layer) idx.push_back(layer);
  }
  std::vector<std::string> out;
  for (const auto& [suffix, idx] : by_suffix)
    out.push_back(fmt::format("re:^model\\.layers\\.(?:{})\\.{}$", fmt::join(idx, "|"), suffix));
  for (const std::string& p : others) out.push_back("re:^" + regex_escape(p) + "$");
  return out;
}

class CompressedTensorsWriter final : public FormatWriter {
 public:
  CompressedTensorsWriter(const QuantPlan& plan, DType model_dtype) : plan_(plan), dtype_(model_dtype) {
    if (dtype_ != DType::BF16 && dtype_ != DType::F16 && dtype_ != DType::F32)
      fail("compressed-tensors writer: model dtype {} is not a float type", dtype_name(dtype_));
  }
  std::string weights_file() const override { return "model.safetensors"; }
  std::vector<TensorDecl> declare(const LayerPlan& l, DType weight_dtype, bool has_bias) const override;
  QuantizedLinear quantize(const LinearInput& in) const override;
  void finish(const std::filesystem::path& out, ojson& config, const std::vector<TensorDecl>& tensors,
              const std::function<std::string(const std::string&)>& scheme_of) const override;

 private:
  const QuantPlan& plan_;
  DType dtype_;  // scale dtype = the model's dtype
};

std::vector<TensorDecl> CompressedTensorsWriter::declare(const LayerPlan& l, DType weight_dtype, bool has_bias) const {
  const std::string& p = l.layer.prefix;
  const std::string& s = l.scheme;
  const int64_t n = l.layer.out_features, k = l.layer.in_features;
  std::vector<TensorDecl> d;
  if (s.starts_with("W4A16")) {
    const int64_t groups = l.group_size > 0 ? k / l.group_size : 1;
    d = {{p + ".weight_packed", DType::I32, {n, (k + 7) / 8}},
         {p + ".weight_scale", dtype_, {n, groups}},
         {p + ".weight_shape", DType::I64, {2}}};
    if (s == "W4A16_ASYM") d.push_back({p + ".weight_zero_point", DType::I32, {(n + 7) / 8, groups}});
  } else {
    const bool fp8 = s.starts_with("FP8");
    std::vector<int64_t> scale_shape = {n, 1};
    if (s == "FP8") scale_shape = {1};
    if (s == "FP8_BLOCK") scale_shape = {(n + kFp8Block - 1) / kFp8Block, (k + kFp8Block - 1) / kFp8Block};
    d = {{p + ".weight", fp8 ? DType::F8_E4M3 : DType::I8, {n, k}}, {p + ".weight_scale", dtype_, scale_shape}};
    if (s == "FP8" || s.starts_with("W8A8_STATIC")) d.push_back({p + ".input_scale", dtype_, {1}});
    if (s == "W8A8_STATIC_ASYM") d.push_back({p + ".input_zero_point", DType::I8, {1}});
  }
  if (has_bias) d.push_back({p + ".bias", weight_dtype, {n}});
  return d;
}

QuantizedLinear CompressedTensorsWriter::quantize(const LinearInput& in) const {
  const LayerPlan& l = *in.plan;
  const std::string& p = l.layer.prefix;
  const std::string& s = l.scheme;
  const int64_t n = l.layer.out_features, k = l.layer.in_features;
  const ComputeDType cd = compute_of(in.dtype);
  const float* w = in.w.data();
  QuantizedLinear r;
  r.dequant.resize(size_t(n * k));

  if (s.starts_with("W4A16")) {
    const int64_t g = l.group_size;
    auto q = std::make_shared<IntWeightQuant>(s == "W4A16" ? quantize_weight_sym(w, n, k, 4, g, IntScaleRule::CompressedTensors, cd)
                                                           : quantize_weight_asym_ct(w, n, k, 4, g, cd));
    const int64_t gs = q->group_size;
    for (int64_t i = 0; i < n * k; ++i) {
      const size_t sg = size_t((i / k) * q->groups + (i % k) / gs);
      const float z = q->zero.empty() ? 0.0f : float(q->zero[sg]);
      r.dequant[size_t(i)] = (float(q->q[size_t(i)]) - z) * q->scale[sg];
    }
    r.tensors.push_back(make_out(p + ".weight_packed", DType::I32, {n, (k + 7) / 8}, pack_int4_int32_k(q->q.data(), n, k)));
    r.tensors.push_back(make_float_out(p + ".weight_scale", dtype_, {n, q->groups}, q->scale));
    r.tensors.push_back(make_out(p + ".weight_shape", DType::I64, {2}, std::vector<int64_t>{n, k}));
    if (!q->zero.empty())
      r.tensors.push_back(make_out(p + ".weight_zero_point", DType::I32, {(n + 7) / 8, q->groups},
                                   pack_int4_zero_points_n(q->zero.data(), n, q->groups)));
    r.gemm = [q, n, k, gs](const float* x, int64_t m, float* y) {
      gemm_w4a16_ref({m, n, k}, x, q->q.data(), q->zero.empty() ? nullptr : q->zero.data(), q->scale.data(), gs, y);
    };
    r.gemm_is_dequant = true;
  } else if (s.starts_with("W8A8")) {
    auto q = std::make_shared<IntWeightQuant>(quantize_weight_sym(w, n, k, 8, 0, IntScaleRule::CompressedTensors, cd));
    for (int64_t i = 0; i < n * k; ++i) r.dequant[size_t(i)] = float(q->q[size_t(i)]) * q->scale[size_t(i / k)];
    r.tensors.push_back(make_out(p + ".weight", DType::I8, {n, k}, q->q));
    r.tensors.push_back(make_float_out(p + ".weight_scale", dtype_, {n, 1}, q->scale));
    if (s == "W8A8") {
      r.gemm = [q, n, k](const float* x, int64_t m, float* y) {
        gemm_w8a8_dynamic_ref({m, n, k}, x, q->q.data(), q->scale.data(), y);
      };
    } else {
      if (!in.input_range_mean) fail("{}: {} needs calibration: pass --calib", p, s);
      const CtActQParams a = ct_static_act_qparams(in.input_range_mean->first, in.input_range_mean->second, false,
                                                   s == "W8A8_STATIC", cd);
      r.tensors.push_back(make_float_out(p + ".input_scale", dtype_, {1}, {a.scale}));
      if (s == "W8A8_STATIC_ASYM")
        r.tensors.push_back(make_out(p + ".input_zero_point", DType::I8, {1}, std::vector<int8_t>{int8_t(a.zero)}));
      r.gemm = [q, n, k, a](const float* x, int64_t m, float* y) {
        gemm_w8a8_static_unfolded_ref(x, m, q->q.data(), q->scale.data(), n, k, a.scale, a.zero, y);
      };
    }
  } else {
    const Fp8Granularity gran = s == "FP8" ? Fp8Granularity::Tensor : s == "FP8_DYNAMIC" ? Fp8Granularity::Channel
                                                                                          : Fp8Granularity::Block;
    auto q = std::make_shared<Fp8WeightQuant>(quantize_weight_fp8(w, n, k, gran, kFp8Block, cd));
    const int64_t tiles_k = (k + kFp8Block - 1) / kFp8Block;
    for (int64_t i = 0; i < n * k; ++i) {
      const int64_t row = i / k, col = i % k;
      const float sc = gran == Fp8Granularity::Tensor    ? q->scale[0]
                       : gran == Fp8Granularity::Channel ? q->scale[size_t(row)]
                                                         : q->scale[size_t((row / kFp8Block) * tiles_k + col / kFp8Block)];
      r.dequant[size_t(i)] = fp8_e4m3_to_f32(q->q[size_t(i)]) * sc;
    }
    r.tensors.push_back(make_out(p + ".weight", DType::F8_E4M3, {n, k}, q->q));
    std::vector<int64_t> scale_shape = gran == Fp8Granularity::Tensor    ? std::vector<int64_t>{1}
                                       : gran == Fp8Granularity::Channel ? std::vector<int64_t>{n, 1}
                                                                         : std::vector<int64_t>{(n + kFp8Block - 1) / kFp8Block, tiles_k};
    r.tensors.push_back(make_float_out(p + ".weight_scale", dtype_, scale_shape, q->scale));
    if (s == "FP8") {
      if (!in.input_range_mean) fail("{}: FP8 (static activations) needs calibration: pass --calib", p);
      const CtActQParams a =
          ct_static_act_qparams(in.input_range_mean->first, in.input_range_mean->second, true, true, cd);
      r.tensors.push_back(make_float_out(p + ".input_scale", dtype_, {1}, {a.scale}));
      r.gemm = [q, n, k, a](const float* x, int64_t m, float* y) {
        gemm_fp8_ref(x, m, q->q.data(), q->scale.data(), false, n, k, a.scale, y);
      };
    } else if (s == "FP8_DYNAMIC") {
      r.gemm = [q, n, k](const float* x, int64_t m, float* y) {
        gemm_fp8_ref(x, m, q->q.data(), q->scale.data(), true, n, k, 0.0f, y);
      };
    } else {
      r.gemm = [q, n, k](const float* x, int64_t m, float* y) {
        gemm_fp8_block_ref({m, n, k}, x, q->q.data(), q->scale.data(), kFp8Block, y);
      };
    }
  }
  if (in.bias) {
    // The float bias stays as it was (compressed-tensors does not touch it).
    OutTensor b{{p + ".bias", in.bias->dtype, in.bias->shape}, {}};
    const auto* src = static_cast<const uint8_t*>(in.bias->data);
    b.bytes.assign(src, src + in.bias->nbytes());
    r.tensors.push_back(std::move(b));
    std::vector<float> bias(static_cast<size_t>(n));
    convert_to_f32(in.bias->dtype, in.bias->data, bias.data(), bias.size());
    LayerGemm inner = r.gemm;
    r.gemm = [inner, bias, n](const float* x, int64_t m, float* y) {
      inner(x, m, y);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[size_t(j)];
    };
  }
  return r;
}

void CompressedTensorsWriter::finish(const std::filesystem::path& out, ojson& config, const std::vector<TensorDecl>&,
                                     const std::function<std::string(const std::string&)>&) const {
  // Distinct (scheme, group size) in module order → group_0, group_1, ...
  std::vector<std::pair<std::string, int64_t>> keys;
  std::map<std::pair<std::string, int64_t>, std::vector<std::string>> members;
  std::vector<std::string> ignore;
  for (const LayerPlan& l : plan_.layers) {
    if (l.scheme == "FLOAT") {
      ignore.push_back(l.layer.prefix);
      continue;
    }
    const auto key = std::make_pair(l.scheme, l.group_size);
    if (!members.count(key)) keys.push_back(key);
    members[key].push_back(l.layer.prefix);
  }
  // lm_head is a Linear that stays float (tied or not), so from_pretrained lists it.
  if (std::find(ignore.begin(), ignore.end(), "lm_head") == ignore.end()) ignore.push_back("lm_head");
  if (keys.empty()) fail("compressed-tensors: every layer is FLOAT; nothing to quantize");
  ojson groups = ojson::object();
  std::set<std::string> formats;
  for (size_t i = 0; i < keys.size(); ++i) {
    ojson g = scheme_json(keys[i].first, keys[i].second);
    g["targets"] = keys.size() == 1 ? ojson::array({"Linear"}) : ojson(targets_for(members[keys[i]]));
    formats.insert(g["format"].get<std::string>());
    groups["group_" + std::to_string(i)] = g;
  }
  ojson qc = ojson::object();
  qc["config_groups"] = groups;
  qc["format"] = formats.size() == 1 ? *formats.begin() : std::string("mixed-precision");
  qc["global_compression_ratio"] = nullptr;
  qc["ignore"] = ignore;
  qc["kv_cache_scheme"] = nullptr;
  qc["quant_method"] = "compressed-tensors";
  qc["quantization_status"] = "compressed";
  qc["sparsity_config"] = ojson::object();
  qc["transform_config"] = ojson::object();
  qc["version"] = "0.19.0";  // the compressed-tensors release whose layout this mirrors
  config["quantization_config"] = qc;
  write_json_file(out / "config.json", config);
}

}  // namespace

std::unique_ptr<FormatWriter> make_compressed_tensors_writer(const QuantPlan& plan, DType model_dtype) {
  return std::make_unique<CompressedTensorsWriter>(plan, model_dtype);
}

}  // namespace lowbit::quantize
