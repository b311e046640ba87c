// Each reference GEMM against an independent oracle: quantize with the reference quantizers,
// dequantize every operand into double (exactly: codes × scales are exact products in
// double), and multiply in double. Tolerance: the references sum exactly (int32, or double
// block sums of fp8 products, which fit 53 bits) and then apply at most three fp32 roundings
// (int→float, × s_x, × s_w; W4A16 rounds each dequantized weight once and the output once),
// so |ref − oracle| ≤ 4·2^-24·Σ_k |x̂_k·ŵ_k|. W8A8 static adds the rounding of quant_bias,
// at most 0.5·deq_scale[n]. A looser check against the unquantized float matmul guards
// against the oracle and the reference sharing a wrong quantizer.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant_types.h"
#include "kernels/reference/quant_gemm_ref.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {
namespace {

std::vector<float> random_floats(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = d(rng);
  return v;
}

struct Case {
  QuantGemmDims d;
  std::vector<float> x, w;
};

Case make_case(int64_t m, int64_t n, int64_t k, uint32_t seed) {
  Case c{{m, n, k}, random_floats(m * k, seed), random_floats(n * k, seed + 100)};
  c.x[0] = 20.0f;                                          // an activation outlier
  for (int64_t i = 0; i < k; ++i) c.x[size_t(k + i)] = 0;  // an all-zero token (m ≥ 2)
  return c;
}

// Dequantized operands as functions (m or n, k) → double.
using Deq = std::function<double(int64_t, int64_t)>;

void expect_matches(const Case& c, const std::vector<float>& y, const Deq& xd, const Deq& wd,
                    const std::vector<double>& extra_tol, double float_rel, const char* what) {
  for (int64_t i = 0; i < c.d.m; ++i)
    for (int64_t j = 0; j < c.d.n; ++j) {
      double o = 0, mag = 0, f = 0, fmag = 0;
      for (int64_t t = 0; t < c.d.k; ++t) {
        const double p = xd(i, t) * wd(j, t);
        o += p;
        mag += std::fabs(p);
        f += double(c.x[size_t(i * c.d.k + t)]) * double(c.w[size_t(j * c.d.k + t)]);
        fmag += std::fabs(double(c.x[size_t(i * c.d.k + t)]) * double(c.w[size_t(j * c.d.k + t)]));
      }
      const double extra = extra_tol.empty() ? 0 : extra_tol[size_t(j)];
      const double tol = 4.0 * std::ldexp(1.0, -24) * mag + extra;
      ASSERT_NEAR(y[size_t(i * c.d.n + j)], o, tol) << what << " m=" << i << " n=" << j;
      ASSERT_NEAR(y[size_t(i * c.d.n + j)], f, float_rel * fmag + extra + 1e-6)
          << what << " vs float";
    }
}

TEST(QuantGemmRef, W8A8DynamicAndW4A4) {
  for (int bits : {8, 4}) {
    Case c = make_case(3, 5, 70, 1);
    auto wq = quantize_weight_sym(c.w.data(), c.d.n, c.d.k, bits, 0, IntScaleRule::QMax);
    std::vector<int8_t> xq(c.x.size());
    std::vector<float> sx(size_t(c.d.m)), y(size_t(c.d.m * c.d.n));
    quantize_act_per_token_sym(c.x.data(), c.d.m, c.d.k, bits, xq.data(), sx.data());
    if (bits == 8)
      gemm_w8a8_dynamic_ref(c.d, c.x.data(), wq.q.data(), wq.scale.data(), y.data());
    else
      gemm_w4a4_dynamic_ref(c.d, c.x.data(), wq.q.data(), wq.scale.data(), y.data());
    expect_matches(
        c, y,
        [&](int64_t i, int64_t t) { return double(xq[size_t(i * c.d.k + t)]) * sx[size_t(i)]; },
        [&](int64_t j, int64_t t) {
          return double(wq.q[size_t(j * c.d.k + t)]) * wq.scale[size_t(j)];
        },
        {}, bits == 8 ? 0.03 : 0.6, bits == 8 ? "W8A8" : "W4A4");
  }
}

TEST(QuantGemmRef, W4A8PerChannelAndPerGroup) {
  Case c = make_case(2, 4, 100, 2);
  const int64_t g = 32;  // ragged last group: 100 = 3·32 + 4
  auto grp = quantize_weight_sym(c.w.data(), c.d.n, c.d.k, 4, g, IntScaleRule::QMax);
  // Split each group scale into scale_second[n, j] · weight_scale[n] as msmodelslim stores it.
  std::vector<float> ws(size_t(c.d.n)), second(grp.scale.size());
  for (int64_t j = 0; j < c.d.n; ++j) {
    ws[size_t(j)] = 0.5f;
    for (int64_t t = 0; t < grp.groups; ++t)
      second[size_t(j * grp.groups + t)] = grp.scale[size_t(j * grp.groups + t)] * 2.0f;
  }
  std::vector<int8_t> xq(c.x.size());
  std::vector<float> sx(size_t(c.d.m)), y(size_t(c.d.m * c.d.n));
  quantize_act_per_token_sym(c.x.data(), c.d.m, c.d.k, 8, xq.data(), sx.data());
  Deq xd = [&](int64_t i, int64_t t) { return double(xq[size_t(i * c.d.k + t)]) * sx[size_t(i)]; };
  gemm_w4a8_dynamic_ref(c.d, c.x.data(), grp.q.data(), ws.data(), second.data(), g, y.data());
  expect_matches(
      c, y, xd,
      [&](int64_t j, int64_t t) {
        return double(grp.q[size_t(j * c.d.k + t)]) * second[size_t(j * grp.groups + t / g)] *
               ws[size_t(j)];
      },
      {}, 0.3, "W4A8 group");
  auto ch = quantize_weight_sym(c.w.data(), c.d.n, c.d.k, 4, 0, IntScaleRule::QMax);
  gemm_w4a8_dynamic_ref(c.d, c.x.data(), ch.q.data(), ch.scale.data(), nullptr, 0, y.data());
  expect_matches(
      c, y, xd,
      [&](int64_t j, int64_t t) {
        return double(ch.q[size_t(j * c.d.k + t)]) * ch.scale[size_t(j)];
      },
      {}, 0.6, "W4A8 channel");
}

TEST(QuantGemmRef, W8A8Static) {
  Case c = make_case(3, 6, 64, 3);
  auto wq = quantize_weight_sym(c.w.data(), c.d.n, c.d.k, 8, 0, IntScaleRule::QMax);
  // Calibrate like msmodelslim: asymmetric per-tensor over the data.
  float lo = 0, hi = 0;
  for (float v : c.x) lo = std::min(lo, v), hi = std::max(hi, v);
  const float in_s = (hi - lo) / 255.0f, in_off = std::nearbyint(-lo / in_s) - 128.0f;
  std::vector<float> bias = random_floats(c.d.n, 9), deq(size_t(c.d.n));
  std::vector<int32_t> qb(size_t(c.d.n));
  std::vector<double> extra(size_t(c.d.n));
  for (int64_t j = 0; j < c.d.n; ++j) {
    deq[size_t(j)] = in_s * wq.scale[size_t(j)];
    int64_t colsum = 0;
    for (int64_t t = 0; t < c.d.k; ++t) colsum += wq.q[size_t(j * c.d.k + t)];
    qb[size_t(j)] =
        int32_t(std::nearbyint(bias[size_t(j)] / deq[size_t(j)] - in_off * float(colsum)));
    extra[size_t(j)] = 0.5 * deq[size_t(j)] * 1.001 + 1e-6 * std::fabs(bias[size_t(j)]);
  }
  std::vector<int8_t> xq(c.x.size());
  quantize_act_static_asym(c.x.data(), int64_t(c.x.size()), in_s, in_off, xq.data());
  std::vector<float> y(size_t(c.d.m * c.d.n));
  gemm_w8a8_static_ref(c.d, c.x.data(), wq.q.data(), in_s, in_off, qb.data(), deq.data(), y.data());
  // The float bias is part of the oracle; subtract it so expect_matches' float check applies.
  for (int64_t i = 0; i < c.d.m; ++i)
    for (int64_t j = 0; j < c.d.n; ++j) y[size_t(i * c.d.n + j)] -= bias[size_t(j)];
  expect_matches(
      c, y,
      [&](int64_t i, int64_t t) { return (double(xq[size_t(i * c.d.k + t)]) - in_off) * in_s; },
      [&](int64_t j, int64_t t) {
        return double(wq.q[size_t(j * c.d.k + t)]) * wq.scale[size_t(j)];
      },
      extra, 0.03, "W8A8 static");
}

TEST(QuantGemmRef, W4A16ZeroPointsAndSigned) {
  Case c = make_case(2, 5, 96, 4);
  for (bool awq : {true, false}) {
    auto q = awq ? quantize_weight_awq(c.w.data(), c.d.n, c.d.k, 32)
                 : quantize_weight_asym_ct(c.w.data(), c.d.n, c.d.k, 4, 32);
    std::vector<float> y(size_t(c.d.m * c.d.n));
    gemm_w4a16_ref(c.d, c.x.data(), q.q.data(), q.zero.data(), q.scale.data(), 32, y.data());
    expect_matches(
        c, y, [&](int64_t i, int64_t t) { return double(c.x[size_t(i * c.d.k + t)]); },
        [&](int64_t j, int64_t t) {
          const size_t g = size_t(j * q.groups + t / 32);
          return (double(q.q[size_t(j * c.d.k + t)]) - q.zero[g]) * q.scale[g];
        },
        {}, 0.2, awq ? "W4A16 AWQ" : "W4A16 CT");
  }
}

// MX operands decoded for the oracle.
Deq mx_deq(const std::vector<uint8_t>& codes, const std::vector<uint8_t>& scales, int64_t k,
           bool fp4) {
  return [&codes, &scales, k, fp4](int64_t r, int64_t t) {
    const uint8_t cd = codes[size_t(r * k + t)];
    const double v = fp4 ? fp4_e2m1_to_f32(cd) : fp8_e4m3_to_f32(cd);
    return std::ldexp(v, int(scales[size_t(r * (k / 32) + t / 32)]) - 127);
  };
}

TEST(QuantGemmRef, MxFp8AndFp4) {
  Case c = make_case(3, 4, 96, 5);
  const int64_t kb = c.d.k / 32;
  for (int mode = 0; mode < 3; ++mode) {  // 0: MXFP8, 1: W4A8_MXFP, 2: W4A4_MXFP4
    const bool w4 = mode > 0, a4 = mode == 2;
    std::vector<uint8_t> wc(c.w.size()), ws(size_t(c.d.n * kb)), xc(c.x.size()),
        xs(size_t(c.d.m * kb));
    quantize_mx(c.w.data(), c.d.n, c.d.k, w4 ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp,
                wc.data(), ws.data());
    quantize_mx(c.x.data(), c.d.m, c.d.k, a4 ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp,
                xc.data(), xs.data());
    std::vector<float> y(size_t(c.d.m * c.d.n));
    if (w4)
      gemm_mxfp4_ref(c.d, c.x.data(), wc.data(), ws.data(), a4, y.data());
    else
      gemm_mxfp8_ref(c.d, c.x.data(), wc.data(), ws.data(), y.data());
    expect_matches(c, y, mx_deq(xc, xs, c.d.k, a4), mx_deq(wc, ws, c.d.k, w4), {},
                   mode == 0   ? 0.1
                   : mode == 1 ? 0.4
                               : 0.8,
                   "MX");
  }
  std::vector<uint8_t> wc(c.w.size()), ws(size_t(c.d.n * kb), 127);
  std::vector<float> y(size_t(c.d.m * c.d.n));
  ws[3] = 0xFF;
  EXPECT_THROW(gemm_mxfp8_ref(c.d, c.x.data(), wc.data(), ws.data(), y.data()), Error);
  QuantGemmDims bad{1, 1, 40};
  EXPECT_THROW(gemm_mxfp4_ref(bad, c.x.data(), wc.data(), ws.data(), false, y.data()), Error);
}

TEST(QuantGemmRef, Fp8Block) {
  Case c = make_case(2, 130, 300, 6);  // ragged blocks on both axes
  const int64_t b = 128, kb = 3;
  auto wq = quantize_weight_fp8(c.w.data(), c.d.n, c.d.k, Fp8Granularity::Block, b);
  std::vector<uint8_t> xq(c.x.size());
  std::vector<float> sx(size_t(c.d.m * kb)), y(size_t(c.d.m * c.d.n));
  quantize_act_fp8_groups(c.x.data(), c.d.m, c.d.k, b, xq.data(), sx.data());
  gemm_fp8_block_ref(c.d, c.x.data(), wq.q.data(), wq.scale.data(), b, y.data());
  expect_matches(
      c, y,
      [&](int64_t i, int64_t t) {
        return double(fp8_e4m3_to_f32(xq[size_t(i * c.d.k + t)])) * sx[size_t(i * kb + t / b)];
      },
      [&](int64_t j, int64_t t) {
        return double(fp8_e4m3_to_f32(wq.q[size_t(j * c.d.k + t)])) *
               wq.scale[size_t((j / b) * kb + t / b)];
      },
      {}, 0.1, "FP8 block");
}

TEST(QuantGemmRef, IntBoundsAndCodes) {
  std::vector<float> x(4, 1.0f);
  std::vector<int8_t> w = {9, 0, 0, 0};  // not int4
  std::vector<float> s(1, 1.0f), y(1);
  EXPECT_THROW(gemm_w4a4_dynamic_ref({1, 1, 4}, x.data(), w.data(), s.data(), y.data()), Error);
  EXPECT_THROW(
      gemm_w8a8_dynamic_ref({1, 1, (int64_t(1) << 16) + 1}, x.data(), w.data(), s.data(), y.data()),
      Error);
}

}  // namespace
}  // namespace lowbit
