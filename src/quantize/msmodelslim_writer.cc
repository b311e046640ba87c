// msmodelslim (Ascend) output, as its AscendV1Saver writes it (msmodelslim
// core/quant_service/modelslim_v1/save/ascendv1.py, utils/pack.py, utils/deqscale.py):
// quant_model_weights.safetensors, quant_model_description.json with an entry for EVERY
// tensor (FLOAT for copied ones, and for a quantized layer's float bias), then version
// "1.0.0", model_quant_type (the upstream priority list, which hides W4A8_DYNAMIC),
// metadata, group_size and optional; config.json without quantization_config.
// Weight rules: IntScaleRule::QMax (calculate_int_qparam), MX weights MsModelSlimFp8 /
// MsModelSlimFp4 (half away from zero); computed in fp32 on the widened weight.
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/int4_packing.h"
#include "core/quant_types.h"
#include "kernels/reference/quant_gemm_ref.h"
#include "kernels/reference/quantize_ref.h"
#include "quantize/format_writer.h"

namespace lowbit::quantize {

namespace {

// AscendV1Saver.QUANT_TYPE_PRIORITY: the summary records the highest-priority type seen;
// W4A8_DYNAMIC is deliberately absent.
const char* kPriority[] = {"FLOAT",           "W16A16S",    "W8A16",     "W8A8_DYNAMIC", "W8A8_MIX",   "W8A8",
                           "WFP8AFP8_DYNAMIC", "W8A8_MXFP8", "W4A8_MXFP", "W4A4_DYNAMIC", "W4A4_MXFP4", "W4A4_MXFP4_DUALSCALE"};

int priority(const std::string& t) {
  for (int i = 0; i < int(std::size(kPriority)); ++i)
    if (t == kPriority[i]) return i;
  return -1;
}

std::vector<float> zeros(size_t n) { return std::vector<float>(n, 0.0f); }

// utils/pack.py process_scale with tp_num 16: 8·Σ_k w·s per row for column-parallel layers,
// per sixteenth of K for row-parallel ones (o_proj, down_proj). Read and ignored by loaders.
std::vector<int64_t> scale_bias_shape(const std::string& prefix, int64_t n) {
  const bool row_parallel = prefix.ends_with("o_proj") || prefix.ends_with("down_proj");
  return {n, row_parallel ? 16 : 1};
}
std::vector<float> scale_bias(const std::string& prefix, const std::vector<float>& deq, int64_t n, int64_t k) {
  const int64_t parts = scale_bias_shape(prefix, n)[1];
  if (k % parts != 0) fail("{}: W4A8_DYNAMIC scale_bias needs in_features {} divisible by {}", prefix, k, parts);
  std::vector<float> out(size_t(n * parts));
  const int64_t len = k / parts;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t p = 0; p < parts; ++p) {
      float s = 0;  // fp32 sum, as torch's .sum on fp32
      for (int64_t t = 0; t < len; ++t) s += deq[size_t(r * k + p * len + t)];
      out[size_t(r * parts + p)] = 8.0f * s;
    }
  return out;
}

class MsModelSlimWriter final : public FormatWriter {
 public:
  MsModelSlimWriter(const QuantPlan& plan, DType model_dtype) : plan_(plan), model_dtype_(model_dtype) {}
  std::string weights_file() const override { return "quant_model_weights.safetensors"; }
  std::vector<TensorDecl> declare(const LayerPlan& l, DType weight_dtype, bool has_bias) const override;
  QuantizedLinear quantize(const LinearInput& in) const override;
  void finish(const std::filesystem::path& out, nlohmann::ordered_json& config, const std::vector<TensorDecl>& tensors,
              const std::function<std::string(const std::string&)>& scheme_of) const override;

 private:
  // deqscale2int64_by_dtype: fp32 for bf16 models, else the fp32 bits widened to I64.
  DType deq_dtype() const { return model_dtype_ == DType::BF16 ? DType::F32 : DType::I64; }
  const QuantPlan& plan_;
  DType model_dtype_;
};

std::vector<TensorDecl> MsModelSlimWriter::declare(const LayerPlan& l, DType, bool has_bias) const {
  const std::string& p = l.layer.prefix;
  const int64_t n = l.layer.out_features, k = l.layer.in_features;
  const std::string& s = l.scheme;
  std::vector<TensorDecl> d;
  if (s == "W8A8") {
    d = {{p + ".weight", DType::I8, {n, k}},
         {p + ".quant_bias", DType::I32, {n}},
         {p + ".input_scale", DType::F32, {1}},
         {p + ".input_offset", DType::F32, {1}},
         {p + ".deq_scale", deq_dtype(), {n}}};
  } else if (s == "W8A8_DYNAMIC" || s == "W4A4_DYNAMIC") {
    d = {{p + ".weight", DType::I8, {n, k}}, {p + ".weight_scale", DType::F32, {n, 1}}, {p + ".weight_offset", DType::F32, {n, 1}}};
  } else if (s == "W4A8_DYNAMIC") {
    if (n % 2 != 0) fail("{}: W4A8_DYNAMIC packs two output rows per byte; out_features {} is odd", p, n);
    d = {{p + ".weight", DType::I8, {n / 2, k}},
         {p + ".weight_scale", DType::F32, {n, 1}},
         {p + ".weight_offset", DType::F32, {n, 1}},
         {p + ".scale_bias", DType::F32, scale_bias_shape(p, n)}};
    if (l.group_size > 0) {
      d.push_back({p + ".weight_scale_second", DType::F32, {n, k / l.group_size}});
      d.push_back({p + ".weight_offset_second", DType::F32, {n, k / l.group_size}});
    }
  } else if (s == "W8A8_MXFP8") {
    d = {{p + ".weight", DType::F8_E4M3, {n, k}}, {p + ".weight_scale", DType::U8, {n, k / 32}}};
  } else if (s == "W4A8_MXFP" || s == "W4A4_MXFP4") {
    d = {{p + ".weight", DType::U8, {n, k / 2}}, {p + ".weight_scale", DType::U8, {n, k / 32}}};
  } else {
    fail("msmodelslim writer: unexpected scheme '{}' for '{}'", s, p);
  }
  if (has_bias) d.push_back({p + ".bias", DType::F32, {n}});  // tagged FLOAT, as upstream
  return d;
}

QuantizedLinear MsModelSlimWriter::quantize(const LinearInput& in) const {
  const LayerPlan& l = *in.plan;
  const std::string& p = l.layer.prefix;
  const std::string& s = l.scheme;
  const int64_t n = l.layer.out_features, k = l.layer.in_features;
  const float* w = in.w.data();
  QuantizedLinear r;
  r.dequant.resize(size_t(n * k));
  std::vector<float> bias;
  if (in.bias) {
    bias.resize(size_t(n));
    convert_to_f32(in.bias->dtype, in.bias->data, bias.data(), bias.size());
  }

  if (s == "W8A8" || s == "W8A8_DYNAMIC" || s == "W4A4_DYNAMIC") {
    const int bits = s == "W4A4_DYNAMIC" ? 4 : 8;
    auto q = std::make_shared<IntWeightQuant>(quantize_weight_sym(w, n, k, bits, 0, IntScaleRule::QMax));
    for (int64_t i = 0; i < n * k; ++i) r.dequant[size_t(i)] = float(q->q[size_t(i)]) * q->scale[size_t(i / k)];
    r.tensors.push_back(make_out(p + ".weight", DType::I8, {n, k}, q->q));
    if (s == "W8A8") {
      if (!in.input_range) fail("{}: W8A8 (static) needs calibration: pass --calib", p);
      const StaticActQuant a = calibrate_static_asym_int8(in.input_range->first, in.input_range->second);
      auto deq = std::make_shared<std::vector<float>>(size_t(n));
      auto qbias = std::make_shared<std::vector<int32_t>>(size_t(n));
      for (int64_t j = 0; j < n; ++j) {
        const float ds = a.input_scale * q->scale[size_t(j)];
        (*deq)[size_t(j)] = ds;
        float wsum = 0;  // exact: |Σ wq| ≤ 128·K < 2^24
        for (int64_t t = 0; t < k; ++t) wsum += float(q->q[size_t(j * k + t)]);
        const float correction = wsum * a.input_offset;
        const float b = bias.empty() ? 0.0f : bias[size_t(j)];
        const float v = b / ds - correction;  // fp32, as torch on fp32 tensors
        (*qbias)[size_t(j)] = int32_t(round_half_even(v));
      }
      r.tensors.push_back(make_out(p + ".quant_bias", DType::I32, {n}, *qbias));
      r.tensors.push_back(make_out(p + ".input_scale", DType::F32, {1}, std::vector<float>{a.input_scale}));
      r.tensors.push_back(make_out(p + ".input_offset", DType::F32, {1}, std::vector<float>{a.input_offset}));
      if (deq_dtype() == DType::F32) {
        r.tensors.push_back(make_out(p + ".deq_scale", DType::F32, {n}, *deq));
      } else {
        std::vector<int64_t> bits64(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) {
          int32_t b32;
          std::memcpy(&b32, &(*deq)[size_t(j)], 4);
          bits64[size_t(j)] = b32;  // np.frombuffer(int32).astype(int64): sign-extended
        }
        r.tensors.push_back(make_out(p + ".deq_scale", DType::I64, {n}, bits64));
      }
      r.gemm = [q, deq, qbias, a, n, k](const float* x, int64_t m, float* y) {
        gemm_w8a8_static_ref({m, n, k}, x, q->q.data(), a.input_scale, a.input_offset, qbias->data(), deq->data(), y);
      };
    } else {
      r.tensors.push_back(make_out(p + ".weight_scale", DType::F32, {n, 1}, q->scale));
      r.tensors.push_back(make_out(p + ".weight_offset", DType::F32, {n, 1}, zeros(size_t(n))));
      r.gemm = [q, n, k, bits](const float* x, int64_t m, float* y) {
        gemm_dynamic_int_ref({m, n, k}, x, q->q.data(), q->scale.data(), bits, bits, y);
      };
    }
  } else if (s == "W4A8_DYNAMIC") {
    auto q = std::make_shared<IntWeightQuant>();
    auto channel = std::make_shared<std::vector<float>>();
    auto second = std::make_shared<std::vector<float>>();
    const int64_t g = l.group_size;
    if (g == 0) {
      *q = quantize_weight_sym(w, n, k, 4, 0, IntScaleRule::QMax);
      *channel = q->scale;
      for (int64_t i = 0; i < n * k; ++i) r.dequant[size_t(i)] = float(q->q[size_t(i)]) * q->scale[size_t(i / k)];
    } else {
      // Two levels, as msmodelslim's per-group W4A8: int8 per channel first, then the int8
      // codes quantized to int4 per group, so w = q · scale_second[n, k/g] · weight_scale[n].
      const IntWeightQuant q8 = quantize_weight_sym(w, n, k, 8, 0, IntScaleRule::QMax);
      std::vector<float> w8(q8.q.begin(), q8.q.end());
      *q = quantize_weight_sym(w8.data(), n, k, 4, g, IntScaleRule::QMax);
      *channel = q8.scale;
      *second = q->scale;
      for (int64_t i = 0; i < n * k; ++i) {
        const int64_t row = i / k, grp = (i % k) / g;
        r.dequant[size_t(i)] = float(q->q[size_t(i)]) * (*second)[size_t(row * q->groups + grp)] * (*channel)[size_t(row)];
      }
    }
    r.tensors.push_back(make_out(p + ".weight", DType::I8, {n / 2, k}, pack_int4_row_pairs(q->q.data(), n, k)));
    r.tensors.push_back(make_out(p + ".weight_scale", DType::F32, {n, 1}, *channel));
    r.tensors.push_back(make_out(p + ".weight_offset", DType::F32, {n, 1}, zeros(size_t(n))));
    r.tensors.push_back(make_out(p + ".scale_bias", DType::F32, scale_bias_shape(p, n), scale_bias(p, r.dequant, n, k)));
    if (g > 0) {
      r.tensors.push_back(make_out(p + ".weight_scale_second", DType::F32, {n, k / g}, *second));
      r.tensors.push_back(make_out(p + ".weight_offset_second", DType::F32, {n, k / g}, zeros(second->size())));
    }
    r.gemm = [q, channel, second, g, n, k](const float* x, int64_t m, float* y) {
      gemm_w4a8_dynamic_ref({m, n, k}, x, q->q.data(), channel->data(), g > 0 ? second->data() : nullptr, g, y);
    };
  } else {
    const bool fp4 = s != "W8A8_MXFP8";
    auto codes = std::make_shared<std::vector<uint8_t>>(size_t(n * k));
    auto scales = std::make_shared<std::vector<uint8_t>>(size_t(n * (k / 32)));
    quantize_mx(w, n, k, fp4 ? MxElem::E2M1 : MxElem::E4M3, fp4 ? MxScaleRule::MsModelSlimFp4 : MxScaleRule::MsModelSlimFp8,
                codes->data(), scales->data());
    for (int64_t i = 0; i < n * k; ++i) {
      const uint8_t c = (*codes)[size_t(i)];
      const float v = fp4 ? fp4_e2m1_to_f32(c) : fp8_e4m3_to_f32(c);
      r.dequant[size_t(i)] = v * e8m0_to_f32((*scales)[size_t((i / k) * (k / 32) + (i % k) / 32)]);
    }
    if (fp4)
      r.tensors.push_back(make_out(p + ".weight", DType::U8, {n, k / 2}, pack_fp4_k(codes->data(), n, k)));
    else
      r.tensors.push_back(make_out(p + ".weight", DType::F8_E4M3, {n, k}, *codes));
    r.tensors.push_back(make_out(p + ".weight_scale", DType::U8, {n, k / 32}, *scales));
    const bool act_fp4 = s == "W4A4_MXFP4";
    r.gemm = [codes, scales, fp4, act_fp4, n, k](const float* x, int64_t m, float* y) {
      if (fp4)
        gemm_mxfp4_ref({m, n, k}, x, codes->data(), scales->data(), act_fp4, y);
      else
        gemm_mxfp8_ref({m, n, k}, x, codes->data(), scales->data(), y);
    };
  }
  if (in.bias) {
    r.tensors.push_back(make_out(p + ".bias", DType::F32, {n}, bias));
    // Dynamic and MX schemes add the float bias after the GEMM; W8A8 static has it in
    // quant_bias already (and its separate .bias must not be added again).
    if (s != "W8A8") {
      LayerGemm inner = r.gemm;
      r.gemm = [inner, bias, n](const float* x, int64_t m, float* y) {
        inner(x, m, y);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[size_t(j)];
      };
    }
  }
  return r;
}

void MsModelSlimWriter::finish(const std::filesystem::path& out, nlohmann::ordered_json& config,
                               const std::vector<TensorDecl>& tensors,
                               const std::function<std::string(const std::string&)>& scheme_of) const {
  nlohmann::ordered_json desc = nlohmann::ordered_json::object();
  std::string summary = "Unknown";
  auto note = [&](const std::string& t) {
    const int pt = priority(t);
    if (pt < 0) return;
    if (priority(summary) < 0 || pt > priority(summary)) summary = t;
  };
  for (const TensorDecl& t : tensors) {
    std::string tag = scheme_of(t.name);
    if (t.name.ends_with(".bias")) tag = "FLOAT";  // upstream tags a quantized layer's bias FLOAT
    desc[t.name] = tag;
  }
  int64_t group_size = 0;
  for (const LayerPlan& l : plan_.layers) {
    note(l.scheme);
    if (l.group_size > 0) group_size = l.group_size;
    if (l.scheme.find("MXFP") != std::string::npos) group_size = 32;  // as the MX save handlers do
  }
  desc["version"] = "1.0.0";
  desc["model_quant_type"] = summary;
  desc["metadata"] = nlohmann::ordered_json::object();
  desc["group_size"] = group_size;
  desc["optional"] = nlohmann::ordered_json::object();
  write_json_file(out / "quant_model_description.json", desc);
  // remove_quantization_config: msmodelslim drops it (top level and text_config).
  config.erase("quantization_config");
  if (config.contains("text_config") && config["text_config"].is_object()) config["text_config"].erase("quantization_config");
  write_json_file(out / "config.json", config);
}

}  // namespace

std::unique_ptr<FormatWriter> make_msmodelslim_writer(const QuantPlan& plan, DType model_dtype) {
  return std::make_unique<MsModelSlimWriter>(plan, model_dtype);
}

}  // namespace lowbit::quantize
