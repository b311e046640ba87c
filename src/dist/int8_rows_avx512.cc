// AVX-512 row kernels, bit-identical to int8_rows_portable.cc: vdivps is correctly rounded like
// the scalar x / s, vcvtps2dq rounds half to even like std::nearbyint, and the clamp happens
// before the conversion. max|x| is exact in any order. Built with the AVX-512 flags and
// -ffp-contract=off (no vfmadd for acc + q·s).
// GCC 12's AVX-512 headers initialise "undefined" operands from themselves; never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "dist/int8_rows.h"

namespace lowbit::dist {

namespace {

inline __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? 0 : __mmask16((1u << n) - 1); }

void quantize(const float* x, int64_t ld, int64_t m, int64_t h, int8_t* q, float* scale) {
  const __m512 lo = _mm512_set1_ps(-kInt8Max), hi = _mm512_set1_ps(kInt8Max);
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * ld;
    int8_t* out = q + i * h;
    __m512 amax = _mm512_setzero_ps();
    for (int64_t j = 0; j < h; j += 16)
      amax = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(lanes(h - j), row + j)), amax);
    const float s = _mm512_reduce_max_ps(amax) / kInt8Max;
    scale[i] = s;
    if (s == 0.0f) {
      for (int64_t j = 0; j < h; j += 16) _mm_mask_storeu_epi8(out + j, lanes(h - j), _mm_setzero_si128());
      continue;
    }
    const __m512 vs = _mm512_set1_ps(s);
    for (int64_t j = 0; j < h; j += 16) {
      const __mmask16 k = lanes(h - j);
      const __m512 v = _mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_div_ps(_mm512_maskz_loadu_ps(k, row + j), vs)));
      _mm_mask_storeu_epi8(out + j, k, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
    }
  }
}

// Row by row, 64 columns at a time: the ranks' terms are added in rank order in registers and
// the sum is stored once (the portable set makes p passes over the row; same roundings).
void dequant_sum(const int8_t* const* q, const float* const* scale, int ranks, int64_t m, int64_t h, float* out,
                 int64_t ld) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = out + i * ld;
    for (int64_t j0 = 0; j0 < h; j0 += 64) {
      __m512 acc[4];
      for (int r = 0; r < ranks; ++r) {
        const int8_t* codes = q[r] + i * h;
        const __m512 vs = _mm512_set1_ps(scale[r][i]);
        for (int u = 0; u < 4; ++u) {
          const int64_t j = j0 + 16 * u;
          const __m128i c8 = _mm_maskz_loadu_epi8(lanes(h - j), codes + j);
          const __m512 d = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c8)), vs);
          acc[u] = r == 0 ? d : _mm512_add_ps(acc[u], d);
        }
      }
      for (int u = 0; u < 4; ++u) _mm512_mask_storeu_ps(row + j0 + 16 * u, lanes(h - j0 - 16 * u), acc[u]);
    }
  }
}

}  // namespace

const Int8RowKernels kInt8RowsAvx512 = {"int8_rows_avx512", Isa::Avx512, quantize, dequant_sum};

}  // namespace lowbit::dist
