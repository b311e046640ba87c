// Helpers shared by the AVX-512 BF16 kernels (float_gemm_bf16.cc, float_gemm_amx.cc). Include
// only from translation units compiled with the AVX-512 flags: everything here is inline and
// emits AVX-512 instructions.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <vector>

namespace lowbit::bf16x {

// 16 fp32 → 16 BF16, round to nearest even with NaN kept quiet: bit for bit f32_to_bf16 (and
// torch). Not vcvtneps2bf16, which flushes denormal inputs to zero. (GCC vector extensions
// for the integer steps: shorter than the intrinsics, same instructions.)
using U32x16 = uint32_t __attribute__((vector_size(64)));
using U16x16 = uint16_t __attribute__((vector_size(32)));
inline __m256i round_to_bf16(__m512 v) {
  const U32x16 u = U32x16(_mm512_castps_si512(v));
  U32x16 r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(__m512i(u & 0x7fffffffu), _mm512_set1_epi32(0x7f800000));
  r = U32x16(_mm512_mask_mov_epi32(__m512i(r), nan, __m512i((u >> 16) | 0x40u)));
  return __m256i(__builtin_convertvector(r, U16x16));
}

// 32 consecutive floats (n valid, the rest read as zero) → 32 BF16 in one zmm; dword i holds
// the pair (2i, 2i+1), the even element in the low half: VNNI pair order.
inline __m512i round_32_to_bf16(const float* x, int n) {
  __m512 lo, hi;
  if (n >= 32) {
    lo = _mm512_loadu_ps(x);
    hi = _mm512_loadu_ps(x + 16);
  } else {
    const uint32_t bits = n <= 0 ? 0u : uint32_t((uint64_t(1) << n) - 1);
    lo = _mm512_maskz_loadu_ps(__mmask16(bits & 0xffff), x);
    hi = _mm512_maskz_loadu_ps(__mmask16(bits >> 16), x + 16);
  }
  return _mm512_inserti64x4(_mm512_castsi256_si512(round_to_bf16(lo)), round_to_bf16(hi), 1);
}

// In-register transpose of a 16×16 block of 32-bit elements: r[i][j] → r[j][i].
inline void transpose_16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // v[4g + c]: 128-bit lane L holds column 4L + c of rows 4g..4g+3.
  __m512 v[16];
  for (int g = 0; g < 4; ++g) {
    const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    v[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    v[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    v[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    v[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 w0 = _mm512_shuffle_f32x4(v[c], v[4 + c], 0x44), w1 = _mm512_shuffle_f32x4(v[8 + c], v[12 + c], 0x44);
    const __m512 w2 = _mm512_shuffle_f32x4(v[c], v[4 + c], 0xee), w3 = _mm512_shuffle_f32x4(v[8 + c], v[12 + c], 0xee);
    r[c] = _mm512_shuffle_f32x4(w0, w1, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(w0, w1, 0xdd);
    r[8 + c] = _mm512_shuffle_f32x4(w2, w3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(w2, w3, 0xdd);
  }
}

// Grow-only per-thread scratch, 64-byte aligned (full cache lines for tile loads). Each call
// site owns its own buffer: `static thread_local std::vector<uint16_t> buf;`.
template <class T>
T* grow_aligned(std::vector<T>& buf, size_t elements) {
  constexpr size_t kSlack = 64 / sizeof(T);  // room to move the start to a 64-byte boundary
  if (buf.size() < elements + kSlack) buf.resize(elements + kSlack);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<T*>((p + 63) & ~uintptr_t(63));
}

inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

}  // namespace lowbit::bf16x
