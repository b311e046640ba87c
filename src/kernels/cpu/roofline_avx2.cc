// Roofline loops for AVX2 machines (or LOWBIT_MAX_ISA=avx2): 256-bit streaming read and the
// ymm FMA peak. Compiled with AVX2 flags only.
#include <immintrin.h>

#include "kernels/roofline.h"

namespace lowbit::roofline {

uint64_t read_avx2(const uint8_t* p, size_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < bytes; i += 256) {
    a0 = _mm256_xor_si256(a0, _mm256_xor_si256(_mm256_load_si256((const __m256i*)(p + i)),
                                               _mm256_load_si256((const __m256i*)(p + i + 32))));
    a1 = _mm256_xor_si256(a1, _mm256_xor_si256(_mm256_load_si256((const __m256i*)(p + i + 64)),
                                               _mm256_load_si256((const __m256i*)(p + i + 96))));
    a2 = _mm256_xor_si256(a2, _mm256_xor_si256(_mm256_load_si256((const __m256i*)(p + i + 128)),
                                               _mm256_load_si256((const __m256i*)(p + i + 160))));
    a3 = _mm256_xor_si256(a3, _mm256_xor_si256(_mm256_load_si256((const __m256i*)(p + i + 192)),
                                               _mm256_load_si256((const __m256i*)(p + i + 224))));
  }
  const __m256i x = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256((__m256i*)lanes, x);
  return lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
}

// 12 of the 16 ymm registers as accumulators (≥ latency 4 × 2 ports); see the AVX-512 file
// for why acc·a + b with a < 1.
double fp32_fma_avx2(int64_t iters, float* sink) {
  constexpr int kAcc = 12;
  __m256 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_set1_ps(float(j));
  const __m256 a = _mm256_set1_ps(*sink * 0.0f + 0.999f), b = _mm256_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm256_add_ps(s, acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  for (float v : lanes) *sink += v;
  return double(iters) * kAcc * 8 * 2;
}

}  // namespace lowbit::roofline
