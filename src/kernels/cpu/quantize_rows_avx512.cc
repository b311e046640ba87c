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
#include <bit>
#include <cmath>

#include "core/quant_types.h"
#include "kernels/quantize_rows.h"
#include "kernels/reference/quantize_ref.h"

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

// The element encoders of fp_act_quant.cc (encode_e4m3, encode_e2m1), 16 lanes at a time: round
// to nearest even on the bit pattern for normals (keep_bits mantissa bits), through an FPU add
// of a power of two whose ulp is the subnormal step for values below the smallest normal.
struct E4M3Bits {
  static constexpr int kSignShift = 24, kDrop = 20;  // sign → bit 7; fp32 mantissa bits dropped
  static constexpr uint32_t kSignBit = 0x80, kBias = 120u << 3, kMinNormal = 0x3C800000u;  // 2^-6
  static constexpr float kMax = kFp8E4M3Max, kSubnormalAdd = 16384.0f;
  static constexpr bool kNanCode = true;  // NaN → 0x7F | sign (E2M1 has none: +0)
};
struct E2M1Bits {
  static constexpr int kSignShift = 28, kDrop = 22;
  static constexpr uint32_t kSignBit = 8, kBias = 126u << 1, kMinNormal = 0x3F800000u;  // 1.0
  static constexpr float kMax = kFp4Max, kSubnormalAdd = 4194304.0f;
  static constexpr bool kNanCode = false;
};
inline __m512i u32(uint32_t v) { return _mm512_set1_epi32(int(v)); }
template <class F>
inline __m512i encode(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, F::kSignShift), u32(F::kSignBit));
  __m512i a = _mm512_and_si512(u, u32(0x7FFFFFFFu));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(a, u32(0x7F800000u));
  a = _mm512_min_epu32(a, u32(std::bit_cast<uint32_t>(F::kMax)));
  const __m512i sub = _mm512_sub_epi32(
      _mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(F::kSubnormalAdd))),
      u32(std::bit_cast<uint32_t>(F::kSubnormalAdd)));
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(a, F::kDrop), u32(1));
  const __m512i half = u32((1u << (F::kDrop - 1)) - 1);
  const __m512i nor =
      _mm512_sub_epi32(_mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(a, half), odd), F::kDrop), u32(F::kBias));
  const __m512i code = _mm512_or_si512(sign, _mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(a, u32(F::kMinNormal)), nor, sub));
  if constexpr (F::kNanCode) return _mm512_mask_blend_epi32(nan, code, _mm512_or_si512(sign, u32(kFp8E4M3Nan)));
  return _mm512_maskz_mov_epi32(__mmask16(~nan), code);
}
inline __m512i encode_e4m3(__m512 v) { return encode<E4M3Bits>(v); }
inline __m512i encode_e2m1(__m512 v) { return encode<E2M1Bits>(v); }

// quantize_mx_block per 32: the block's largest |x| from the bit patterns (finite non-negative
// floats order as their bits), the same exponent rule, then x·2^-e (one rounding, as ldexp).
bool mx_row(const float* x, int64_t k, bool fp4, uint8_t* codes, uint8_t* e8m0) {
  const __m512i abs = u32(0x7FFFFFFFu), inf = u32(0x7F800000u);
  const MxElem elem = fp4 ? MxElem::E2M1 : MxElem::E4M3;
  for (int64_t b = 0; b < k / kMxBlock; ++b) {
    const float* xb = x + b * kMxBlock;
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const __m512i a0 = _mm512_and_si512(_mm512_castps_si512(v0), abs), a1 = _mm512_and_si512(_mm512_castps_si512(v1), abs);
    if (_mm512_cmpge_epu32_mask(a0, inf) | _mm512_cmpge_epu32_mask(a1, inf)) return false;
    const float amax = std::bit_cast<float>(_mm512_reduce_max_epu32(_mm512_max_epu32(a0, a1)));
    const uint8_t ue = e8m0_from_exponent(mx_block_exponent(amax, elem, MxScaleRule::Ocp));
    e8m0[b] = ue;
    uint8_t* cb = codes + b * kMxBlock;
    if (amax == 0.0f) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(cb), _mm256_setzero_si256());
      continue;
    }
    const __m512 inv = _mm512_set1_ps(std::ldexp(1.0f, -(int(ue) - kE8M0Bias)));
    const __m512 s0 = _mm512_mul_ps(v0, inv), s1 = _mm512_mul_ps(v1, inv);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(cb), _mm512_cvtepi32_epi8(fp4 ? encode_e2m1(s0) : encode_e4m3(s0)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(cb + 16), _mm512_cvtepi32_epi8(fp4 ? encode_e2m1(s1) : encode_e4m3(s1)));
  }
  return true;
}

// E4M3(x / s) over n values (the encoder saturates at ±448; x / s is vdivps, correctly rounded
// like the scalar division).
inline void encode_e4m3_div(const float* x, int64_t n, float s, uint8_t* codes) {
  const __m512 vs = _mm512_set1_ps(s);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = first_lanes(n - j);
    _mm_mask_storeu_epi8(codes + j, m, _mm512_cvtepi32_epi8(encode_e4m3(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + j), vs))));
  }
}

void fp8_groups(const float* x, int64_t k, int64_t group, uint8_t* codes, float* scales) {
  for (int64_t g = 0, b = 0; b < k; ++g, b += group) {
    const int64_t n = std::min(k, b + group) - b;
    // max(|x|, amax) in this operand order keeps amax when x is NaN, as the scalar loop does.
    __m512 amax = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16)
      amax = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(first_lanes(n - j), x + b + j)), amax);
    const float s = _mm512_reduce_max_ps(amax) / kFp8E4M3Max;
    scales[g] = s;
    if (s == 0.0f)
      std::fill(codes + b, codes + b + n, uint8_t(0));
    else
      encode_e4m3_div(x + b, n, s, codes + b);
  }
}

void fp8_static(const float* x, int64_t k, float s, uint8_t* codes) { encode_e4m3_div(x, k, s, codes); }

}  // namespace

const ActQuantKernels kActQuantAvx512 = {"act_quant_avx512", Isa::Avx512, per_token_sym, static_int8, mx_row,
                                         fp8_groups, fp8_static};

}  // namespace lowbit
