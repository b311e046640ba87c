#include "core/quant_types.h"

#include "core/error.h"

namespace lowbit {

int e8m0_exponent_checked(uint8_t u, std::string_view tensor) {
  if (u == kE8M0Nan) fail("{}: E8M0 scale 0xFF is NaN; the checkpoint is corrupt", tensor);
  return int(u) - kE8M0Bias;
}

void check_e8m0_scales(const uint8_t* scales, int64_t n, std::string_view tensor) {
  for (int64_t i = 0; i < n; ++i)
    if (scales[i] == kE8M0Nan)
      fail("{}: E8M0 scale 0xFF (NaN) at flat index {}; the checkpoint is corrupt", tensor, i);
}

namespace {

// Both small float formats share one recipe: find the quantization step of |x|'s binade
// (the subnormal step below the smallest normal), round |x|/step to an integer, multiply
// back. Steps are powers of two, so the division and multiplication are exact and the only
// rounding is the integer one; a value that rounds up into the next binade lands exactly on
// that binade's first value, which is representable.
template <bool kHalfAway>
float round_to_grid(float ax, int mant_bits, int min_normal_exp, float max) {
  if (!(ax < max)) return max;  // also catches +inf
  if (ax == 0.0f) return 0.0f;
  const int e = ax < std::ldexp(1.0f, min_normal_exp) ? min_normal_exp : floor_log2(ax);
  const int step_exp = e - mant_bits;
  const float units = std::ldexp(ax, -step_exp);
  const float r = kHalfAway ? round_half_away(units) : round_half_even(units);
  const float v = std::ldexp(r, step_exp);
  return v > max ? max : v;
}

template <bool kHalfAway>
uint8_t encode_fp4(float x) {
  if (std::isnan(x)) return 0;
  const uint8_t sign = std::signbit(x) ? 8 : 0;
  const float v = round_to_grid<kHalfAway>(std::fabs(x), 1, 0, kFp4Max);
  // Grid values 0, .5, 1, 1.5 → index 2v; 2, 3 → v + 2; 4 → 6; 6 → 7.
  const uint8_t index = v < 2.0f    ? uint8_t(v * 2.0f)
                        : v < 4.0f  ? uint8_t(v + 2.0f)
                        : v == 4.0f ? 6
                                    : 7;
  return sign | index;
}

template <bool kHalfAway>
uint8_t encode_fp8_e4m3(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  if (std::isnan(x)) return sign | kFp8E4M3Nan;
  const float v = round_to_grid<kHalfAway>(std::fabs(x), 3, -6, kFp8E4M3Max);
  if (v < std::ldexp(1.0f, -6)) return sign | uint8_t(std::ldexp(v, 9));  // subnormal: m·2^-9
  const int e = floor_log2(v);
  const int mant = int(std::ldexp(v, 3 - e)) - 8;  // v = (8 + mant)·2^(e-3)
  return sign | uint8_t((e + 7) << 3) | uint8_t(mant);
}

}  // namespace

uint8_t f32_to_fp4_e2m1_rne(float x) { return encode_fp4<false>(x); }
uint8_t f32_to_fp4_e2m1_half_away(float x) { return encode_fp4<true>(x); }
uint8_t f32_to_fp8_e4m3_rne(float x) { return encode_fp8_e4m3<false>(x); }
uint8_t f32_to_fp8_e4m3_half_away(float x) { return encode_fp8_e4m3<true>(x); }

}  // namespace lowbit
