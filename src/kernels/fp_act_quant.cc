#include "kernels/fp_act_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/quant_types.h"
#include "kernels/quantize_rows.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {

namespace {

inline uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}
inline float from_bits(uint32_t b) {
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}

constexpr uint32_t kNanAbove = 0x7F800000u;

}  // namespace

// Round to nearest even on the bit pattern: normal values keep 3 (E4M3) or 1 (E2M1) mantissa
// bits by adding half an ulp minus one plus the kept lsb, which carries into the exponent
// exactly when the value rounds up to the next binade. Below the smallest normal the grid is
// uniform, so adding a power of two whose ulp is the grid step (2^14 for E4M3's 2^-9, 2^22
// for E2M1's 0.5) rounds in the FPU, and the integer difference of the bit patterns is the
// code (it reaches the first normal code exactly when the value rounds up into it).
uint8_t encode_e4m3(float x) {
  const uint32_t u = bits_of(x), sign = (u >> 24) & 0x80;
  uint32_t a = u & 0x7FFFFFFFu;
  const bool nan = a > kNanAbove;
  a = std::min(a, bits_of(kFp8E4M3Max));  // saturate, +inf included
  const uint32_t sub = bits_of(from_bits(a) + 16384.0f) - bits_of(16384.0f);
  const uint32_t nor = ((a + 0x7FFFFu + ((a >> 20) & 1)) >> 20) - (120u << 3);
  const uint32_t code = a < 0x3C800000u ? sub : nor;  // 2^-6
  return uint8_t(nan ? (sign | kFp8E4M3Nan) : (sign | code));
}

uint8_t encode_e2m1(float x) {
  const uint32_t u = bits_of(x), sign = (u >> 28) & 8;
  uint32_t a = u & 0x7FFFFFFFu;
  const bool nan = a > kNanAbove;
  a = std::min(a, bits_of(kFp4Max));
  const uint32_t sub = bits_of(from_bits(a) + 4194304.0f) - bits_of(4194304.0f);
  const uint32_t nor = ((a + 0x1FFFFFu + ((a >> 22) & 1)) >> 22) - (126u << 1);
  const uint32_t code = a < 0x3F800000u ? sub : nor;  // 1.0
  return uint8_t(nan ? 0 : (sign | code));
}

uint8_t quantize_mx_block(const float* xb, bool fp4, uint8_t* cb) {
  float amax = 0.0f;
  for (int64_t i = 0; i < kMxBlock; ++i) {
    const float f = std::fabs(xb[i]);
    amax = amax < f ? f : amax;  // std::max's order: a NaN never becomes the maximum
  }
  const uint8_t ue = e8m0_from_exponent(mx_block_exponent(amax, fp4 ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp));
  if (amax == 0.0f) {
    std::fill(cb, cb + kMxBlock, uint8_t(0));
    return ue;
  }
  const float inv = std::ldexp(1.0f, -(int(ue) - kE8M0Bias));  // x·2^-e: one rounding, as ldexp
  if (fp4)
    for (int64_t i = 0; i < kMxBlock; ++i) cb[i] = encode_e2m1(xb[i] * inv);
  else
    for (int64_t i = 0; i < kMxBlock; ++i) cb[i] = encode_e4m3(xb[i] * inv);
  return ue;
}

void quantize_mx_row(const float* x, int64_t k, bool fp4, uint8_t* codes, float* scales) {
  // The CPU's row kernel, in chunks whose E8M0 bytes fit on the stack; a chunk holding a NaN
  // or an infinity takes the block loop, which behaves as the reference does on them.
  constexpr int64_t kChunk = 64 * kMxBlock;
  uint8_t e8m0[kChunk / kMxBlock];
  for (int64_t c = 0; c < k; c += kChunk) {
    const int64_t n = std::min(kChunk, k - c), blocks = n / kMxBlock;
    if (act_quant_kernels().mx_row(x + c, n, fp4, codes + c, e8m0)) {
      for (int64_t b = 0; b < blocks; ++b) scales[c / kMxBlock + b] = e8m0_to_f32(e8m0[b]);
      continue;
    }
    for (int64_t b = c / kMxBlock; b < (c + n) / kMxBlock; ++b)
      scales[b] = e8m0_to_f32(quantize_mx_block(x + b * kMxBlock, fp4, codes + b * kMxBlock));
  }
}

void quantize_fp8_row_groups(const float* x, int64_t k, int64_t group, uint8_t* codes, float* scales) {
  act_quant_kernels().fp8_groups(x, k, group, codes, scales);
}

void quantize_fp8_row_static(const float* x, int64_t k, float s, uint8_t* codes) {
  act_quant_kernels().fp8_static(x, k, s, codes);
}

}  // namespace lowbit
