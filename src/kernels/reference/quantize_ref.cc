#include "kernels/reference/quantize_ref.h"

#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant_types.h"

namespace lowbit {

float round_to_compute(float x, ComputeDType t) {
  switch (t) {
    case ComputeDType::F32:
      return x;
    case ComputeDType::BF16:
      return bf16_to_f32(f32_to_bf16(x));
    case ComputeDType::F16:
      return f16_to_f32(f32_to_f16(x));
  }
  return x;
}

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// torch.finfo(dtype).eps: what compressed-tensors puts in place of a zero scale.
float compute_eps(ComputeDType t) {
  switch (t) {
    case ComputeDType::F32:
      return std::numeric_limits<float>::epsilon();  // 2^-23
    case ComputeDType::BF16:
      return 0.0078125f;  // 2^-7
    case ComputeDType::F16:
      return 0.0009765625f;  // 2^-10
  }
  return 0;
}

void check_bits(int bits) {
  if (bits != 4 && bits != 8) fail("integer quantization supports 4 or 8 bits, got {}", bits);
}

// Shared loop shape for per-row, per-group weight quantizers: `fn(row, group, begin, end)`.
template <class Fn>
IntWeightQuant for_each_group(int64_t n, int64_t k, int64_t group_size, Fn fn) {
  if (n <= 0 || k <= 0) fail("quantize: bad weight shape [{}, {}]", n, k);
  if (group_size < 0) fail("quantize: negative group size {}", group_size);
  IntWeightQuant r;
  r.n = n;
  r.k = k;
  r.group_size = group_size == 0 ? k : group_size;
  r.groups = ceil_div(k, r.group_size);
  r.q.resize(size_t(n * k));
  r.scale.resize(size_t(n * r.groups));
  for (int64_t row = 0; row < n; ++row)
    for (int64_t g = 0; g < r.groups; ++g)
      fn(r, row, g, g * r.group_size, std::min(k, (g + 1) * r.group_size));
  return r;
}

void reject_ragged_groups(int64_t k, int64_t group_size, const char* who) {
  if (group_size > 0 && k >= group_size && k % group_size != 0)
    fail("{}: in_features {} is not a multiple of group_size {}", who, k, group_size);
}

}  // namespace

IntWeightQuant quantize_weight_sym(const float* w, int64_t n, int64_t k, int bits,
                                   int64_t group_size, IntScaleRule rule, ComputeDType compute) {
  check_bits(bits);
  const float qmax = float((1 << (bits - 1)) - 1), qmin = -qmax - 1;
  if (rule == IntScaleRule::CompressedTensors)
    reject_ragged_groups(k, group_size, "compressed-tensors quantization");
  auto c = [compute](float v) { return round_to_compute(v, compute); };
  return for_each_group(
      n, k, group_size, [&](IntWeightQuant& r, int64_t row, int64_t g, int64_t b, int64_t e) {
        const float* x = w + row * k;
        float amax = 0;
        for (int64_t i = b; i < e; ++i) amax = std::max(amax, std::fabs(x[i]));
        float s;
        if (rule == IntScaleRule::QMax) {
          // msmodelslim calculate_int_qparam: max(amax / qmax, fp32 eps), in every dtype.
          s = std::max(c(amax / qmax), std::numeric_limits<float>::epsilon());
        } else {
          // (qmax - qmin) / 2 = 127.5 or 7.5, exact in every compute dtype.
          s = c(amax / ((qmax - qmin) / 2.0f));
          if (s == 0.0f) s = compute_eps(compute);
        }
        r.scale[size_t(row * r.groups + g)] = s;
        for (int64_t i = b; i < e; ++i) {
          const float v = c(x[i] / s);
          r.q[size_t(row * k + i)] = int8_t(round_half_even(clampf(v, qmin, qmax)));
        }
      });
}

IntWeightQuant quantize_weight_asym_ct(const float* w, int64_t n, int64_t k, int bits,
                                       int64_t group_size, ComputeDType compute) {
  check_bits(bits);
  reject_ragged_groups(k, group_size, "compressed-tensors quantization");
  const float qmax = float((1 << (bits - 1)) - 1), qmin = -qmax - 1;
  auto c = [compute](float v) { return round_to_compute(v, compute); };
  std::vector<int8_t> zero;
  IntWeightQuant r = for_each_group(
      n, k, group_size, [&](IntWeightQuant& r, int64_t row, int64_t g, int64_t b, int64_t e) {
        if (zero.empty()) zero.resize(size_t(r.n * r.groups));
        const float* x = w + row * k;
        float lo = 0, hi = 0;  // calculate_qparams: 0 must be representable
        for (int64_t i = b; i < e; ++i) {
          lo = std::min(lo, x[i]);
          hi = std::max(hi, x[i]);
        }
        float s = c(c(hi - lo) / (qmax - qmin));
        float zp = 0;  // all-zero group: upstream's 0/0 = NaN casts to int8 0
        if (s != 0.0f) zp = std::nearbyint(clampf(c(qmin - c(lo / s)), qmin, qmax));
        if (s == 0.0f) s = compute_eps(compute);
        r.scale[size_t(row * r.groups + g)] = s;
        zero[size_t(row * r.groups + g)] = int8_t(zp);
        for (int64_t i = b; i < e; ++i) {
          const float v = c(c(x[i] / s) + zp);
          r.q[size_t(row * k + i)] = int8_t(round_half_even(clampf(v, qmin, qmax)));
        }
      });
  r.zero = std::move(zero);
  return r;
}

IntWeightQuant quantize_weight_awq(const float* w, int64_t n, int64_t k, int64_t group_size,
                                   ComputeDType compute) {
  if (group_size > 0 && k % group_size != 0)
    fail("AWQ quantization: in_features {} is not a multiple of group_size {}", k, group_size);
  auto c = [compute](float v) { return round_to_compute(v, compute); };
  std::vector<int8_t> zero;
  IntWeightQuant r = for_each_group(
      n, k, group_size, [&](IntWeightQuant& r, int64_t row, int64_t g, int64_t b, int64_t e) {
        if (zero.empty()) zero.resize(size_t(r.n * r.groups));
        const float* x = w + row * k;
        float lo = x[b], hi = x[b];
        for (int64_t i = b; i < e; ++i) {
          lo = std::min(lo, x[i]);
          hi = std::max(hi, x[i]);
        }
        const float range = std::max(c(hi - lo), c(1e-5f));  // .clamp(min=1e-5) in the dtype
        const float s = c(range / 15.0f);
        const float z = clampf(-round_half_even(c(lo / s)), 0.0f, 15.0f);
        r.scale[size_t(row * r.groups + g)] = s;
        zero[size_t(row * r.groups + g)] = int8_t(z);
        for (int64_t i = b; i < e; ++i)
          r.q[size_t(row * k + i)] = int8_t(clampf(round_half_even(c(x[i] / s)) + z, 0.0f, 15.0f));
      });
  r.zero = std::move(zero);
  return r;
}

void quantize_act_per_token_sym(const float* x, int64_t m, int64_t k, int bits, int8_t* q,
                                float* scale) {
  check_bits(bits);
  const float qmax = float((1 << (bits - 1)) - 1);
  for (int64_t row = 0; row < m; ++row) {
    const float* xr = x + row * k;
    float amax = 0;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(xr[i]));
    const float s = amax / qmax;
    scale[row] = s;
    for (int64_t i = 0; i < k; ++i)
      q[row * k + i] = s == 0.0f ? 0 : int8_t(round_half_even(clampf(xr[i] / s, -qmax - 1, qmax)));
  }
}

void quantize_act_static_asym(const float* x, int64_t count, float input_scale, float input_offset,
                              int8_t* q) {
  if (!(input_scale > 0.0f) || !std::isfinite(input_scale))
    fail("W8A8 static: input_scale must be positive and finite, got {}", input_scale);
  const float inv = 1.0f / input_scale;
  for (int64_t i = 0; i < count; ++i) {
    const float t = x[i] * inv;  // separate statements: no fused multiply-add
    const float v = t + input_offset;
    q[i] = int8_t(round_half_even(clampf(v, -128.0f, 127.0f)));
  }
}

StaticActQuant calibrate_static_asym_int8(float min_val, float max_val) {
  if (!std::isfinite(min_val) || !std::isfinite(max_val) || min_val > max_val)
    fail("W8A8 static calibration: bad range [{}, {}]", min_val, max_val);
  const float lo = std::min(min_val, 0.0f), hi = std::max(max_val, 0.0f);
  const float s = std::max(hi / 255.0f - lo / 255.0f, std::numeric_limits<float>::epsilon());
  return {s, round_half_even(-lo / s) - 128.0f};
}

int mx_block_exponent(float amax, MxElem elem, MxScaleRule rule) {
  LOWBIT_CHECK(amax >= 0.0f && std::isfinite(amax), "amax {}", amax);
  if (amax == 0.0f && rule != MxScaleRule::MsModelSlimFp4)
    return -kE8M0Bias;  // all-zero block: u = 0 (msmodelslim fp8 gets -134, clamped the same)
  switch (rule) {
    case MxScaleRule::Ocp:
      return floor_log2(amax) - (elem == MxElem::E4M3 ? 8 : 2);
    case MxScaleRule::MsModelSlimFp8:
      if (elem != MxElem::E4M3) fail("MX scale rule MsModelSlimFp8 applies to E4M3 only");
      return floor_log2(amax) - 8;
    case MxScaleRule::MsModelSlimFp4: {
      if (elem != MxElem::E2M1) fail("MX scale rule MsModelSlimFp4 applies to E2M1 only");
      // msmodelslim calculate_mxfp4_qparam: floor(log2(amax / (1 - 0.5^3) + 9.6e-7)) - emax,
      // in fp32. The 9.6e-7 keeps log2 finite for an all-zero block, whose exponent is then
      // floor(log2 9.6e-7) - 2 = -22, not the E8M0 minimum.
      const float t = amax / 0.875f + 9.6e-7f;
      return floor_log2(t) - 2;
    }
  }
  fail("unknown MX scale rule");
}

void quantize_mx(const float* x, int64_t rows, int64_t k, MxElem elem, MxScaleRule rule,
                 uint8_t* codes, uint8_t* scales) {
  if (k % kMxBlock != 0)
    fail("MX quantization needs in_features % 32 == 0 (one E8M0 scale per 32 along K), got {}", k);
  const bool half_away = rule != MxScaleRule::Ocp;
  const int64_t blocks = k / kMxBlock;
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const float* xb = x + row * k + blk * kMxBlock;
      uint8_t* cb = codes + row * k + blk * kMxBlock;
      float amax = 0;
      for (int64_t i = 0; i < kMxBlock; ++i) amax = std::max(amax, std::fabs(xb[i]));
      const int e_raw = mx_block_exponent(amax, elem, rule);
      const uint8_t u = e8m0_from_exponent(e_raw);
      scales[row * blocks + blk] = u;
      const int e = int(u) - kE8M0Bias;  // the clamped exponent actually stored
      // msmodelslim's fp4 writer zeroes a block whose exponent is below -127; the other rules
      // clamp the exponent and encode the (now larger) elements as usual.
      const bool flush =
          amax == 0.0f || (rule == MxScaleRule::MsModelSlimFp4 && e_raw < -kE8M0Bias);
      for (int64_t i = 0; i < kMxBlock; ++i) {
        if (flush) {
          cb[i] = 0;
          continue;
        }
        const float v = std::ldexp(xb[i], -e);  // exact: a power-of-two scaling
        if (elem == MxElem::E4M3)
          cb[i] = half_away ? f32_to_fp8_e4m3_half_away(v) : f32_to_fp8_e4m3_rne(v);
        else
          cb[i] = half_away ? f32_to_fp4_e2m1_half_away(v) : f32_to_fp4_e2m1_rne(v);
      }
    }
}

Fp8WeightQuant quantize_weight_fp8(const float* w, int64_t n, int64_t k, Fp8Granularity g,
                                   int64_t block, ComputeDType compute) {
  if (n <= 0 || k <= 0) fail("quantize: bad weight shape [{}, {}]", n, k);
  if (g == Fp8Granularity::Block && block <= 0) fail("FP8 block size must be positive");
  // Tiles: rows [r0, r1) × cols [c0, c1) share one scale.
  const int64_t tile_n = g == Fp8Granularity::Tensor ? n : g == Fp8Granularity::Channel ? 1 : block;
  const int64_t tile_k = g == Fp8Granularity::Block ? block : k;
  const int64_t tiles_n = ceil_div(n, tile_n), tiles_k = ceil_div(k, tile_k);
  Fp8WeightQuant r;
  r.q.resize(size_t(n * k));
  r.scale.resize(size_t(tiles_n * tiles_k));
  for (int64_t tn = 0; tn < tiles_n; ++tn)
    for (int64_t tk = 0; tk < tiles_k; ++tk) {
      const int64_t r0 = tn * tile_n, r1 = std::min(n, r0 + tile_n);
      const int64_t c0 = tk * tile_k, c1 = std::min(k, c0 + tile_k);
      float amax = 0;
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t j = c0; j < c1; ++j) amax = std::max(amax, std::fabs(w[i * k + j]));
      // compressed-tensors: qmax - qmin = 896, halved = 448, both exact in every dtype.
      float s = round_to_compute(amax / kFp8E4M3Max, compute);
      if (s == 0.0f) s = compute_eps(compute);
      r.scale[size_t(tn * tiles_k + tk)] = s;
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t j = c0; j < c1; ++j)
          r.q[size_t(i * k + j)] = f32_to_fp8_e4m3_rne(round_to_compute(w[i * k + j] / s, compute));
    }
  return r;
}

void quantize_act_fp8_groups(const float* x, int64_t m, int64_t k, int64_t group, uint8_t* q,
                             float* scale) {
  if (group <= 0) fail("FP8 activation group size must be positive");
  const int64_t groups = ceil_div(k, group);
  for (int64_t row = 0; row < m; ++row)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t b = g * group, e = std::min(k, b + group);
      float amax = 0;
      for (int64_t i = b; i < e; ++i) amax = std::max(amax, std::fabs(x[row * k + i]));
      const float s = amax / kFp8E4M3Max;
      scale[row * groups + g] = s;
      for (int64_t i = b; i < e; ++i)
        q[row * k + i] = s == 0.0f ? 0 : f32_to_fp8_e4m3_rne(x[row * k + i] / s);
    }
}

}  // namespace lowbit
