#include "schemes/w8a8_static_linear.h"

#include <fmt/format.h>

#include <cstring>

#include "core/error.h"
#include "core/quant_types.h"
#include "core/thread_pool.h"
#include "kernels/quantize_rows.h"
#include "schemes/scheme_util.h"

namespace lowbit {

using namespace schemes;

namespace {
// deq_scale is fp32, or (older fp16 msmodelslim files) I64 whose low 32 bits are the fp32 bits.
std::vector<float> decode_deq_scale(const TensorView& t) {
  if (t.dtype == DType::F32) return tensor_to_f32(t);
  std::vector<float> out(size_t(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t v;
    std::memcpy(&v, static_cast<const uint8_t*>(t.data) + 8 * i, 8);
    const uint32_t bits = uint32_t(v & 0xFFFFFFFFu);
    std::memcpy(&out[i], &bits, 4);
  }
  return out;
}

// A zero point stored as an integer or float tensor of one value; it must be an integer.
float integer_zero_point(const TensorCheck& c, const TensorView& t) {
  float z;
  if (t.dtype == DType::I8) {
    z = float(*static_cast<const int8_t*>(t.data));
  } else if (t.dtype == DType::I32) {
    int32_t v;
    std::memcpy(&v, t.data, 4);
    z = float(v);
  } else {
    z = scalar_f32(t);
  }
  if (z != std::nearbyint(z) || z < -128 || z > 127)
    c.fail_tensor(t, fmt::format("zero point {} is not an int8 integer", z));
  return z;
}
}  // namespace

W8A8StaticLinear::W8A8StaticLinear(const SchemeSpec& spec, const LinearTensors& t, LinearShape shape,
                                   const CpuFeatures& cpu)
    : PackedLinear(shape, cpu), folded_(spec.kind == SchemeKind::W8A8Static) {
  const int64_t n = shape.out_features, k = shape.in_features;
  const TensorCheck c(t, std::string(scheme_kind_name(spec.kind)) + " from " + spec.origin);
  c.check(t.weight, {DType::I8}, {{n, k}});
  if (k > (int64_t(1) << 16)) c.fail_layer(fmt::format("K = {} exceeds the exact int32 range (2^16)", k));
  codes_ = PackedCodes(8, n, k);
  col_int_bias_ = AlignedArray<int32_t>(size_t(round_up(n, kTileN)));
  const int8_t* w = static_cast<const int8_t*>(t.weight.data);
  for (int64_t r = 0; r < n; ++r) codes_.set_row(r, reinterpret_cast<const uint8_t*>(w + r * k));
  const TensorView& in_scale = c.role("input_scale", kFloatDTypes, {{1}, {}, {1, 1}});
  input_scale_ = scalar_f32(in_scale);
  if (!(input_scale_ > 0) || !std::isfinite(input_scale_))
    c.fail_tensor(in_scale, fmt::format("input scale {} must be positive and finite", input_scale_));
  if (folded_) {
    input_zero_ = scalar_f32(c.role("input_zero", kFloatDTypes, {{1}, {}, {1, 1}}));
    const TensorView& qb = c.role("quant_bias", {DType::I32}, {{n}});
    std::memcpy(col_int_bias_.data(), qb.data, size_t(n) * 4);
    for (int64_t r = 0; r < n; ++r)
      if (std::abs(int64_t(col_int_bias_[size_t(r)])) >= (int64_t(1) << 30))
        c.fail_tensor(qb, fmt::format("element {} = {} is outside the exact int32 range", r, col_int_bias_[size_t(r)]));
    const std::vector<float> deq = decode_deq_scale(c.role("deq_scale", {DType::F32, DType::I64}, {{n}}));
    col_scale_ = padded_row_vector(n);
    std::copy(deq.begin(), deq.end(), col_scale_.data());
    // A separate float `.bias` is already inside quant_bias: never added again.
  } else {
    if (const TensorView* z = c.optional_role("input_zero", {DType::I8, DType::I32, DType::BF16, DType::F16, DType::F32},
                                              {{1}, {}, {1, 1}}))
      input_zero_ = integer_zero_point(c, *z);
    col_scale_ = per_channel_f32(c.role("weight_scale", kFloatDTypes, {{n, 1}, {n}, {1}, {}}), n);
    for (int64_t r = 0; r < n; ++r) {
      int64_t row_sum = 0;
      for (int64_t i = 0; i < k; ++i) row_sum += w[r * k + i];
      col_int_bias_[size_t(r)] = int32_t(-int64_t(input_zero_) * row_sum);
      col_scale_[size_t(r)] *= input_scale_;
    }
    bias_ = bias_vector(c, n);
  }
}

void W8A8StaticLinear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const int64_t k = shape_.in_features, kp = codes_.k_pad();
  int8_t* xq = scratch_i8(0, size_t(m * kp));
  int32_t* sums = scratch_i32(0, size_t(m));
  // msmodelslim: rne(x·(1/s) + offset) (npu_quantize); compressed-tensors _quantize: rne(x / s + zp).
  act_quant_kernels().static_int8({x, ldx, m, k, xq, kp, 0, sums}, input_scale_, input_zero_,
                                  folded_ ? StaticActRule::MulOffset : StaticActRule::DivZero);
  IntGemmArgs a;
  a.xq = xq;
  a.ldxq = kp;
  a.row_group_sum = sums;
  a.col_int_bias = col_int_bias_.data();
  a.col_scale = col_scale_.data();
  run(a, m, y, ldy, pool);
}

std::string W8A8StaticLinear::describe() const {
  return fmt::format("W8A8 static ({}) via {}", folded_ ? "msmodelslim folded scales" : "compressed-tensors",
                     kernel_name());
}

}  // namespace lowbit
