#include "schemes/mx_linear.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/quant_types.h"
#include "core/thread_pool.h"
#include "kernels/fp_act_quant.h"
#include "kernels/online_weight_quant.h"
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
  scale_ = AlignedArray<uint8_t>(size_t(codes_.n_pad() * blocks));
  const auto set_scale = [&](int64_t r, int64_t j, uint8_t u) {
    scale_[size_t(((r / kTileN) * blocks + j) * kTileN + r % kTileN)] = u;
  };
  online_ = is_float_dtype(t.weight.dtype);
  std::vector<uint8_t> bytes(static_cast<size_t>(k)), scales(static_cast<size_t>(blocks));
  if (online_) {
    c.check(t.weight, kFloatDTypes, {{n, k}});
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      float_row(t.weight, r, k, row.data());
      if (!quantize_row_mx_ocp(row.data(), k, weight_fp4_, bytes.data(), scales.data()))
        c.fail_non_finite_row(t.weight, r);
      codes_.set_row(r, bytes.data());
      for (int64_t j = 0; j < blocks; ++j) set_scale(r, j, scales[size_t(j)]);
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
      for (int64_t j = 0; j < blocks; ++j) set_scale(r, j, s[r * blocks + j]);
    }
  }
  bias_ = bias_vector(c, n);
}

void MxLinear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const int64_t k = shape_.in_features, kp = codes_.k_pad(), blocks = k / kMxBlock;  // kp == k: K % 32 == 0
  uint8_t* codes = scratch_u8(0, size_t(m * kp));
  float* scales = scratch_f32(0, size_t(m * blocks));
  for (int64_t i = 0; i < m; ++i) quantize_mx_row(x + i * ldx, k, act_fp4_, codes + i * kp, scales + i * blocks);
  CodeGemmArgs a;
  a.xq = codes;
  a.x_lut = code_table(act_fp4_ ? CodeTable::Fp4E2M1 : CodeTable::Fp8E4M3);
  a.x_bits = act_fp4_ ? 4 : 8;
  a.ldx = kp;
  a.x_scale = scales;
  a.ldxs = blocks;
  a.lut = code_table(weight_fp4_ ? CodeTable::Fp4E2M1 : CodeTable::Fp8E4M3);
  a.group = kMxBlock;
  a.scale_e8m0 = scale_.data();
  run(a, m, y, ldy, pool);
}

std::string MxLinear::describe() const {
  return fmt::format("MX w{} a{}{} via {}", weight_fp4_ ? "FP4" : "FP8", act_fp4_ ? "FP4" : "FP8",
                     online_ ? ", quantized at load" : "", kernel_name());
}

}  // namespace lowbit
