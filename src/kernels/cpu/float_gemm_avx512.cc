// AVX-512 float GEMM: fp32 activations × BF16/F16/F32 weights read in place, fp32 accumulate.
// Register tile: 4 activation rows × 4 weight rows (16 zmm accumulators, 4 converted weight
// vectors, 1 activation vector), reduced horizontally once per tile. Activation rows are
// walked in chunks of 64 so a chunk stays in L2 while every weight row passes over it.
#include <immintrin.h>

#include "kernels/float_gemm.h"

namespace lowbit {

namespace {

constexpr int kMr = 4, kNr = 4;
constexpr int64_t kMChunk = 64;

struct LoadBf16 {
  static __m512 full(const void* w, int64_t i) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 masked(const void* w, int64_t i, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};
struct LoadF16 {
  static __m512 full(const void* w, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  }
  static __m512 masked(const void* w, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i));
  }
};
struct LoadF32 {
  static __m512 full(const void* w, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(w) + i); }
  static __m512 masked(const void* w, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  }
};

template <class W, int MR, int NR>
void tile(const FloatGemmArgs& a, int64_t m0, int64_t n0) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const float* x[MR];
  for (int i = 0; i < MR; ++i) x[i] = a.x + (m0 + i) * a.ldx;
  int64_t wrow[NR];
  for (int j = 0; j < NR; ++j) wrow[j] = (n0 + j) * a.ldw;

  int64_t k = 0;
  for (; k + 16 <= a.k; k += 16) {
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = W::full(a.w, wrow[j] + k);
    for (int i = 0; i < MR; ++i) {
      __m512 xv = _mm512_loadu_ps(x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < a.k) {
    const __mmask16 mask = __mmask16((1u << (a.k - k)) - 1);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = W::masked(a.w, wrow[j] + k, mask);
    for (int i = 0; i < MR; ++i) {
      __m512 xv = _mm512_maskz_loadu_ps(mask, x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) a.y[(m0 + i) * a.ldy + n0 + j] = _mm512_reduce_add_ps(acc[i][j]);
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
TileFn<W> pick_tile(int mr, int nr) {
  switch (mr) {
    case 1: return tile_for<W, 1>(nr);
    case 2: return tile_for<W, 2>(nr);
    case 3: return tile_for<W, 3>(nr);
    default: return tile_for<W, 4>(nr);
  }
}

template <class W>
void gemm(const FloatGemmArgs& a) {
  for (int64_t mc = 0; mc < a.m; mc += kMChunk) {
    const int64_t m_end = std::min(a.m, mc + kMChunk);
    for (int64_t n = a.n_begin; n < a.n_end; n += kNr) {
      const int nr = int(std::min<int64_t>(kNr, a.n_end - n));
      for (int64_t m = mc; m < m_end; m += kMr) {
        const int mr = int(std::min<int64_t>(kMr, m_end - m));
        pick_tile<W>(mr, nr)(a, m, n);
      }
    }
  }
}

}  // namespace

void gemm_bf16_f32_avx512(const FloatGemmArgs& a) { gemm<LoadBf16>(a); }
void gemm_f16_f32_avx512(const FloatGemmArgs& a) { gemm<LoadF16>(a); }
void gemm_f32_f32_avx512(const FloatGemmArgs& a) { gemm<LoadF32>(a); }

}  // namespace lowbit
