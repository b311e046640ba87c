// AVX-512 float GEMM: fp32 activations × BF16/F16/F32 weights, fp32 accumulate. Weights are
// read where they are (the checkpoint's [N, K] rows); nothing is repacked at load.
//
// Every output element is computed the same way whatever m is, so a row's result does not
// depend on how many rows share the call (the engine's batching invariance): over each k
// block of kKBlock, 16 lane partial sums accumulate x·w in k order (the K tail last, masked),
// are reduced horizontally (hsum4), and the block sums are added into y in block order.
//
// Two loop nests compute exactly that:
//  - m ≤ kInPlaceRows (decode, MTP verify): register tiles of ≤ 4 rows × 4 weight rows read
//    the weights in place, widening BF16/F16 in the inner loop: each weight is read once.
//  - more rows (prefill, GPTQ's calibration passes): a chunk of up to kMChunk activation rows ×
//    one k block is copied to 64-byte aligned scratch (512 KB, inside L2 on both CPU
//    families; the workspace's rows are only 16-byte aligned, and split loads cost a fifth of
//    the speed) and walked by 6 × 4 tiles, the 4 weight rows of the k block widened to fp32
//    once into an L1 panel. Per 16 k a tile issues 24 FMAs against 10 loads and no
//    conversions, where widening in the inner loop cost 8 shuffle/shift µops per 16 FMAs on
//    the FMA ports. What bounds it now is the 6 activation lines per step from L2.
//
// GCC 12 reports -Wmaybe-uninitialized inside the AVX-512 intrinsics that start from
// _mm512_undefined_*() (GCC PR 105593, fixed in 13); the pragma must precede <immintrin.h>.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "kernels/cpu/bf16_avx512.h"
#include "kernels/float_gemm.h"

namespace lowbit {

namespace {

constexpr int64_t kKBlock = 1024;
constexpr int64_t kMChunk = 128;  // × kKBlock × 4 bytes = 512 KB of activations
constexpr int64_t kInPlaceRows = 4;
constexpr int kNr = 4;  // in-place tiles: ≤ kInPlaceRows × kNr
constexpr int kPanelMr = 6, kPanelNr = 4;

struct LoadBf16 {
  static constexpr int64_t kBytes = 2;
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
  static constexpr int64_t kBytes = 2;
  static __m512 full(const void* w, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  }
  static __m512 masked(const void* w, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i));
  }
};
struct LoadF32 {
  static constexpr int64_t kBytes = 4;
  static __m512 full(const void* w, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(w) + i); }
  static __m512 masked(const void* w, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  }
};

// Horizontal sums of four accumulators → lanes 0..3 of one __m128 (lane j = sum of a[j]).
// (extractf32x8(·, 0) rather than castps512_ps256: GCC 12 warns falsely on the cast.)
inline __m256 fold(__m512 a) { return _mm256_add_ps(_mm512_extractf32x8_ps(a, 0), _mm512_extractf32x8_ps(a, 1)); }
inline __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m256 v = _mm256_hadd_ps(_mm256_hadd_ps(fold(a0), fold(a1)), _mm256_hadd_ps(fold(a2), fold(a3)));
  return _mm_add_ps(_mm256_extractf128_ps(v, 0), _mm256_extractf128_ps(v, 1));
}

// One k block of `len` elements of an MR × NR tile: x[i] and w[j] point at the rows' first
// element of the block; y at the tile's first output. `first`: the block writes y, later
// blocks add to it. `next` (decode, in place): the same block of the next tile's rows, to
// prefetch. The hardware prefetchers follow each row's stream but restart cold at every new
// row (and 4 KB page); prefetching one tile ahead raised a 622 MB BF16 GEMV (Qwen3's lm_head)
// from 24.6 to 30.8 GB/s on 2 threads, the machine's read bandwidth.
template <class W, int MR, int NR>
void tile(const float* const* x, const void* const* w, int64_t len, float* y, int64_t ldy, bool first,
          const void* const* next) {
  constexpr int kCols = (NR + 3) / 4 * 4;  // reduced four at a time
  __m512 acc[MR][kCols];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kCols; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= len; k += 16) {
    if (next)
      for (int j = 0; j < NR; ++j) _mm_prefetch(static_cast<const char*>(next[j]) + k * W::kBytes, _MM_HINT_T0);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = W::full(w[j], k);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < len) {
    const __mmask16 mask = __mmask16((1u << (len - k)) - 1);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = W::masked(w[j], k, mask);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < kCols; g += 4) {
      const __mmask8 out = __mmask8((1u << std::min(4, NR - g)) - 1);
      __m128 s = hsum4(acc[i][g], acc[i][g + 1], acc[i][g + 2], acc[i][g + 3]);
      float* yi = y + i * ldy + g;
      if (!first) s = _mm_add_ps(_mm_maskz_loadu_ps(out, yi), s);
      _mm_mask_storeu_ps(yi, out, s);
    }
}

template <class W>
using TileFn = void (*)(const float* const*, const void* const*, int64_t, float*, int64_t, bool, const void* const*);

template <class W, int MaxMr, int MaxNr, size_t... I>
constexpr std::array<TileFn<W>, sizeof...(I)> tile_table(std::index_sequence<I...>) {
  return {&tile<W, int(I / MaxNr) + 1, int(I % MaxNr) + 1>...};
}

// The MR × NR tile, 1 ≤ mr ≤ MaxMr, 1 ≤ nr ≤ MaxNr.
template <class W, int MaxMr, int MaxNr>
TileFn<W> pick_tile(int mr, int nr) {
  static constexpr auto table = tile_table<W, MaxMr, MaxNr>(std::make_index_sequence<MaxMr * MaxNr>{});
  return table[size_t((mr - 1) * MaxNr + (nr - 1))];
}

// Few rows: each tile streams its weight rows once over all k blocks.
template <class W>
void gemm_in_place(const FloatGemmArgs& a) {
  for (int64_t n = a.n_begin; n < a.n_end; n += kNr) {
    const int nr = int(std::min<int64_t>(kNr, a.n_end - n));
    const TileFn<W> fn = pick_tile<W, kInPlaceRows, kNr>(int(a.m), nr);
    for (int64_t k0 = 0; k0 < a.k; k0 += kKBlock) {
      const float* x[kInPlaceRows];
      for (int i = 0; i < a.m; ++i) x[i] = a.x + i * a.ldx + k0;
      const void* w[kNr];
      const void* next[kNr];
      for (int j = 0; j < nr; ++j) w[j] = static_cast<const char*>(a.w) + ((n + j) * a.ldw + k0) * W::kBytes;
      // The next tile's rows while they are this call's (a shorter last tile repeats its last).
      const bool ahead = n + kNr < a.n_end;
      for (int j = 0; ahead && j < nr; ++j)
        next[j] = static_cast<const char*>(a.w) + ((std::min(n + kNr + j, a.n_end - 1)) * a.ldw + k0) * W::kBytes;
      fn(x, w, std::min(a.k - k0, kKBlock), a.y + n, a.ldy, k0 == 0, ahead ? next : nullptr);
    }
  }
}

// Many rows: a row chunk × k block of activations, copied once to aligned scratch, stays in
// L2 while every 4-row weight block of the thread's columns, widened once, passes over it.
template <class W>
void gemm_panel(const FloatGemmArgs& a) {
  // Per-thread scratch, 64-byte aligned so no 64-byte load of the tiles splits two lines.
  thread_local std::vector<float> panel_buf, block_buf;
  const int64_t kb = bf16x::round_up(std::min(a.k, kKBlock), 16);  // row stride of both buffers
  float* panel = bf16x::grow_aligned(panel_buf, size_t(kPanelNr * kb));
  float* block = bf16x::grow_aligned(block_buf, size_t(std::min(a.m, kMChunk) * kb));
  for (int64_t mc = 0; mc < a.m; mc += kMChunk) {
    const int64_t rows = std::min(a.m - mc, kMChunk);
    for (int64_t k0 = 0; k0 < a.k; k0 += kKBlock) {
      const int64_t len = std::min(a.k - k0, kKBlock);
      for (int64_t i = 0; i < rows; ++i) std::copy_n(a.x + (mc + i) * a.ldx + k0, len, block + i * kb);
      for (int64_t n = a.n_begin; n < a.n_end; n += kPanelNr) {
        const int nr = int(std::min<int64_t>(kPanelNr, a.n_end - n));
        const void* w[kPanelNr];
        for (int j = 0; j < nr; ++j) {
          const void* row = static_cast<const char*>(a.w) + ((n + j) * a.ldw + k0) * W::kBytes;
          float* dst = panel + j * kb;
          int64_t k = 0;
          for (; k + 16 <= len; k += 16) _mm512_store_ps(dst + k, W::full(row, k));
          if (k < len) {
            const __mmask16 tail = __mmask16((1u << (len - k)) - 1);
            _mm512_mask_store_ps(dst + k, tail, W::masked(row, k, tail));
          }
          w[j] = dst;
        }
        for (int64_t m = 0; m < rows; m += kPanelMr) {
          const int mr = int(std::min<int64_t>(kPanelMr, rows - m));
          const float* x[kPanelMr];
          for (int i = 0; i < mr; ++i) x[i] = block + (m + i) * kb;
          pick_tile<LoadF32, kPanelMr, kPanelNr>(mr, nr)(x, w, len, a.y + (mc + m) * a.ldy + n, a.ldy, k0 == 0, nullptr);
        }
      }
    }
  }
}

template <class W>
void gemm(const FloatGemmArgs& a) {
  if (a.m <= 0 || a.n_begin >= a.n_end) return;
  if (a.k <= 0) {  // empty sums
    for (int64_t i = 0; i < a.m; ++i) std::fill(a.y + i * a.ldy + a.n_begin, a.y + i * a.ldy + a.n_end, 0.0f);
    return;
  }
  if (a.m <= kInPlaceRows)
    gemm_in_place<W>(a);
  else
    gemm_panel<W>(a);
}

}  // namespace

void gemm_bf16_f32_avx512(const FloatGemmArgs& a) { gemm<LoadBf16>(a); }
void gemm_f16_f32_avx512(const FloatGemmArgs& a) { gemm<LoadF16>(a); }
void gemm_f32_f32_avx512(const FloatGemmArgs& a) { gemm<LoadF32>(a); }

}  // namespace lowbit
