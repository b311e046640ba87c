// AVX-512 activation quantizers, bit-identical to the reference ones: the scale is the same
// scalar division, codes use true division (vdivps is correctly rounded, like the scalar
// x / s), the clamp keeps the reference's NaN behaviour (operand order of vmaxps/vminps) and
// vcvtps2dq rounds half to even as std::nearbyint does. Built with -ffp-contract=off so the
// msmodelslim rule's x·(1/s) + offset stays two roundings.
// GCC 12's AVX-512 headers initialise their "undefined" operands from themselves (__Y = __Y),
// which -Wmaybe-uninitialized reports at every inlined use; those values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>

#include "kernels/quantize_rows.h"

namespace lowbit {

namespace {

inline __mmask16 first_lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? 0 : __mmask16((1u << n) - 1); }

// Runs quantize16(x chunk) → int32 codes over row i group by group, storing bytes and sums.
template <class Quantize16>
inline void quantize_row(const ActQuantRows& r, int64_t i, Quantize16 quantize16) {
  const float* x = r.x + i * r.ldx;
  int8_t* q = r.q + i * r.ldq;
  const int64_t group = r.group ? r.group : r.ldq, groups = act_groups(r.ldq, r.group);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t e = std::min(r.ldq, (g + 1) * group);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t j = g * group; j < e; j += 16) {
      const __mmask16 store = first_lanes(e - j), load = first_lanes(std::min(e, r.k) - j);
      const __m512i c = quantize16(_mm512_maskz_loadu_ps(load, x + j));
      // Codes past K come from x = 0 and are 0 for every rule but an offset one: force them.
      const __m128i b = _mm512_maskz_cvtepi32_epi8(load, c);
      _mm_mask_storeu_epi8(q + j, store, b);
      sum = _mm512_add_epi32(sum, _mm512_cvtepi8_epi32(b));
    }
    if (r.group_sum) r.group_sum[i * groups + g] = _mm512_reduce_add_epi32(sum);
  }
}

// clamp(v, lo, hi) with NaN passing through (clampf's comparisons are false for NaN), then
// round half to even; NaN becomes 0x80000000, whose low byte 0 is what the scalar
// float → int8 conversion yields too.
inline __m512i clamp_round(__m512 v, __m512 lo, __m512 hi) {
  return _mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_max_ps(lo, v)));
}

void per_token_sym(const ActQuantRows& r, int bits, float* scale) {
  const float qmax = float((1 << (bits - 1)) - 1);
  const __m512 lo = _mm512_set1_ps(-qmax - 1), hi = _mm512_set1_ps(qmax);
  for (int64_t i = 0; i < r.m; ++i) {
    const float* x = r.x + i * r.ldx;
    // max(|x|, amax) in this operand order keeps amax when x is NaN, as std::max(amax, |x|).
    __m512 amax = _mm512_setzero_ps();
    for (int64_t j = 0; j < r.k; j += 16)
      amax = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(first_lanes(r.k - j), x + j)), amax);
    const float s = _mm512_reduce_max_ps(amax) / qmax;
    scale[i] = s;
    if (s == 0.0f) {
      quantize_row(r, i, [](__m512) { return _mm512_setzero_si512(); });
    } else {
      const __m512 vs = _mm512_set1_ps(s);
      quantize_row(r, i, [&](__m512 v) { return clamp_round(_mm512_div_ps(v, vs), lo, hi); });
    }
  }
}

void static_int8(const ActQuantRows& r, float scale, float zero, StaticActRule rule) {
  const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f), z = _mm512_set1_ps(zero);
  if (rule == StaticActRule::MulOffset) {
    const __m512 inv = _mm512_set1_ps(1.0f / scale);
    for (int64_t i = 0; i < r.m; ++i)
      quantize_row(r, i, [&](__m512 v) { return clamp_round(_mm512_add_ps(_mm512_mul_ps(v, inv), z), lo, hi); });
  } else {
    const __m512 s = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < r.m; ++i)
      quantize_row(r, i, [&](__m512 v) { return clamp_round(_mm512_add_ps(_mm512_div_ps(v, s), z), lo, hi); });
  }
}

}  // namespace

const ActQuantKernels kActQuantAvx512 = {"act_quant_avx512", Isa::Avx512, per_token_sym, static_int8};

}  // namespace lowbit
