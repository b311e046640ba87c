// Edge cases of the reference quantizers; bit-exactness with the upstream Python writers is
// checked separately by tests/python/test_quant_reference.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant_types.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {
namespace {

std::vector<float> random_floats(int64_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(QuantizeRef, SymmetricPerChannelAndGroupRagged) {
  const int64_t n = 3, k = 10;
  auto w = random_floats(n * k, 1);
  std::fill(w.begin() + k, w.begin() + 2 * k, 0.0f);  // row 1 all zero
  w[2 * k + 9] = 1000.0f;                             // outlier in the ragged last group
  auto r = quantize_weight_sym(w.data(), n, k, 4, /*group=*/4, IntScaleRule::QMax);
  ASSERT_EQ(r.groups, 3);
  for (int64_t row = 0; row < n; ++row)
    for (int64_t g = 0; g < 3; ++g) {
      const int64_t b = g * 4, e = std::min(k, b + 4);
      float amax = 0;
      for (int64_t i = b; i < e; ++i) amax = std::max(amax, std::fabs(w[size_t(row * k + i)]));
      const float s = r.scale[size_t(row * 3 + g)];
      EXPECT_EQ(s, std::max(amax / 7.0f, std::ldexp(1.0f, -23)));
      for (int64_t i = b; i < e; ++i) {
        const int q = r.q[size_t(row * k + i)];
        EXPECT_GE(q, -8);
        EXPECT_LE(q, 7);
        EXPECT_LE(std::fabs(q * s - w[size_t(row * k + i)]), s / 2 * 1.0001f);
      }
    }
  EXPECT_EQ(r.q[size_t(2 * k + 9)], 7);  // the outlier maps to qmax
  EXPECT_EQ(r.q[size_t(2 * k + 8)], 0);  // and crushes its group's small values
  auto c = quantize_weight_sym(w.data(), n, k, 8, 0, IntScaleRule::QMax);
  EXPECT_EQ(c.groups, 1);
  EXPECT_EQ(c.scale[1], std::ldexp(1.0f, -23));  // all-zero row: fp32 eps, codes 0
  EXPECT_EQ(c.q[size_t(k)], 0);
  auto cal = calibrate_static_asym_int8(0.5f, 2.0f);  // 0 forced into the range
  EXPECT_EQ(cal.input_scale, 2.0f / 255.0f - 0.0f / 255.0f);
  EXPECT_EQ(cal.input_offset, -128.0f);
  cal = calibrate_static_asym_int8(-1.0f, 1.0f);
  EXPECT_EQ(cal.input_offset, std::nearbyint(1.0f / cal.input_scale) - 128.0f);
}

TEST(QuantizeRef, CompressedTensorsRules) {
  const float w[] = {-127.5f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  auto r = quantize_weight_sym(w, 2, 4, 8, 0, IntScaleRule::CompressedTensors);
  EXPECT_EQ(r.scale[0], 1.0f);                   // amax / 127.5
  EXPECT_EQ(r.q[0], -128);                       // -127.5 rounds to even -128, inside [qmin, qmax]
  EXPECT_EQ(r.q[1], 0);                          // 0.5 rounds to even 0
  EXPECT_EQ(r.scale[1], std::ldexp(1.0f, -23));  // all-zero row: fp32 eps
  EXPECT_THROW(quantize_weight_sym(w, 1, 8, 4, 3, IntScaleRule::CompressedTensors), Error);
  EXPECT_NO_THROW(quantize_weight_sym(w, 1, 8, 4, 16, IntScaleRule::CompressedTensors));  // K < g
  // Asymmetric: positive-only data still has 0 in range → zp = qmin.
  const float pos[] = {1.0f, 2.0f, 3.0f, 1.5f};
  auto a = quantize_weight_asym_ct(pos, 1, 4, 4, 0);
  EXPECT_EQ(a.scale[0], 3.0f / 15.0f);
  EXPECT_EQ(a.zero[0], -8);
  EXPECT_EQ(a.q[2], 7);
  const float zeros[4] = {};
  auto z = quantize_weight_asym_ct(zeros, 1, 4, 4, 0);
  EXPECT_EQ(z.zero[0], 0);
  EXPECT_EQ(z.q[0], 0);
}

TEST(QuantizeRef, AwqRules) {
  const float w[] = {1.0f, 2.0f, 3.0f, 4.0f};  // min 1 > 0: AWQ does not force 0 in range
  auto r = quantize_weight_awq(w, 1, 4, 4);
  EXPECT_EQ(r.scale[0], 3.0f / 15.0f);
  EXPECT_EQ(r.zero[0], 0);  // -round(5) = -5 clamped to 0
  EXPECT_EQ(r.q[3], 15);
  const float c[] = {5.0f, 5.0f};  // constant group: range clamped to 1e-5
  auto k = quantize_weight_awq(c, 1, 2, 0);
  EXPECT_EQ(k.scale[0], 1e-5f / 15.0f);
  EXPECT_THROW(quantize_weight_awq(w, 1, 4, 3), Error);
}

TEST(QuantizeRef, BF16ComputeRoundsIntermediates) {
  // amax / 127.5 in bf16 is rounded, so the scale differs from the fp32 one.
  const float w[] = {bf16_to_f32(f32_to_bf16(0.7f))};
  auto f = quantize_weight_sym(w, 1, 1, 8, 0, IntScaleRule::CompressedTensors);
  auto b = quantize_weight_sym(w, 1, 1, 8, 0, IntScaleRule::CompressedTensors, ComputeDType::BF16);
  EXPECT_EQ(b.scale[0], bf16_to_f32(f32_to_bf16(f.scale[0])));
  EXPECT_NE(b.scale[0], f.scale[0]);
}

TEST(QuantizeRef, ActivationsPerTokenAndStatic) {
  const float x[] = {0.0f, 0.0f, 0.0f, -2.0f, 1.0f, 0.5f};
  int8_t q[6];
  float s[2];
  quantize_act_per_token_sym(x, 2, 3, 8, q, s);
  EXPECT_EQ(s[0], 0.0f);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(s[1], 2.0f / 127.0f);
  EXPECT_EQ(q[3], -127);
  EXPECT_EQ(q[5], int8_t(std::nearbyint(0.5f / (2.0f / 127.0f))));  // 31.75 → 32
  quantize_act_per_token_sym(x, 2, 3, 4, q, s);
  EXPECT_EQ(s[1], 2.0f / 7.0f);
  EXPECT_EQ(q[3], -7);
  EXPECT_EQ(q[4], int8_t(std::nearbyint(1.0f / s[1])));
  const float y[] = {-1000.0f, 1000.0f, 0.0f, 0.25f};
  int8_t yq[4];
  quantize_act_static_asym(y, 4, 0.5f, -3.0f, yq);
  EXPECT_EQ(yq[0], -128);
  EXPECT_EQ(yq[1], 127);
  EXPECT_EQ(yq[2], -3);
  EXPECT_EQ(yq[3], -2);  // 0.5 - 3 = -2.5 → -2 (even)
  EXPECT_THROW(quantize_act_static_asym(y, 4, 0.0f, 0.0f, yq), Error);
}

TEST(QuantizeRef, MxScalesAndErrors) {
  std::vector<float> x(64, 0.0f);
  x[0] = 448.0f;  // block 0: amax 448 → OCP e = 8 - 8 = 0
  x[1] = 0.01f;
  std::vector<uint8_t> codes(64), scales(2);
  quantize_mx(x.data(), 1, 64, MxElem::E4M3, MxScaleRule::Ocp, codes.data(), scales.data());
  EXPECT_EQ(scales[0], 127);
  EXPECT_EQ(codes[0], 0x7E);
  EXPECT_EQ(fp8_e4m3_to_f32(codes[1]), fp8_e4m3_to_f32(f32_to_fp8_e4m3_rne(0.01f)));
  EXPECT_EQ(scales[1], 0);  // all-zero block
  EXPECT_EQ(codes[40], 0);
  // OCP rule can overflow the element range (amax 500 → e = 0, 500 > 448): saturates.
  x[0] = 500.0f;
  quantize_mx(x.data(), 1, 64, MxElem::E4M3, MxScaleRule::Ocp, codes.data(), scales.data());
  EXPECT_EQ(codes[0], 0x7E);
  // E2M1, OCP: amax 7 → e = 2 - 2 = 0, 7 saturates to 6; msmodelslim: floor(log2 8) - 2 = 1.
  x[0] = 7.0f;
  x[2] = 2.5f;  // a tie after scaling by 2^-1 under the msmodelslim rule: 1.25 → 1.5 (away)
  quantize_mx(x.data(), 1, 64, MxElem::E2M1, MxScaleRule::Ocp, codes.data(), scales.data());
  EXPECT_EQ(scales[0], 127);
  EXPECT_EQ(codes[0], 7);
  quantize_mx(x.data(), 1, 64, MxElem::E2M1, MxScaleRule::MsModelSlimFp4, codes.data(),
              scales.data());
  EXPECT_EQ(scales[0], 128);
  EXPECT_EQ(fp4_e2m1_to_f32(codes[0]), 4.0f);  // 3.5 half-away → 4
  EXPECT_EQ(fp4_e2m1_to_f32(codes[2]), 1.5f);  // rne would give 1
  EXPECT_EQ(scales[1], 105);  // msmodelslim fp4, all-zero block: floor(log2 9.6e-7) - 2 = -22
  EXPECT_EQ(codes[40], 0);
  x[2] = 0.0f;
  EXPECT_EQ(mx_block_exponent(448.0f, MxElem::E4M3, MxScaleRule::MsModelSlimFp8), 0);
  EXPECT_EQ(mx_block_exponent(std::ldexp(1.0f, -130), MxElem::E4M3, MxScaleRule::Ocp), -138);
  x[1] = 0.0f;
  x[0] = std::ldexp(1.0f, -130);  // exponent clamps to -127 (u = 0); element still encodes
  quantize_mx(x.data(), 1, 64, MxElem::E4M3, MxScaleRule::Ocp, codes.data(), scales.data());
  EXPECT_EQ(scales[0], 0);
  EXPECT_EQ(fp8_e4m3_to_f32(codes[0]), 0.125f);
  EXPECT_THROW(
      quantize_mx(x.data(), 1, 48, MxElem::E4M3, MxScaleRule::Ocp, codes.data(), scales.data()),
      Error);
  EXPECT_THROW(mx_block_exponent(1.0f, MxElem::E2M1, MxScaleRule::MsModelSlimFp8), Error);
}

TEST(QuantizeRef, Fp8Granularities) {
  const int64_t n = 130, k = 200;
  auto w = random_floats(n * k, 3);
  for (int64_t i = 0; i < k; ++i) w[size_t(5 * k + i)] = 0;  // a zero row
  auto t = quantize_weight_fp8(w.data(), n, k, Fp8Granularity::Tensor);
  ASSERT_EQ(t.scale.size(), 1u);
  auto c = quantize_weight_fp8(w.data(), n, k, Fp8Granularity::Channel);
  ASSERT_EQ(c.scale.size(), size_t(n));
  EXPECT_EQ(c.scale[5], std::ldexp(1.0f, -23));
  auto b = quantize_weight_fp8(w.data(), n, k, Fp8Granularity::Block);
  ASSERT_EQ(b.scale.size(), 4u);  // ceil(130/128) × ceil(200/128)
  for (const auto* r : {&t, &c, &b})
    for (size_t i = 0; i < r->q.size(); ++i) ASSERT_NE(r->q[i] & 0x7F, 0x7F);  // no NaN
  float amax = 0;
  for (int64_t i = 128; i < n; ++i)
    for (int64_t j = 128; j < k; ++j) amax = std::max(amax, std::fabs(w[size_t(i * k + j)]));
  EXPECT_EQ(b.scale[3], amax / 448.0f);
}

}  // namespace
}  // namespace lowbit
