#include "schemes/mx_linear.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/quant_types.h"
#include "core/thread_pool.h"
#include "kernels/reference/quantize_ref.h"
#include "schemes/scheme_util.h"

namespace lowbit {

using namespace schemes;

MxLinear::MxLinear(const SchemeSpec& spec, const LinearTensors& t, LinearShape shape, const CpuFeatures& cpu)
    : PackedLinear(shape, cpu) {
  const int64_t n = shape.out_features, k = shape.in_features, blocks = k / kMxBlock;
  const TensorCheck c(t, std::string(scheme_kind_name(spec.kind)) + " from " + spec.origin);
  weight_fp4_ = spec.kind == SchemeKind::Mxfp4;
  act_fp4_ = spec.activation && spec.activation->kind == NumKind::FloatE2M1;
  if (!spec.activation) c.fail_layer("MX schemes need activation arguments (MXFP8 or MXFP4)");
  if (k % kMxBlock != 0)
    c.fail_tensor(t.weight, fmt::format("K = {} is not a multiple of the MX block size 32", k));
  codes_ = PackedCodes(weight_fp4_ ? 4 : 8, n, k);
  scale_ = TiledParams(n, blocks);
  online_ = is_float_dtype(t.weight.dtype);
  std::vector<uint8_t> bytes(static_cast<size_t>(k)), scales(static_cast<size_t>(blocks));
  if (online_) {
    c.check(t.weight, kFloatDTypes, {{n, k}});
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      float_row(t.weight, r, k, row.data());
      quantize_mx(row.data(), 1, k, weight_fp4_ ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp, bytes.data(),
                  scales.data());
      codes_.set_row(r, bytes.data());
      for (int64_t j = 0; j < blocks; ++j) scale_.set(r, j, e8m0_to_f32(scales[size_t(j)]));
    }
  } else {
    if (!weight_fp4_ && t.weight.dtype != DType::F8_E4M3)
      c.fail_tensor(t.weight, fmt::format("MXFP8 weights must be F8_E4M3, got {}", dtype_name(t.weight.dtype)));
    const CodeRows rows(c, t.weight, weight_fp4_ ? WeightEncoding::Fp4PackedK : WeightEncoding::Native, n, k);
    const TensorView& sv = c.role("weight_scale", {DType::U8}, {{n, blocks}});
    try {
      check_e8m0_scales(static_cast<const uint8_t*>(sv.data), n * blocks, sv.name);
    } catch (const Error& e) {
      c.fail_tensor(sv, e.what());
    }
    const uint8_t* s = static_cast<const uint8_t*>(sv.data);
    for (int64_t r = 0; r < n; ++r) {
      rows.row(r, bytes.data());
      if (!weight_fp4_)
        for (int64_t i = 0; i < k; ++i)
          if ((bytes[size_t(i)] & 0x7F) == kFp8E4M3Nan)
            c.fail_tensor(t.weight, fmt::format("element [{}, {}] is an E4M3 NaN", r, i));
      codes_.set_row(r, bytes.data());
      for (int64_t j = 0; j < blocks; ++j) scale_.set(r, j, e8m0_to_f32(s[r * blocks + j]));
    }
  }
  bias_ = bias_vector(c, n);
}

void MxLinear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const int64_t k = shape_.in_features, kp = codes_.k_pad(), blocks = k / kMxBlock;
  float* xh = scratch_f32(0, size_t(m * kp));
  uint8_t* codes = scratch_u8(0, size_t(k));
  uint8_t* scales = scratch_u8(1, size_t(blocks));
  const float* act_table = code_table(act_fp4_ ? CodeTable::Fp4E2M1 : CodeTable::Fp8E4M3);
  for (int64_t i = 0; i < m; ++i) {
    quantize_mx(x + i * ldx, 1, k, act_fp4_ ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp, codes, scales);
    float* row = xh + i * kp;
    for (int64_t j = 0; j < blocks; ++j) {
      const float s = e8m0_to_f32(scales[j]);
      for (int64_t e = j * kMxBlock; e < (j + 1) * kMxBlock; ++e) row[e] = act_table[codes[e]] * s;
    }
    std::fill(row + k, row + kp, 0.0f);
  }
  CodeGemmArgs a;
  a.x = xh;
  a.ldx = kp;
  a.lut = code_table(weight_fp4_ ? CodeTable::Fp4E2M1 : CodeTable::Fp8E4M3);
  a.group = kMxBlock;
  a.scale = &scale_;
  run(a, m, y, ldy, pool);
}

std::string MxLinear::describe() const {
  return fmt::format("MX w{} a{}{} via {}", weight_fp4_ ? "FP4" : "FP8", act_fp4_ ? "FP4" : "FP8",
                     online_ ? ", quantized at load" : "", kernel_name());
}

}  // namespace lowbit
