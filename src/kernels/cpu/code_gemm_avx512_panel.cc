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

// Int8 prefill of E2M1 × E2M1 codes (Mode::Int8, m ≥ kPanelRows). In registers
// tile_int8_4bit re-decodes each line (a shift, two vpermb) for every 8 rows of one tile, beside
// 16 vpdpbusd; here a block of kInt8Tiles tiles is decoded once per call into unsigned bytes
// 2·value + offset in the int8 view, [k / 4][tile][64 bytes] (a packed line's low nibbles, then
// its high ones), and every block of 6 rows takes 12 vpdpbusd per 2 loads and 6 broadcasts.
// What is left is each group's end: per 8 vpdpbusd of a sum (32 k) a convert, a scale and an
// FMA, so ~70 % of the vector ports do products at best (measured ~0.75× W8A8's GEMM time on
// Zen4; 4 tiles × 6 or 4 rows measured slower, as GCC then spills the sums). The running totals
// wait in L1. Group sums are exact, and their ends (int8_group_end) and order are
// tile_int8_4bit's, so a row's result is the same on either path.
constexpr int kInt8Tiles = 2, kInt8Rows = 6;

// Tiles [t, t + tiles) into the panel, and their weight scales into ws, [tile][group][16]: every
// block of rows then loads them instead of converting them again.
void decode_tiles_int8_4bit(const Call& c, __m512i table, int64_t t, int tiles, uint8_t* panel, float* ws) {
  for (int j = 0; j < tiles; ++j) {
    for (int64_t g = 0; g < c.groups; ++g) _mm512_store_ps(ws + (j * c.groups + g) * kTileN, weight_scale(c, t + j, g));
    const uint8_t* wt = c.w->tile(t + j);
    for (int64_t k = 0; k < c.kp; k += 8) {
      const __m512i v = _mm512_load_si512(wt + k * 8);
      _mm512_store_si512(panel + ((k / 4) * tiles + j) * 64, _mm512_permutexvar_epi8(v, table));
      _mm512_store_si512(panel + ((k / 4 + 1) * tiles + j) * 64,
                         _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), table));
    }
  }
}

// Group g of R rows × T tiles: the exact sums over the group's panel lines, each seeded with its
// row's offset term, then int8_group_end into the totals (in L1). One function with every loop
// unrolled, so GCC keeps the R·T sums in registers (split in two, it stores them every line).
template <int R, int T>
inline void int8_panel_group(const Call& c, const uint8_t* panel, const float* ws, const int8_t* const* x, int64_t r0,
                             int64_t g, float (&tot)[R][T][kTileN]) {
  __m512i acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i s = _mm512_set1_epi32(c.xoff[(r0 + r) * c.groups + g]);
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) acc[r][j] = s;
  }
  const int64_t l1 = std::min(c.kp, (g + 1) * c.group) / 4;
  for (int64_t l = g * c.group / 4; l < l1; ++l) {
    __m512i w[T];
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) w[j] = _mm512_load_si512(panel + (l * T + j) * 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i xv = _mm512_set1_epi32(int(load_u32(x[r] + 4 * l)));
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], w[j], xv);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < T; ++j) {
    const __m512 s = _mm512_load_ps(ws + (j * c.groups + g) * kTileN);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 prev = g == 0 ? _mm512_setzero_ps() : _mm512_load_ps(tot[r][j]);
      _mm512_store_ps(tot[r][j], int8_group_end(c, acc[r][j], s, r0 + r, g, prev));
    }
  }
}

template <int R, int T>
void panel_int8_4bit(const Call& c, const uint8_t* panel, const float* ws, int64_t t, int64_t r0) {
  const int8_t* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = c.x8 + (r0 + r) * c.ldp;
  alignas(64) float tot[R][T][kTileN];
  for (int64_t g = 0; g < c.groups; ++g) int8_panel_group<R, T>(c, panel, ws, xr, r0, g, tot);
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < T; ++j) store_row(c, r0 + r, t + j, _mm512_load_ps(tot[r][j]));
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

void panel_gemm_int8_4bit(const Call& c, int64_t t0, int64_t t1) {
  using Fn = void (*)(const Call&, const uint8_t*, const float*, int64_t, int64_t);
  static constexpr Fn kWide[] = {nullptr,
                                 panel_int8_4bit<1, kInt8Tiles>,
                                 panel_int8_4bit<2, kInt8Tiles>,
                                 panel_int8_4bit<3, kInt8Tiles>,
                                 panel_int8_4bit<4, kInt8Tiles>,
                                 panel_int8_4bit<5, kInt8Tiles>,
                                 panel_int8_4bit<6, kInt8Tiles>};
  static constexpr Fn kOne[] = {nullptr,
                                panel_int8_4bit<1, 1>,
                                panel_int8_4bit<2, 1>,
                                panel_int8_4bit<3, 1>,
                                panel_int8_4bit<4, 1>,
                                panel_int8_4bit<5, 1>,
                                panel_int8_4bit<6, 1>};
  thread_local std::vector<float> panel_buffer;  // kInt8Tiles tiles of k_pad × 16 bytes
  thread_local std::vector<float> scale_buffer;  // their weight scales, kInt8Tiles × groups × 16
  uint8_t* panel = reinterpret_cast<uint8_t*>(bf16x::grow_aligned(panel_buffer, size_t(c.kp * kTileN * kInt8Tiles / 4)));
  float* ws = bf16x::grow_aligned(scale_buffer, size_t(kInt8Tiles * c.groups * kTileN));
  const __m512i table = int8_code_table(c);
  for (int64_t t = t0; t < t1;) {
    const int tiles = t1 - t >= kInt8Tiles ? kInt8Tiles : 1;  // an odd last tile alone
    decode_tiles_int8_4bit(c, table, t, tiles, panel, ws);
    const Fn* by_rows = tiles == kInt8Tiles ? kWide : kOne;
    for (int64_t r0 = 0; r0 < c.a->m; r0 += kInt8Rows)
      by_rows[std::min<int64_t>(kInt8Rows, c.a->m - r0)](c, panel, ws, t, r0);
    t += tiles;
  }
}

}  // namespace lowbit::code_avx512
