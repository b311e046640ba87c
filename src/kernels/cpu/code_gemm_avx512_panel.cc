// The AVX-512 table-decoded GEMM's fp32 prefill path for 4- and 8-bit codes (see
// code_gemm_avx512.h; the call's state and helpers are in code_gemm_avx512_call.h).
#include <vector>

#include "kernels/cpu/bf16_avx512.h"
#include "kernels/cpu/code_gemm_avx512_call.h"

namespace lowbit::code_avx512 {

namespace {

// Prefill in fp32 (m ≥ kPanelRows): each tile is widened once per call into an fp32 panel,
// [k][16] with each line's vectors in the activations' cell order, so storage position j
// pairs with x[k + j]. The register tiles re-decode every line for every 4 rows (4-bit: ~15
// µops per 32 FMAs; 8-bit: ~13 per 16, on the FMA ports); from the panel, 6 rows take 48 FMAs
// per 8 weight loads.
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
  float_4bit_groups<R>(c, t, r0, [&](int64_t k, __m512 (&acc)[R][kChains4]) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m512 w = _mm512_load_ps(panel + (k + j) * kTileN);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        acc[r][j % kChains4] = _mm512_fmadd_ps(w, _mm512_set1_ps(xr[r][k + j]), acc[r][j % kChains4]);
    }
  });
}

// 8-bit: a line's positions hold k0 k2 k1 k3 (the activations' x0 x2 x1 x3), taken from the
// decoder's pair vectors back into natural lanes.
void widen_tile_8bit(const Call& c, int64_t t, float* panel) {
  const uint8_t* wt = c.w->tile(t);
  const Decoder8 dec(*c.wt);
  const __m512i high = _mm512_set1_epi32(int(0xFFFF0000u));
  const __m512i even = _mm512_load_si512(kEven), odd = _mm512_load_si512(kOdd);
  for (int64_t k = 0; k < c.kp; k += 4) {
    __m512i a, b;
    dec(wt + k * 16, a, b);
    const __m512 al = _mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), ah = _mm512_castsi512_ps(_mm512_and_si512(a, high));
    const __m512 bl = _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), bh = _mm512_castsi512_ps(_mm512_and_si512(b, high));
    float* p = panel + k * kTileN;
    _mm512_store_ps(p, _mm512_permutex2var_ps(al, even, bl));                // k0
    _mm512_store_ps(p + kTileN, _mm512_permutex2var_ps(al, odd, bl));        // k2
    _mm512_store_ps(p + 2 * kTileN, _mm512_permutex2var_ps(ah, even, bh));   // k1
    _mm512_store_ps(p + 3 * kTileN, _mm512_permutex2var_ps(ah, odd, bh));    // k3
  }
}

// tile_8bit<R, true>'s sums: each lane's (k0, k1) and (k2, k3) products in two chains (here
// position j feeds chain j mod 2, in the same order), each with half the zero correction and
// scaled into its own total per group; the two totals are added at the end.
template <int R>
void panel_f32_8bit(const Call& c, const float* panel, int64_t t, int64_t r0) {
  const float* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = c.xf + (r0 + r) * c.ldp;
  __m512 tot[R][2];
  for (int r = 0; r < R; ++r) tot[r][0] = tot[r][1] = _mm512_setzero_ps();
  for (int64_t g = 0; g < c.groups; ++g) {
    const int64_t k0 = g * c.group, k1 = std::min(c.kp, k0 + c.group);
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; k += 4) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m512 w = _mm512_load_ps(panel + (k + j) * kTileN);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r][j % 2] = _mm512_fmadd_ps(w, _mm512_set1_ps(xr[r][k + j]), acc[r][j % 2]);
      }
    }
    const __m512 ws = weight_scale(c, t, g);
    const __m512 zh = c.a->zero ? _mm512_mul_ps(_mm512_loadu_ps(c.a->zero->lanes(t, g)), _mm512_set1_ps(0.5f))
                                : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const __m512 rs = row_scale(c, ws, r0 + r, g);
      for (int s = 0; s < 2; ++s) {
        if (c.xsum) acc[r][s] = _mm512_fnmadd_ps(zh, _mm512_set1_ps(c.xsum[(r0 + r) * c.groups + g]), acc[r][s]);
        tot[r][s] = _mm512_fmadd_ps(acc[r][s], rs, tot[r][s]);
      }
    }
  }
  for (int r = 0; r < R; ++r) store_row(c, r0 + r, t, _mm512_add_ps(tot[r][0], tot[r][1]));
}

// BF16 prefill of 4-bit codes (Mode::Bf16, m ≥ kPanelRows): each tile's lines are decoded once
// per call into a panel of the four BF16 pair vectors decode4 makes, [k / 8][4][16 dwords], and
// every block of 6 rows streams it from L1/L2. In registers tile_bf16_4bit re-decodes every line
// for every 6 rows (3 shifts + 4 vpermw beside 24 vdpbf16ps, on the same vector ports); here a
// line costs 4 loads. Products, chains (pair q feeds chain q) and order are tile_bf16_4bit's,
// so a row's result is the same on either path.
void decode_tile_4bit_bf16(const Call& c, int64_t t, uint32_t* panel) {
  const uint8_t* wt = c.w->tile(t);
  const __m512i table = _mm512_load_si512(c.wt->t4);
  for (int64_t k = 0; k < c.kp; k += 8) {
    __m512i w[4];
    decode4(wt + k * 8, table, w);
    for (int q = 0; q < 4; ++q) _mm512_store_si512(panel + (k / 8 * 4 + q) * kTileN, w[q]);
  }
}

template <int R>
void panel_bf16_4bit(const Call& c, const uint32_t* panel, int64_t t, int64_t r0) {
  const uint16_t* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = c.xb + (r0 + r) * c.ldp;
  float_4bit_groups<R>(c, t, r0, [&](int64_t k, __m512 (&acc)[R][kChains4]) {
    const uint32_t* line = panel + k / 8 * 4 * kTileN;
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m512bh w = as_bh(_mm512_load_si512(line + q * kTileN));
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        acc[r][q] = _mm512_dpbf16_ps(acc[r][q], w, as_bh(_mm512_set1_epi32(int(load_u32(xr[r] + k + 2 * q)))));
    }
  });
}

using PanelFn = void (*)(const Call&, const float*, int64_t t, int64_t r0);
constexpr PanelFn kPanel4[] = {nullptr,           panel_f32_4bit<1>, panel_f32_4bit<2>, panel_f32_4bit<3>,
                               panel_f32_4bit<4>, panel_f32_4bit<5>, panel_f32_4bit<6>};
constexpr PanelFn kPanel8[] = {nullptr,           panel_f32_8bit<1>, panel_f32_8bit<2>, panel_f32_8bit<3>,
                               panel_f32_8bit<4>, panel_f32_8bit<5>, panel_f32_8bit<6>};

}  // namespace

void panel_gemm_f32(const Call& c, int64_t t0, int64_t t1) {
  thread_local std::vector<float> panel_buffer;
  float* panel = bf16x::grow_aligned(panel_buffer, size_t(c.kp * kTileN));
  const bool four = c.w->bits() == 4;
  const PanelFn* kernels = four ? kPanel4 : kPanel8;
  for (int64_t t = t0; t < t1; ++t) {
    if (four)
      widen_tile_4bit(c, t, panel);
    else
      widen_tile_8bit(c, t, panel);
    for (int64_t r0 = 0; r0 < c.a->m; r0 += kPanelBlock)
      kernels[std::min<int64_t>(kPanelBlock, c.a->m - r0)](c, panel, t, r0);
  }
}

void panel_gemm_bf16_4bit(const Call& c, int64_t t0, int64_t t1) {
  using Fn = void (*)(const Call&, const uint32_t*, int64_t, int64_t);
  static constexpr Fn kByRows[] = {nullptr,            panel_bf16_4bit<1>, panel_bf16_4bit<2>, panel_bf16_4bit<3>,
                                   panel_bf16_4bit<4>, panel_bf16_4bit<5>, panel_bf16_4bit<6>};
  thread_local std::vector<float> panel_buffer;  // 16 dwords per 2 k: as many as the fp32 panel
  uint32_t* panel = reinterpret_cast<uint32_t*>(bf16x::grow_aligned(panel_buffer, size_t(c.kp / 2 * kTileN)));
  for (int64_t t = t0; t < t1; ++t) {
    decode_tile_4bit_bf16(c, t, panel);
    for (int64_t r0 = 0; r0 < c.a->m; r0 += kPanelBlock)
      kByRows[std::min<int64_t>(kPanelBlock, c.a->m - r0)](c, panel, t, r0);
  }
}

}  // namespace lowbit::code_avx512
