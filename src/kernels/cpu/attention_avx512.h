// AVX-512 helpers shared by the attention tiles (attention_avx512.cc: decode,
// attention_prefill_avx512.cc: prefill). Included only by translation units compiled with the
// AVX-512 flags.
//
// Widening without shuffles: a 512-bit load holds 32 BF16 values as 16 pairs; `x << 16` gives
// the even elements as fp32, `x & 0xffff0000` the odd ones, so q (and the output accumulators)
// are kept in that even/odd order per 32-element chunk and restored at the end. FP8 E4M3 codes
// become FP16 bits by two shifts and a mask (value · 2^-8, folded into the row scale) and
// then fp32 through vcvtph2ps, which handles the subnormals exactly.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace lowbit::attention_avx512 {

// 2^x for x ≤ 0 (0 below −126 and for −inf), exactly 1 at 0: x = n + r with n the
// nearest integer, 2^r by its degree-7 Taylor polynomial (truncation < 6e-9, below half an
// ulp), 2^n by scalef.
inline __m512 exp2_nonpositive(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-126.0f);
  const __mmask16 ok = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
  x = _mm512_max_ps(x, lo);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.5252733804059840e-5f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.5403530393381610e-4f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3333558146428443e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.6181291076284772e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.5504108664821580e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.4022650695910071e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.9314718055994531e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps(ok, _mm512_scalef_ps(p, n));
}

// 32 elements of a cache row as two fp32 vectors (`a`, `b`); lanes outside `mask` read as 0.
// Order: BF16 even/odd elements, F32 and FP8 elements 0..15 / 16..31 (FP8 values · 2^-8).
template <DType DT>
struct Row32;

template <>
struct Row32<DType::F32> {
  using Elem = float;
  static constexpr bool kEvenOdd = false;
  static inline void load(const float* p, __mmask32 mask, __m512& a, __m512& b) {
    a = _mm512_maskz_loadu_ps(__mmask16(mask), p);
    b = _mm512_maskz_loadu_ps(__mmask16(mask >> 16), p + 16);
  }
};

template <>
struct Row32<DType::BF16> {
  using Elem = uint16_t;
  static constexpr bool kEvenOdd = true;
  static inline void load(const uint16_t* p, __mmask32 mask, __m512& a, __m512& b) {
    const __m512i raw = _mm512_maskz_loadu_epi16(mask, p);
    a = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
    b = _mm512_castsi512_ps(_mm512_and_si512(raw, _mm512_set1_epi32(int(0xffff0000u))));
  }
};

template <>
struct Row32<DType::F8_E4M3> {
  using Elem = uint8_t;
  static constexpr bool kEvenOdd = false;
  static inline void load(const uint8_t* p, __mmask32 mask, __m512& a, __m512& b) {
    // S EEEE MMM → S 0 EEEE MMM 0000000: an FP16 of value 2^-8 · e4m3 (exponent bias 15 vs 7).
    __m512i w = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mask, p));
    w = _mm512_srai_epi16(_mm512_slli_epi16(w, 8), 1);
    w = _mm512_and_si512(w, _mm512_set1_epi16(int16_t(0xbfff)));
    a = _mm512_cvtph_ps(_mm512_castsi512_si256(w));
    b = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(w, 1));
  }
};

// Multiplier that turns a decoded FP8 element back into its value: the row scale times 2^8.
constexpr float kFp8Unbias = 256.0f;

// 64-byte aligned view of n floats of a grow-only scratch vector (full-line loads and stores).
inline float* aligned(std::vector<float>& v, int64_t n) {
  if (int64_t(v.size()) < n + 16) v.resize(size_t(n + 16));
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// Lane masks for element e of a 32-element chunk with `n` valid elements.
inline __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xffff) : n <= 0 ? 0 : __mmask16((1u << n) - 1); }

// fp32 q row (32-element chunks) into Row32's order: a = even / b = odd elements for BF16.
template <bool kEvenOdd>
inline void to_row_order(const float* src, int64_t n, float* dst) {
  const __m512 lo = _mm512_maskz_loadu_ps(lanes(n), src), hi = _mm512_maskz_loadu_ps(lanes(n - 16), src + 16);
  if (kEvenOdd) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    _mm512_store_ps(dst, _mm512_permutex2var_ps(lo, even, hi));
    _mm512_store_ps(dst + 16, _mm512_permutex2var_ps(lo, odd, hi));
  } else {
    _mm512_store_ps(dst, lo);
    _mm512_store_ps(dst + 16, hi);
  }
}

// The inverse, times `mul`, writing n ≤ 32 elements.
template <bool kEvenOdd>
inline void from_row_order(const float* src, float mul, int64_t n, float* dst) {
  __m512 a = _mm512_load_ps(src), b = _mm512_load_ps(src + 16);
  if (kEvenOdd) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512 x = _mm512_permutex2var_ps(a, lo, b), y = _mm512_permutex2var_ps(a, hi, b);
    a = x;
    b = y;
  }
  const __m512 m = _mm512_set1_ps(mul);
  _mm512_mask_storeu_ps(dst, lanes(n), _mm512_mul_ps(a, m));
  _mm512_mask_storeu_ps(dst + 16, lanes(n - 16), _mm512_mul_ps(b, m));
}

}  // namespace lowbit::attention_avx512
