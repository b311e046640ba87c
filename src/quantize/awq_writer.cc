// AutoAWQ GEMM output: every quantized layer becomes qweight int32 [K, N/8], qzeros int32
// [K/g, N/8] and scales fp16 [K/g, N] (AutoAWQ awq/modules/linear/gemm.py WQLinear_GEMM
// from_linear, nibble order in core/int4_packing.h); config.json gets AutoAWQ's
// quantization_config {quant_method "awq", zero_point true, group_size, bits 4, version
// "gemm", modules_to_not_convert}. Weights are quantized by quantize_weight_awq, which is
// plain round-to-nearest: NO activation-aware scale search (AWQ's search_best_scale /
// clipping) is done, so this is AWQ's storage format with RTN numbers. AutoAWQ runs in fp16,
// so the weight is first rounded to fp16 and quantized with fp16 intermediates.
#include <fmt/format.h>

#include "core/error.h"
#include "core/int4_packing.h"
#include "kernels/reference/quant_gemm_ref.h"
#include "kernels/reference/quantize_ref.h"
#include "quantize/format_writer.h"

namespace lowbit::quantize {

namespace {

using ojson = nlohmann::ordered_json;

class AwqWriter final : public FormatWriter {
 public:
  explicit AwqWriter(const QuantPlan& plan) : plan_(plan) {}
  std::string weights_file() const override { return "model.safetensors"; }

  std::vector<TensorDecl> declare(const LayerPlan& l, DType weight_dtype, bool has_bias) const override {
    const std::string& p = l.layer.prefix;
    const int64_t n = l.layer.out_features, k = l.layer.in_features, g = l.group_size;
    if (n % 8 != 0) fail("{}: AWQ packs 8 output columns per int32; out_features {} is not a multiple of 8", p, n);
    std::vector<TensorDecl> d = {{p + ".qweight", DType::I32, {k, n / 8}},
                                 {p + ".qzeros", DType::I32, {k / g, n / 8}},
                                 {p + ".scales", DType::F16, {k / g, n}}};
    if (has_bias) d.push_back({p + ".bias", weight_dtype, {n}});
    return d;
  }

  QuantizedLinear quantize(const LinearInput& in) const override {
    const LayerPlan& l = *in.plan;
    const std::string& p = l.layer.prefix;
    const int64_t n = l.layer.out_features, k = l.layer.in_features, g = l.group_size;
    std::vector<float> w16(in.w.size());
    for (size_t i = 0; i < w16.size(); ++i) w16[i] = round_to_compute(in.w[i], ComputeDType::F16);
    auto q = std::make_shared<IntWeightQuant>(quantize_weight_awq(w16.data(), n, k, g, ComputeDType::F16));
    const int64_t groups = q->groups;
    QuantizedLinear r;
    r.dequant.resize(size_t(n * k));
    std::vector<uint8_t> codes(size_t(n * k)), zeros(size_t(n * groups));
    for (int64_t i = 0; i < n * k; ++i) {
      const size_t sg = size_t((i / k) * groups + (i % k) / g);
      codes[size_t(i)] = uint8_t(q->q[size_t(i)]);
      r.dequant[size_t(i)] = (float(q->q[size_t(i)]) - float(q->zero[sg])) * q->scale[sg];
    }
    for (size_t i = 0; i < zeros.size(); ++i) zeros[i] = uint8_t(q->zero[i]);
    std::vector<float> scales_t(size_t(groups * n));  // [K/g, N]: transposed against HF
    for (int64_t row = 0; row < n; ++row)
      for (int64_t j = 0; j < groups; ++j) scales_t[size_t(j * n + row)] = q->scale[size_t(row * groups + j)];
    r.tensors.push_back(make_out(p + ".qweight", DType::I32, {k, n / 8}, pack_int4_awq_gemm(codes.data(), n, k)));
    r.tensors.push_back(make_out(p + ".qzeros", DType::I32, {groups, n / 8}, pack_awq_zeros(zeros.data(), n, groups)));
    r.tensors.push_back(make_float_out(p + ".scales", DType::F16, {groups, n}, scales_t));
    std::vector<float> bias;
    if (in.bias) {
      OutTensor b{{p + ".bias", in.bias->dtype, in.bias->shape}, {}};
      const auto* src = static_cast<const uint8_t*>(in.bias->data);
      b.bytes.assign(src, src + in.bias->nbytes());
      r.tensors.push_back(std::move(b));
      bias.resize(size_t(n));
      convert_to_f32(in.bias->dtype, in.bias->data, bias.data(), bias.size());
    }
    r.gemm = [q, n, k, g, bias](const float* x, int64_t m, float* y) {
      gemm_w4a16_ref({m, n, k}, x, q->q.data(), q->zero.data(), q->scale.data(), g, y);
      if (!bias.empty())
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[size_t(j)];
    };
    r.gemm_is_dequant = bias.empty();
    return r;
  }

  void finish(const std::filesystem::path& out, ojson& config, const std::vector<TensorDecl>&,
              const std::function<std::string(const std::string&)>&) const override {
    int64_t g = 0;
    ojson skip = ojson::array();
    for (const LayerPlan& l : plan_.layers) {
      if (l.scheme == "FLOAT") {
        if (l.layer.prefix != "lm_head") skip.push_back(l.layer.prefix);
      } else {
        g = l.group_size;
      }
    }
    if (g == 0) fail("awq: every layer is FLOAT; nothing to quantize");
    ojson qc = ojson::object();  // AwqConfig.to_transformers_dict()
    qc["quant_method"] = "awq";
    qc["zero_point"] = true;
    qc["group_size"] = g;
    qc["bits"] = 4;
    qc["version"] = "gemm";
    qc["modules_to_not_convert"] = skip.empty() ? ojson(nullptr) : skip;
    config["quantization_config"] = qc;
    write_json_file(out / "config.json", config);
  }

 private:
  const QuantPlan& plan_;
};

}  // namespace

std::unique_ptr<FormatWriter> make_awq_writer(const QuantPlan& plan, DType) { return std::make_unique<AwqWriter>(plan); }

}  // namespace lowbit::quantize
