#include "schemes/w4a16_linear.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/dtype.h"
#include "core/error.h"
#include "core/int4_packing.h"
#include "core/runtime_options.h"
#include "core/thread_pool.h"
#include "kernels/online_weight_quant.h"
#include "kernels/quantize_rows.h"
#include "kernels/reference/quantize_ref.h"
#include "schemes/scheme_util.h"

namespace lowbit {

using namespace schemes;

namespace {
// The order that makes g_idx groups contiguous; each group must hold `group` columns (the
// last may be short), as GPTQ's actorder writes them.
std::vector<int32_t> group_permutation(const TensorCheck& c, const TensorView& g_idx, int64_t k, int64_t group) {
  std::vector<int32_t> idx(static_cast<size_t>(k));
  std::memcpy(idx.data(), g_idx.data, size_t(k) * 4);
  std::vector<int32_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return idx[size_t(a)] < idx[size_t(b)]; });
  for (int64_t p = 0; p < k; ++p)
    if (idx[size_t(perm[size_t(p)])] != p / group)
      c.fail_tensor(g_idx, fmt::format("group {} does not hold exactly {} columns (column {} is in group {})",
                                       p / group, group, perm[size_t(p)], idx[size_t(perm[size_t(p)])]));
  return perm;
}
}  // namespace

W4A16Linear::W4A16Linear(const SchemeSpec& spec, const LinearTensors& t, LinearShape shape, const CpuFeatures& cpu)
    : PackedLinear(shape, cpu), spec_(spec) {
  const int64_t n = shape.out_features, k = shape.in_features;
  const TensorCheck c(t, "W4A16 from " + spec.origin);
  codes_ = PackedCodes(4, n, k);
  const bool grouped = spec.weight.granularity == Granularity::Group;
  group_ = grouped ? spec.weight.group_size : codes_.k_pad();
  if (group_ <= 0 || group_ % codes_.k_step() != 0)
    c.fail_layer(fmt::format("group size {} must be a positive multiple of {}", group_, codes_.k_step()));
  const int64_t groups = grouped ? (k + group_ - 1) / group_ : 1;
  scale_ = TiledParams(n, groups);
  const std::string math = w4a16_activation_math(runtime_options(), cpu.bf16());
  int8_act_ = math == "int8";
  bf16_act_ = math == "bf16";
  std::vector<uint8_t> bytes(static_cast<size_t>(k));
  online_ = is_float_dtype(t.weight.dtype);
  if (online_) {
    c.check(t.weight, kFloatDTypes, {{n, k}});
    lut_ = code_table(CodeTable::Int4Signed);
    std::vector<float> row(static_cast<size_t>(k)), row_scales(static_cast<size_t>(groups));
    for (int64_t r = 0; r < n; ++r) {
      float_row(t.weight, r, k, row.data());
      if (!quantize_row_int_sym(row.data(), k, 4, grouped ? group_ : 0, bytes.data(), row_scales.data()))
        c.fail_non_finite_row(t.weight, r);
      codes_.set_row(r, bytes.data());
      for (int64_t j = 0; j < groups; ++j) scale_.set(r, j, row_scales[size_t(j)]);
    }
    bias_ = bias_vector(c, n);
    return;
  }
  const bool awq = spec.encoding == WeightEncoding::Int4AwqGemm;
  if (!awq && spec.encoding != WeightEncoding::Int4PackedInt32K)
    c.fail_layer("weights must be AWQ GEMM or pack-quantized int4");
  lut_ = code_table(CodeTable::Int4Signed);  // AWQ's unsigned q is stored as q − 8
  const CodeRows rows(c, t.weight, spec.encoding, n, k);
  if (spec.has_g_idx) {
    if (!grouped) c.fail_layer("g_idx needs group quantization");
    perm_ = group_permutation(c, c.role("weight_g_idx", {DType::I32}, {{k}}), k, group_);
  }
  std::vector<uint8_t> permuted(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    rows.row(r, bytes.data());
    if (awq)
      for (auto& b : bytes) b ^= 8;  // 0..15 → the int4 nibble of q − 8
    if (!perm_.empty()) {
      for (int64_t p = 0; p < k; ++p) permuted[size_t(p)] = bytes[size_t(perm_[size_t(p)])];
      codes_.set_row(r, permuted.data());
    } else {
      codes_.set_row(r, bytes.data());
    }
  }
  // Scales: [N, G] (pack-quantized) or transposed [G, N] (AWQ).
  const TensorView& sv = awq ? c.role("weight_scale", kFloatDTypes, {{groups, n}})
                             : c.role("weight_scale", kFloatDTypes, {{n, groups}});
  const std::vector<float> s = tensor_to_f32(sv);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < groups; ++j) scale_.set(r, j, awq ? s[size_t(j * n + r)] : s[size_t(r * groups + j)]);
  const bool asym = awq || !spec.weight.symmetric;
  if (asym) {
    const TensorView& zv = c.role("weight_zero", {DType::I32});
    std::vector<float> z(size_t(n * groups));
    try {
      if (awq) {
        std::vector<uint8_t> u(z.size());
        unpack_awq_zeros(zv, n, groups, u.data());
        for (size_t i = 0; i < u.size(); ++i) z[i] = float(int(u[i]) - 8);  // as the codes: z − 8
      } else {
        std::vector<int8_t> sz(z.size());
        unpack_int4_zero_points_n(zv, n, groups, sz.data());
        std::copy(sz.begin(), sz.end(), z.begin());
      }
    } catch (const Error& e) {
      c.fail_tensor(zv, e.what());
    }
    zero_ = TiledParams(z.data(), n, groups);
  }
  bias_ = bias_vector(c, n);
}

void W4A16Linear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const int64_t k = shape_.in_features, kp = codes_.k_pad();
  // Activations in packed K order: as given, or gathered in g_idx order.
  const float* xk = x;
  int64_t ldxk = ldx;
  if (!perm_.empty()) {
    float* xp = scratch_f32(1, size_t(m * k));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p) xp[i * k + p] = x[i * ldx + perm_[size_t(p)]];
    xk = xp;
    ldxk = k;
  }
  if (int8_act_) {
    // Per-token amax does not depend on the order of K, so quantizing the gathered row gives
    // the gathered codes of the row.
    int8_t* xq = scratch_i8(0, size_t(m * kp));
    float* xs = scratch_f32(0, size_t(m));
    int32_t* sums = scratch_i32(0, size_t(m * act_groups(kp, group_)));
    act_quant_kernels().per_token_sym({xk, ldxk, m, k, xq, kp, group_, sums}, 8, xs);
    IntGemmArgs a;
    a.xq = xq;
    a.ldxq = kp;
    a.group = group_;
    a.group_scale = &scale_;
    a.group_zero = zero_.empty() ? nullptr : &zero_;
    a.row_group_sum = sums;
    a.row_scale = xs;
    run(a, m, y, ldy, pool);
    return;
  }
  float* xp = scratch_f32(0, size_t(m * kp));
  copy_padded(xk, ldxk, m, k, kp, xp);
  // BF16 activations: rounded here, so every kernel (with or without vdpbf16ps) multiplies
  // the same values; a kernel with AVX512-BF16 then takes them as BF16 pairs.
  if (bf16_act_)
    for (int64_t i = 0; i < m * kp; ++i) xp[i] = bf16_to_f32(f32_to_bf16(xp[i]));
  CodeGemmArgs a;
  a.x = xp;
  a.x_bf16_ok = bf16_act_;
  a.ldx = kp;
  a.lut = lut_;
  a.group = group_;
  a.scale = &scale_;
  a.zero = zero_.empty() ? nullptr : &zero_;
  run(a, m, y, ldy, pool);
}

size_t W4A16Linear::weight_bytes() const {
  return codes_.bytes() + scale_.bytes() + zero_.bytes() + bias_.bytes() + perm_.size() * 4;
}

std::string W4A16Linear::describe() const {
  return fmt::format("W4A16 group {}{}{}, {} activations via {}", group_,
                     zero_.empty() ? " symmetric" : " with zero points", online_ ? ", quantized at load" : "",
                     int8_act_ ? "int8" : bf16_act_ ? "BF16" : "float", kernel_name());
}

}  // namespace lowbit
