// AVX2 float GEMM, the fallback for CPUs without AVX-512: same contract as the AVX-512
// kernel. 16 ymm registers allow a 2 × 4 tile (8 accumulators + 4 weights + 1 activation);
// the K remainder (< 8) is accumulated in scalar, in the same order as the reference.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "kernels/float_gemm.h"

namespace lowbit {

namespace {

constexpr int kMr = 2, kNr = 4;
constexpr int64_t kMChunk = 64;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct LoadBf16 {
  static __m256 full(const void* w, int64_t i) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float one(const void* w, int64_t i) {
    uint16_t v;
    std::memcpy(&v, static_cast<const uint16_t*>(w) + i, 2);
    return bf16_to_f32(v);
  }
};
struct LoadF16 {
  static __m256 full(const void* w, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
  }
  static float one(const void* w, int64_t i) {
    uint16_t v;
    std::memcpy(&v, static_cast<const uint16_t*>(w) + i, 2);
    return f16_to_f32(v);
  }
};
struct LoadF32 {
  static __m256 full(const void* w, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(w) + i); }
  static float one(const void* w, int64_t i) {
    float v;
    std::memcpy(&v, static_cast<const float*>(w) + i, 4);
    return v;
  }
};

template <class W, int MR, int NR>
void tile(const FloatGemmArgs& a, int64_t m0, int64_t n0) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  const float* x[MR];
  for (int i = 0; i < MR; ++i) x[i] = a.x + (m0 + i) * a.ldx;
  int64_t wrow[NR];
  for (int j = 0; j < NR; ++j) wrow[j] = (n0 + j) * a.ldw;

  int64_t k = 0;
  for (; k + 8 <= a.k; k += 8) {
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = W::full(a.w, wrow[j] + k);
    for (int i = 0; i < MR; ++i) {
      __m256 xv = _mm256_loadu_ps(x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float s = hsum(acc[i][j]);
      for (int64_t kk = k; kk < a.k; ++kk) s += x[i][kk] * W::one(a.w, wrow[j] + kk);
      a.y[(m0 + i) * a.ldy + n0 + j] = s;
    }
  }
}

template <class W>
using TileFn = void (*)(const FloatGemmArgs&, int64_t, int64_t);

template <class W, int MR>
constexpr TileFn<W> tile_for(int nr) {
  switch (nr) {
    case 1: return &tile<W, MR, 1>;
    case 2: return &tile<W, MR, 2>;
    case 3: return &tile<W, MR, 3>;
    default: return &tile<W, MR, 4>;
  }
}

template <class W>
void gemm(const FloatGemmArgs& a) {
  for (int64_t mc = 0; mc < a.m; mc += kMChunk) {
    const int64_t m_end = std::min(a.m, mc + kMChunk);
    for (int64_t n = a.n_begin; n < a.n_end; n += kNr) {
      const int nr = int(std::min<int64_t>(kNr, a.n_end - n));
      for (int64_t m = mc; m < m_end; m += kMr) {
        const bool two = m + 1 < m_end;
        (two ? tile_for<W, 2>(nr) : tile_for<W, 1>(nr))(a, m, n);
      }
    }
  }
}

}  // namespace

void gemm_bf16_f32_avx2(const FloatGemmArgs& a) { gemm<LoadBf16>(a); }
void gemm_f16_f32_avx2(const FloatGemmArgs& a) { gemm<LoadF16>(a); }
void gemm_f32_f32_avx2(const FloatGemmArgs& a) { gemm<LoadF32>(a); }

}  // namespace lowbit
