#include "schemes/int_dynamic_linear.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/online_weight_quant.h"
#include "kernels/quantize_rows.h"
#include "kernels/reference/quantize_ref.h"
#include "schemes/scheme_util.h"

namespace lowbit {

using namespace schemes;

IntDynamicLinear::IntDynamicLinear(const SchemeSpec& spec, const LinearTensors& t, LinearShape shape,
                                   const CpuFeatures& cpu)
    : PackedLinear(shape, cpu), spec_(spec) {
  const int64_t n = shape.out_features, k = shape.in_features;
  const TensorCheck c(t, std::string(scheme_kind_name(spec.kind)) + " from " + spec.origin);
  if (!spec.activation || (spec.activation->bits != 8 && spec.activation->bits != 4))
    c.fail_layer("needs 8- or 4-bit per-token activation arguments");
  act_bits_ = spec.activation->bits;
  const int w_bits = spec.weight.bits;
  if (w_bits != 8 && w_bits != 4) c.fail_layer(fmt::format("weight bits {} (expected 8 or 4)", w_bits));
  codes_ = PackedCodes(w_bits, n, k);
  online_ = is_float_dtype(t.weight.dtype);
  if (online_) {
    // Online: per-channel symmetric, s = max(amax/qmax, 2^-23), round to nearest even.
    c.check(t.weight, kFloatDTypes, {{n, k}});
    col_scale_ = padded_row_vector(n);
    std::vector<float> row(static_cast<size_t>(k));
    std::vector<uint8_t> bytes(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      float_row(t.weight, r, k, row.data());
      if (!quantize_row_int_sym(row.data(), k, w_bits, 0, bytes.data(), &col_scale_[size_t(r)]))
        c.fail_non_finite_row(t.weight, r);
      codes_.set_row(r, bytes.data());
    }
  } else {
    const CodeRows rows(c, t.weight, spec.encoding, n, k);
    if (spec.encoding == WeightEncoding::Native && (t.weight.dtype != DType::I8 || w_bits != 8))
      c.fail_tensor(t.weight, fmt::format("{}-bit weights stored one per element must be I8", w_bits));
    std::vector<uint8_t> bytes(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      rows.row(r, bytes.data());
      codes_.set_row(r, bytes.data());
    }
    col_scale_ = per_channel_f32(c.role("weight_scale", kFloatDTypes, {{n, 1}, {n}, {1}, {}}), n);
    if (const TensorView* z = c.optional_role("weight_zero", {}, {{n, 1}, {n}, {1}, {}})) require_all_zero(c, *z);
    if (spec.weight.granularity == Granularity::Group) {
      group_ = spec.weight.group_size;
      if (group_ <= 0 || k % group_ != 0 || group_ % codes_.k_step() != 0)
        c.fail_layer(fmt::format("group size {} must divide K = {} and be a multiple of {}", group_, k,
                                 codes_.k_step()));
      const int64_t g = k / group_;
      const std::vector<float> second = tensor_to_f32(c.role("weight_scale_second", kFloatDTypes, {{n, g}}));
      if (const TensorView* z = c.optional_role("weight_zero_second", {}, {{n, g}})) require_all_zero(c, *z);
      group_scale_ = TiledParams(second.data(), n, g);
    }
  }
  bias_ = bias_vector(c, n);
}

void IntDynamicLinear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const int64_t k = shape_.in_features, kp = codes_.k_pad();
  int8_t* xq = scratch_i8(0, size_t(m * kp));
  float* xs = scratch_f32(0, size_t(m));
  int32_t* sums = scratch_i32(0, size_t(m * act_groups(kp, group_)));
  act_quant_kernels().per_token_sym({x, ldx, m, k, xq, kp, group_, sums}, act_bits_, xs);
  IntGemmArgs a;
  a.xq = xq;
  a.ldxq = kp;
  a.group = group_;
  a.group_scale = group_ ? &group_scale_ : nullptr;
  a.row_group_sum = sums;
  a.row_scale = xs;
  a.col_scale = col_scale_.data();
  run(a, m, y, ldy, pool);
}

size_t IntDynamicLinear::weight_bytes() const {
  return codes_.bytes() + col_scale_.bytes() + group_scale_.bytes() + bias_.bytes();
}

std::string IntDynamicLinear::describe() const {
  return fmt::format("{} (w{}a{}{}{}) via {}", scheme_kind_name(spec_.kind), codes_.bits(), act_bits_,
                     group_ ? fmt::format(" group {}", group_) : "", online_ ? ", quantized at load" : "",
                     kernel_name());
}

}  // namespace lowbit
