// The portable activation quantizers: the reference quantizers row by row (so bit-identity
// holds by construction), then K padding and group sums.
#include <algorithm>

#include <cmath>

#include "core/quant_types.h"
#include "kernels/fp_act_quant.h"
#include "kernels/quantize_rows.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {

namespace {

void pad_and_sum(const ActQuantRows& r, int64_t i) {
  int8_t* q = r.q + i * r.ldq;
  std::fill(q + r.k, q + r.ldq, int8_t(0));
  if (!r.group_sum) return;
  const int64_t group = r.group ? r.group : r.ldq, groups = act_groups(r.ldq, r.group);
  for (int64_t g = 0; g < groups; ++g) {
    int32_t s = 0;
    for (int64_t j = g * group; j < std::min(r.ldq, (g + 1) * group); ++j) s += q[j];
    r.group_sum[i * groups + g] = s;
  }
}

void per_token_sym(const ActQuantRows& r, int bits, float* scale) {
  for (int64_t i = 0; i < r.m; ++i) {
    quantize_act_per_token_sym(r.x + i * r.ldx, 1, r.k, bits, r.q + i * r.ldq, scale + i);
    pad_and_sum(r, i);
  }
}

void static_int8(const ActQuantRows& r, float scale, float zero, StaticActRule rule) {
  for (int64_t i = 0; i < r.m; ++i) {
    const float* x = r.x + i * r.ldx;
    int8_t* q = r.q + i * r.ldq;
    if (rule == StaticActRule::MulOffset) {
      quantize_act_static_asym(x, r.k, scale, zero, q);
    } else {
      for (int64_t j = 0; j < r.k; ++j) q[j] = int8_t(round_half_even(clampf(x[j] / scale + zero, -128.0f, 127.0f)));
    }
    pad_and_sum(r, i);
  }
}

bool mx_row(const float* x, int64_t k, bool fp4, uint8_t* codes, uint8_t* e8m0) {
  for (int64_t i = 0; i < k; ++i)
    if (!std::isfinite(x[i])) return false;
  for (int64_t b = 0; b < k / kMxBlock; ++b) e8m0[b] = quantize_mx_block(x + b * kMxBlock, fp4, codes + b * kMxBlock);
  return true;
}

void fp8_groups(const float* x, int64_t k, int64_t group, uint8_t* codes, float* scales) {
  for (int64_t g = 0, b = 0; b < k; ++g, b += group) {
    const int64_t e = std::min(k, b + group);
    float amax = 0.0f;
    for (int64_t i = b; i < e; ++i) {
      const float f = std::fabs(x[i]);
      amax = amax < f ? f : amax;
    }
    const float s = amax / kFp8E4M3Max;
    scales[g] = s;
    if (s == 0.0f) {
      std::fill(codes + b, codes + e, uint8_t(0));
      continue;
    }
    for (int64_t i = b; i < e; ++i) codes[i] = encode_e4m3(x[i] / s);
  }
}

void fp8_static(const float* x, int64_t k, float s, uint8_t* codes) {
  for (int64_t i = 0; i < k; ++i) codes[i] = encode_e4m3(x[i] / s);  // the encoder saturates at ±448
}

}  // namespace

const ActQuantKernels kActQuantPortable = {"act_quant_portable", Isa::Scalar, per_token_sym, static_int8, mx_row,
                                           fp8_groups, fp8_static};

}  // namespace lowbit
