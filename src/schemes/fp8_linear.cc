#include "schemes/fp8_linear.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/quant_types.h"
#include "core/thread_pool.h"
#include "core/runtime_options.h"
#include "kernels/fp_act_quant.h"
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
  // Weight-only FP8 multiplies fp32 activations exactly unless the user chose BF16 activations
  // ("auto" keeps fp32 here: the decode GEMV is memory-bound either way).
  bf16_activations_ = act_ == Act::None && runtime_options().float_activations == "bf16";
  bias_ = bias_vector(c, n);
}

void Fp8Linear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const int64_t k = shape_.in_features, kp = codes_.k_pad();
  CodeGemmArgs a;
  a.lut = code_table(CodeTable::Fp8E4M3);
  a.group = group_;
  a.scale = &scale_;
  a.ldx = kp;
  if (act_ == Act::None) {
    float* xp = scratch_f32(0, size_t(m * kp));
    copy_padded(x, ldx, m, k, kp, xp);
    a.x = xp;
    a.x_bf16_ok = bf16_activations_;
  } else {
    // E4M3 codes and their scales go to the kernel as they are: code × code products are
    // exact, and the activation scale is applied per group like the weight's.
    const int64_t g = act_ == Act::Group ? group_ : kp, groups = (kp + g - 1) / g;
    uint8_t* q = scratch_u8(0, size_t(m * kp));
    float* s = act_ == Act::Tensor ? nullptr : scratch_f32(0, size_t(m * groups));
    for (int64_t i = 0; i < m; ++i) {
      uint8_t* qi = q + i * kp;
      if (act_ == Act::Tensor)  // compressed-tensors: x / s, clamped to ±448, cast to E4M3 (RNE)
        quantize_fp8_row_static(x + i * ldx, k, input_scale_, qi);
      else
        quantize_fp8_row_groups(x + i * ldx, k, act_ == Act::Group ? group_ : k, qi, s + i * groups);
      std::fill(qi + k, qi + kp, uint8_t(0));
    }
    a.xq = q;
    a.x_lut = a.lut;
    a.x_scale = act_ == Act::Tensor ? &input_scale_ : s;
    a.ldxs = act_ == Act::Tensor ? 0 : groups;
  }
  run(a, m, y, ldy, pool);
}

std::string Fp8Linear::describe() const {
  static const char* kAct[] = {"weight-only", "per-token dynamic", "per-tensor static", "per-token-group dynamic"};
  return fmt::format("FP8 E4M3 group {} activations {} via {}", group_, kAct[int(act_)], kernel_name());
}

}  // namespace lowbit
