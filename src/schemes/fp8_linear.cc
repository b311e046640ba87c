#include "schemes/fp8_linear.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/quant_types.h"
#include "core/thread_pool.h"
#include "kernels/reference/quantize_ref.h"
#include "schemes/scheme_util.h"

namespace lowbit {

using namespace schemes;

Fp8Linear::Fp8Linear(const SchemeSpec& spec, const LinearTensors& t, LinearShape shape, const CpuFeatures& cpu)
    : PackedLinear(shape, cpu) {
  const int64_t n = shape.out_features, k = shape.in_features;
  const TensorCheck c(t, std::string(scheme_kind_name(spec.kind)) + " from " + spec.origin);
  c.check(t.weight, {DType::F8_E4M3}, {{n, k}});
  codes_ = PackedCodes(8, n, k);
  const CodeRows rows(c, t.weight, WeightEncoding::Native, n, k);
  std::vector<uint8_t> bytes(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    rows.row(r, bytes.data());
    for (int64_t i = 0; i < k; ++i)
      if ((bytes[size_t(i)] & 0x7F) == kFp8E4M3Nan)
        c.fail_tensor(t.weight, fmt::format("element [{}, {}] is an E4M3 NaN", r, i));
    codes_.set_row(r, bytes.data());
  }
  if (spec.kind == SchemeKind::Fp8Block) {
    const int64_t br = spec.weight.block_rows, bc = spec.weight.group_size;
    if (br <= 0 || bc <= 0 || bc % codes_.k_step() != 0)
      c.fail_layer(fmt::format("block [{}, {}] must be positive with columns a multiple of {}", br, bc,
                               codes_.k_step()));
    const int64_t nb = (n + br - 1) / br, kb = (k + bc - 1) / bc;
    const std::vector<float> s = tensor_to_f32(c.role("weight_scale", kFloatDTypes, {{nb, kb}}));
    group_ = bc;
    scale_ = TiledParams(n, kb);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < kb; ++j) scale_.set(r, j, s[size_t((r / br) * kb + j)]);
    if (spec.activation) act_ = Act::Group;
  } else {
    const AlignedArray<float> s = per_channel_f32(c.role("weight_scale", kFloatDTypes, {{n, 1}, {n}, {1}, {}}), n);
    group_ = codes_.k_pad();
    scale_ = TiledParams(n, 1);
    for (int64_t r = 0; r < n; ++r) scale_.set(r, 0, s[size_t(r)]);
    if (spec.activation) {
      if (spec.activation->dynamic) {
        act_ = Act::Token;
      } else {
        act_ = Act::Tensor;
        input_scale_ = scalar_f32(c.role("input_scale", kFloatDTypes, {{1}, {}, {1, 1}}));
        if (!(input_scale_ > 0) || !std::isfinite(input_scale_))
          c.fail_layer(fmt::format("input scale {} must be positive and finite", input_scale_));
      }
    }
  }
  bias_ = bias_vector(c, n);
}

void Fp8Linear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const int64_t k = shape_.in_features, kp = codes_.k_pad();
  float* xh = scratch_f32(0, size_t(m * kp));
  const float* fp8 = code_table(CodeTable::Fp8E4M3);
  if (act_ == Act::None) {
    copy_padded(x, ldx, m, k, kp, xh);
  } else {
    const int64_t g = act_ == Act::Group ? group_ : k, groups = (k + g - 1) / g;
    uint8_t* q = scratch_u8(0, size_t(k));
    float* s = scratch_f32(1, size_t(groups));
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * ldx;
      float* row = xh + i * kp;
      if (act_ == Act::Tensor) {
        // compressed-tensors: x / s, clamped to ±448, cast to E4M3 (round to nearest even).
        for (int64_t e = 0; e < k; ++e)
          row[e] = fp8[f32_to_fp8_e4m3_rne(clampf(xi[e] / input_scale_, -kFp8E4M3Max, kFp8E4M3Max))] * input_scale_;
      } else {
        quantize_act_fp8_groups(xi, 1, k, g, q, s);
        for (int64_t e = 0; e < k; ++e) row[e] = fp8[q[e]] * s[e / g];
      }
      std::fill(row + k, row + kp, 0.0f);
    }
  }
  CodeGemmArgs a;
  a.x = xh;
  a.ldx = kp;
  a.lut = fp8;
  a.group = group_;
  a.scale = &scale_;
  run(a, m, y, ldy, pool);
}

std::string Fp8Linear::describe() const {
  static const char* kAct[] = {"weight-only", "per-token dynamic", "per-tensor static", "per-token-group dynamic"};
  return fmt::format("FP8 E4M3 group {} activations {} via {}", group_, kAct[int(act_)], kernel_name());
}

}  // namespace lowbit
