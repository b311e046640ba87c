// Scalar encodings used by quantized checkpoints: E8M0 block scales, FP4 E2M1 and FP8 E4M3
// element codes, and the integer rounding modes the writers use. Decoders are exact; encoders
// state their rounding and overflow rule in the name, because writers differ (see
// shared/spec/quantization.md, "Microscaling"): our own quantizers round to nearest even and
// saturate (OCP / CANN npu_dynamic_mx_quant; torch's .to(float8_e4m3fn) on CPU also saturates,
// checked with torch 2.14), msmodelslim's writers round half away from zero.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace lowbit {

// ---- E8M0: a bare biased exponent, value 2^(u-127); 0xFF is NaN.
inline constexpr uint8_t kE8M0Nan = 0xFF;
inline constexpr int kE8M0Bias = 127;

// 2^(u-127) exactly (u = 0 gives the fp32 subnormal 2^-127); NaN for 0xFF.
inline float e8m0_to_f32(uint8_t u) {
  return u == kE8M0Nan ? NAN : std::ldexp(1.0f, int(u) - kE8M0Bias);
}
// The unbiased exponent u-127; throws lowbit::Error naming `tensor` for 0xFF, which is a load
// error in a checkpoint (it is NaN, and a NaN scale poisons the whole block silently).
int e8m0_exponent_checked(uint8_t u, std::string_view tensor);
// Throws lowbit::Error naming `tensor` and the first offending index if any scale is 0xFF.
void check_e8m0_scales(const uint8_t* scales, int64_t n, std::string_view tensor);
// Biased code for exponent e, clamped to the finite range [-127, 127] (codes 0..254).
inline uint8_t e8m0_from_exponent(int e) {
  const int u = e + kE8M0Bias;
  return uint8_t(u < 0 ? 0 : u > 254 ? 254 : u);
}
// floor(log2 |x|) exactly, via frexp rather than std::log2 (which may round a value just below
// a power of two up to the integer). x must be finite and nonzero.
inline int floor_log2(float x) {
  int e;
  std::frexp(x, &e);  // |x| = m·2^e, m in [0.5, 1)
  return e - 1;
}

// ---- FP4 E2M1: code = sign<<3 | index into kFp4Values. No NaN, no infinity, max 6.
inline constexpr float kFp4Values[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
inline constexpr float kFp4Max = 6.0f;

inline float fp4_e2m1_to_f32(uint8_t code) {
  const float v = kFp4Values[code & 7];
  return (code & 8) ? -v : v;
}
// Nearest E2M1 value, ties to even (0.25→0, 0.75→1, 2.5→2, 5→4), |x| > 6 saturates to 6.
// NaN encodes as +0 (E2M1 has no NaN; quantizers never pass one). -0 keeps its sign bit.
uint8_t f32_to_fp4_e2m1_rne(float x);
// As above but ties away from zero (0.25→0.5, 2.5→3, 5→6): msmodelslim's MXFP4 writer.
uint8_t f32_to_fp4_e2m1_half_away(float x);

// ---- FP8 E4M3 ("fn"): bias 7, no infinity, max 448, S.1111.111 is NaN. Decoder in dtype.h.
inline constexpr float kFp8E4M3Max = 448.0f;
inline constexpr uint8_t kFp8E4M3Nan = 0x7F;

// Round to nearest even (subnormals included, step 2^-9), saturate |x| > 448 (and ±inf) to
// ±448, NaN → 0x7F with x's sign. Bit-identical to torch CPU's x.to(torch.float8_e4m3fn).
uint8_t f32_to_fp8_e4m3_rne(float x);
// Ties away from zero, same saturation: msmodelslim's MXFP8 writer.
uint8_t f32_to_fp8_e4m3_half_away(float x);

// ---- Integer rounding. round_half_even is torch.round / numpy.round / std::nearbyint under
// the default FE_TONEAREST mode (we never change the mode); round_half_away is std::round.
inline float round_half_even(float x) { return std::nearbyint(x); }
inline float round_half_away(float x) { return std::round(x); }
inline float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

}  // namespace lowbit
