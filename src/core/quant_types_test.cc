#include "core/quant_types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "core/error.h"

namespace lowbit {
namespace {

TEST(QuantTypes, E8M0DecodeAndNan) {
  EXPECT_EQ(e8m0_to_f32(127), 1.0f);
  EXPECT_EQ(e8m0_to_f32(130), 8.0f);
  EXPECT_EQ(e8m0_to_f32(0), std::ldexp(1.0f, -127));
  EXPECT_EQ(e8m0_to_f32(254), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(e8m0_to_f32(0xFF)));
  EXPECT_EQ(e8m0_exponent_checked(120, "t"), -7);
  EXPECT_THROW(e8m0_exponent_checked(0xFF, "t"), Error);
  const uint8_t ok[] = {0, 127, 254}, bad[] = {1, 0xFF, 3};
  EXPECT_NO_THROW(check_e8m0_scales(ok, 3, "w"));
  try {
    check_e8m0_scales(bad, 3, "layer.weight_scale");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer.weight_scale"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("index 1"), std::string::npos);
  }
  EXPECT_EQ(e8m0_from_exponent(-200), 0);
  EXPECT_EQ(e8m0_from_exponent(200), 254);
  EXPECT_EQ(e8m0_from_exponent(0), 127);
}

TEST(QuantTypes, FloorLog2IsExact) {
  EXPECT_EQ(floor_log2(1.0f), 0);
  EXPECT_EQ(floor_log2(std::nextafter(8.0f, 0.0f)), 2);  // std::log2 would round to 3
  EXPECT_EQ(floor_log2(448.0f), 8);
  EXPECT_EQ(floor_log2(std::ldexp(1.0f, -140)), -140);  // subnormal
}

TEST(QuantTypes, Fp4RoundTripAndTies) {
  for (uint8_t c = 0; c < 16; ++c) {
    if (c == 8) continue;  // -0 encodes back as code 8 too; checked below
    EXPECT_EQ(f32_to_fp4_e2m1_rne(fp4_e2m1_to_f32(c)), c) << int(c);
    EXPECT_EQ(f32_to_fp4_e2m1_half_away(fp4_e2m1_to_f32(c)), c) << int(c);
  }
  EXPECT_EQ(f32_to_fp4_e2m1_rne(-0.0f), 8);
  // Ties: (x, rne, half-away) as values.
  const float ties[][3] = {{0.25f, 0, 0.5f}, {0.75f, 1, 1}, {1.25f, 1, 1.5f}, {1.75f, 2, 2},
                           {2.5f, 2, 3},     {3.5f, 4, 4},  {5.0f, 4, 6}};
  for (auto& t : ties) {
    EXPECT_EQ(fp4_e2m1_to_f32(f32_to_fp4_e2m1_rne(t[0])), t[1]) << t[0];
    EXPECT_EQ(fp4_e2m1_to_f32(f32_to_fp4_e2m1_half_away(t[0])), t[2]) << t[0];
    EXPECT_EQ(fp4_e2m1_to_f32(f32_to_fp4_e2m1_rne(-t[0])), -t[1]) << t[0];
  }
  EXPECT_EQ(f32_to_fp4_e2m1_rne(100.0f), 7);
  EXPECT_EQ(f32_to_fp4_e2m1_rne(-INFINITY), 15);
  EXPECT_EQ(f32_to_fp4_e2m1_rne(0.2f), 0);
  EXPECT_EQ(f32_to_fp4_e2m1_rne(5.01f), 7);
}

// The nearest E4M3 value by exhaustive search, ties to the even code: an independent oracle.
uint8_t fp8_by_search(float x) {
  const float ax = std::min(std::fabs(x), kFp8E4M3Max);
  int best = 0;
  for (int c = 1; c < 0x7F; ++c) {
    const float d = std::fabs(fp8_e4m3_to_f32(uint8_t(c)) - ax);
    const float bd = std::fabs(fp8_e4m3_to_f32(uint8_t(best)) - ax);
    if (d < bd || (d == bd && (c & 1) == 0)) best = c;
  }
  return uint8_t(best | (std::signbit(x) ? 0x80 : 0));
}

TEST(QuantTypes, Fp8E4M3RoundTripSaturationNan) {
  for (int c = 0; c < 256; ++c) {
    const float v = fp8_e4m3_to_f32(uint8_t(c));
    if (std::isnan(v)) continue;
    EXPECT_EQ(f32_to_fp8_e4m3_rne(v), c) << c;
    EXPECT_EQ(f32_to_fp8_e4m3_half_away(v), c) << c;
  }
  EXPECT_EQ(f32_to_fp8_e4m3_rne(464.0f), 0x7E);  // tie between 448 and (absent) 480: saturate
  EXPECT_EQ(f32_to_fp8_e4m3_rne(1e9f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3_rne(INFINITY), 0x7E);  // as torch CPU
  EXPECT_EQ(f32_to_fp8_e4m3_rne(-1e9f), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3_rne(NAN) & 0x7F, 0x7F);
  EXPECT_EQ(f32_to_fp8_e4m3_rne(std::ldexp(1.0f, -10)), 0);  // half the min subnormal: even
  EXPECT_EQ(f32_to_fp8_e4m3_half_away(std::ldexp(1.0f, -10)), 1);
  EXPECT_EQ(f32_to_fp8_e4m3_rne(std::ldexp(3.0f, -11)), 1);
  // 1 + 1/16 is a tie between 1 (code 0x38) and 1.125 (0x39).
  EXPECT_EQ(f32_to_fp8_e4m3_rne(1.0625f), 0x38);
  EXPECT_EQ(f32_to_fp8_e4m3_half_away(1.0625f), 0x39);
  EXPECT_EQ(f32_to_fp8_e4m3_rne(15.5f), 0x58);  // tie 15|16 goes to even 16, next binade
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> ex(-14, 10);
  for (int i = 0; i < 20000; ++i) {
    const float x = std::ldexp(mant(rng), ex(rng));
    ASSERT_EQ(f32_to_fp8_e4m3_rne(x), fp8_by_search(x)) << x;
  }
}

TEST(QuantTypes, IntRounding) {
  EXPECT_EQ(round_half_even(2.5f), 2.0f);
  EXPECT_EQ(round_half_even(-2.5f), -2.0f);
  EXPECT_EQ(round_half_even(3.5f), 4.0f);
  EXPECT_EQ(round_half_away(2.5f), 3.0f);
  EXPECT_EQ(round_half_away(-2.5f), -3.0f);
}

}  // namespace
}  // namespace lowbit
