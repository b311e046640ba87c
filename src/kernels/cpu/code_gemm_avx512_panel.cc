// The AVX-512 table-decoded GEMM's fp32 prefill path for 4-bit codes (see code_gemm_avx512.h;
// the call's state and helpers are in code_gemm_avx512_call.h).
#include <vector>

#include "kernels/cpu/bf16_avx512.h"
#include "kernels/cpu/code_gemm_avx512_call.h"

namespace lowbit::code_avx512 {

namespace {

// Prefill in fp32 (m ≥ kPanelRows): each tile is widened once per call into an fp32 panel,
// [k][16] with line k's eight vectors in the activations' cell order, so storage position j
// pairs with x[k + j]. tile_f32_4bit re-decodes every line for every 4 rows, ~15 µops per 32
// FMAs on the FMA ports; from the panel, 6 rows take 48 FMAs per 8 weight loads.
constexpr int kPanelBlock = 6;

void widen_tile_4bit(const Call& c, int64_t t, float* panel) {
  const uint8_t* wt = c.w->tile(t);
  const __m512i table = _mm512_load_si512(c.wt->t4);
  const __m512i high = _mm512_set1_epi32(int(0xFFFF0000u));
  for (int64_t k = 0; k < c.kp; k += 8) {
    __m512i w[4];
    decode4(wt + k * 8, table, w);
    for (int q = 0; q < 4; ++q) {
      _mm512_store_ps(panel + (k + 2 * q) * kTileN, _mm512_castsi512_ps(_mm512_slli_epi32(w[q], 16)));
      _mm512_store_ps(panel + (k + 2 * q + 1) * kTileN, _mm512_castsi512_ps(_mm512_and_si512(w[q], high)));
    }
  }
}

// The same products, chains (position j feeds chain j mod 4, as tile_f32_4bit's pair q feeds
// chains 2q and 2q + 1 mod 4) and order as tile_f32_4bit<R>, so a row's result is the same
// on either path.
template <int R>
void panel_f32_4bit(const Call& c, const float* panel, int64_t t, int64_t r0) {
  const float* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = c.xf + (r0 + r) * c.ldp;
  __m512 tot[R];
  for (int r = 0; r < R; ++r) tot[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < c.groups; ++g) {
    const int64_t k0 = g * c.group, k1 = std::min(c.kp, k0 + c.group);
    __m512 acc[R][kChains4];
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < kChains4; ++s) acc[r][s] = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; k += 8) {
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512 w = _mm512_load_ps(panel + (k + j) * kTileN);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
          acc[r][j % kChains4] = _mm512_fmadd_ps(w, _mm512_set1_ps(xr[r][k + j]), acc[r][j % kChains4]);
      }
    }
    end_group(c, t, g, r0, acc, tot);
  }
  for (int r = 0; r < R; ++r) store_row(c, r0 + r, t, tot[r]);
}

using PanelFn = void (*)(const Call&, const float*, int64_t t, int64_t r0);
constexpr PanelFn kPanelKernels[] = {nullptr,           panel_f32_4bit<1>, panel_f32_4bit<2>, panel_f32_4bit<3>,
                                     panel_f32_4bit<4>, panel_f32_4bit<5>, panel_f32_4bit<6>};

}  // namespace

void panel_gemm_f32_4bit(const Call& c, int64_t t0, int64_t t1) {
  thread_local std::vector<float> panel_buffer;
  float* panel = bf16x::grow_aligned(panel_buffer, size_t(c.kp * kTileN));
  for (int64_t t = t0; t < t1; ++t) {
    widen_tile_4bit(c, t, panel);
    for (int64_t r0 = 0; r0 < c.a->m; r0 += kPanelBlock)
      kPanelKernels[std::min<int64_t>(kPanelBlock, c.a->m - r0)](c, panel, t, r0);
  }
}

}  // namespace lowbit::code_avx512
