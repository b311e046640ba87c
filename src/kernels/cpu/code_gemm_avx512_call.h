// Internals shared by the AVX-512 table-decoded GEMM's translation units (code_gemm_avx512.cc,
// code_gemm_avx512_panel.cc): the code tables, one call's state, and the helpers every tile
// kernel uses to scale, end a group and store. Include only from files built with the flags
// of lowbit_kernels_code (AVX-512 F/BW/VL/DQ + VBMI + BF16 + VNNI).
#pragma once

// GCC 12's AVX-512 headers seed some intrinsics' pass-through operand with a self-initialised
// "undefined" vector (_mm512_undefined_ps) and then warn about it wherever they are inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/quant_gemm.h"

namespace lowbit::code_avx512 {

// Decode streams one tile after another; 4 KiB ahead measured 6-12 % faster W4A16/MXFP4 decode
// than 1 KiB (2 KiB in between, 8 KiB the same) on the 1.7B shape, 2 threads.
constexpr int64_t kPrefetchBytes = 4096;  // 64 lines ahead in the tile stream

// Tables derived from a code table, cached per table pointer (the schemes' tables are static).
struct Tables {
  const float* lut = nullptr;
  int entries = 0;
  bool bf16 = false;                  // every value exact in BF16 (and, for 256, sign-magnitude)
  alignas(64) uint16_t t4[32] = {};   // 16 entries, stored twice
  alignas(64) uint8_t hi[128] = {}, lo[128] = {};
  uint16_t all[256] = {};             // BF16 of every entry
  bool int8 = false;                  // 16 entries with 2·value an integer in [-127, 127]
  int8_t twice[16] = {};
  int min_twice = 0, max_twice = 0;
};

// One call's state: what the weights are, and the activations in the kernel's order.
enum class Mode { Bf16, F32, Int8 };

struct Call {
  const CodeGemmArgs* a = nullptr;
  const PackedCodes* w = nullptr;
  const Tables* wt = nullptr;
  Mode mode = Mode::Bf16;
  int64_t kp = 0, group = 0, groups = 0, n = 0, ldp = 0;
  const uint16_t* xb = nullptr;  // BF16, [m][ldp]
  const float* xf = nullptr;     // fp32, [m][ldp]
  const int8_t* x8 = nullptr;    // 2·value, [m][ldp]
  const float* xsum = nullptr;   // [m][groups], Σ x over the group (zero points)
  const int32_t* xoff = nullptr; // [m][groups], −offset·Σ x8 (int8 mode)
  const float* xs4 = nullptr;    // [m][groups], x_scale / 4 (int8 mode: the codes are 2·value)
  int int8_offset = 0;
};

// Scales and the store.
inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t load_u64(const void* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// The weight scale lanes of tile t, group g: values, or exponents (u − 127) for E8M0.
inline __m512 weight_scale(const Call& c, int64_t t, int64_t g) {
  if (c.a->scale_e8m0) {
    const __m128i u = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c.a->scale_e8m0 + (t * c.groups + g) * 16));
    return _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(u), _mm512_set1_epi32(127)));
  }
  return _mm512_loadu_ps(c.a->scale->lanes(t, g));
}

// ws · xs with xs = x_scale[row, g].
inline __m512 scale_by(const Call& c, __m512 ws, float xs) {
  if (c.a->scale_e8m0) return _mm512_scalef_ps(_mm512_set1_ps(xs), ws);
  return _mm512_mul_ps(ws, _mm512_set1_ps(xs));
}
inline __m512 row_scale(const Call& c, __m512 ws, int64_t row, int64_t g) {
  return c.a->x_scale ? scale_by(c, ws, c.a->x_scale[row * c.a->ldxs + g]) : scale_by(c, ws, 1.0f);
}

inline void store_row(const Call& c, int64_t row, int64_t t, __m512 v) {
  const int64_t nb = t * kTileN, lanes = std::min<int64_t>(kTileN, c.n - nb);
  if (c.a->col_bias) v = _mm512_add_ps(v, _mm512_loadu_ps(c.a->col_bias + nb));
  _mm512_mask_storeu_ps(c.a->y + row * c.a->ldy + nb, __mmask16((1u << lanes) - 1), v);
}

// ---------------------------------------------------------------------------------------
// 4-bit weights: decoded pairs (k0,k2), (k4,k6), (k1,k3), (k5,k7) of one line.
inline void decode4(const uint8_t* p, __m512i table, __m512i w[4]) {
  const __m512i v = _mm512_load_si512(p);
  w[0] = _mm512_permutexvar_epi16(v, table);
  w[1] = _mm512_permutexvar_epi16(_mm512_srli_epi16(v, 4), table);
  w[2] = _mm512_permutexvar_epi16(_mm512_srli_epi16(v, 8), table);
  w[3] = _mm512_permutexvar_epi16(_mm512_srli_epi16(v, 12), table);
}

// 8-bit weights: one line decoded to BF16 words in two vectors whose dword 4c + j holds lane
// 4c + j/2 (a, from vpunpcklbw) or 4c + 2 + j/2 (b, vpunpckhbw), pair (k0,k1) for even j,
// (k2,k3) for odd j. The tiles sum the two pair dwords of a lane as two chains to the end.
struct Decoder8 {
  __m512i hi0, hi1, lo0, lo1, sign;
  explicit Decoder8(const Tables& t)
      : hi0(_mm512_load_si512(t.hi)), hi1(_mm512_load_si512(t.hi + 64)), lo0(_mm512_load_si512(t.lo)),
        lo1(_mm512_load_si512(t.lo + 64)), sign(_mm512_set1_epi8(char(0x80))) {}
  void operator()(const uint8_t* p, __m512i& a, __m512i& b) const {
    const __m512i v = _mm512_load_si512(p);
    __m512i h = _mm512_permutex2var_epi8(hi0, v, hi1);
    h = _mm512_ternarylogic_epi32(h, v, sign, 0xF8);  // h | (v & 0x80)
    const __m512i l = _mm512_permutex2var_epi8(lo0, v, lo1);
    a = _mm512_unpacklo_epi8(l, h);
    b = _mm512_unpackhi_epi8(l, h);
  }
};
// Natural lane l = 4c + i from such a pair of vectors: a's dword 4c + 2i (kEven) or 4c + 2i + 1
// (kOdd) for i < 2, else b's (index + 16 selects the second source of vpermt2ps).
alignas(64) inline constexpr int32_t kEven[16] = {0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30};
alignas(64) inline constexpr int32_t kOdd[16] = {1, 3, 17, 19, 5, 7, 21, 23, 9, 11, 25, 27, 13, 15, 29, 31};

// The float 4-bit tiles keep one accumulator chain per decoded pair (q) at every row count:
// the chains are summed at each group's end, so a chain count that varied with the rows in a
// block would round a row differently alone (decode) than among others (prefill, batches), and
// greedy outputs would depend on batching. Four chains also cover the FMA latency at one row;
// at 6 rows they take 24 of the 32 registers, hence 6 rows per block, not 8. The int8 tiles
// may vary theirs: integer sums are exact in any order.
constexpr int kChains4 = 4;

// A group's end for R rows of the float tiles: the chains summed in order, the zero point's
// Σx taken off, then scaled into the running total. Every float 4-bit kernel ends its groups
// here, so they agree bit for bit when their chains do.
template <int R, int S>
inline void end_group(const Call& c, int64_t t, int64_t g, int64_t r0, const __m512 (&acc)[R][S], __m512 (&tot)[R]) {
  const __m512 ws = weight_scale(c, t, g);
  const __m512 z = c.a->zero ? _mm512_loadu_ps(c.a->zero->lanes(t, g)) : _mm512_setzero_ps();
  for (int r = 0; r < R; ++r) {
    __m512 v = acc[r][0];
    for (int s = 1; s < S; ++s) v = _mm512_add_ps(v, acc[r][s]);
    if (c.xsum) v = _mm512_fnmadd_ps(z, _mm512_set1_ps(c.xsum[(r0 + r) * c.groups + g]), v);
    tot[r] = _mm512_fmadd_ps(v, row_scale(c, ws, r0 + r, g), tot[r]);
  }
}

// The float 4-bit kernels' skeleton for R rows of tile t: per group, kChains4 chains per row
// start at zero, line(k, acc) adds the products of k..k+7 for every 8 k of the group, and
// end_group folds them into the row totals; one store per row at the end. Every float 4-bit
// kernel (register tiles, panels; fp32, BF16) runs through here, so they share the order.
template <int R, class Line>
inline void float_4bit_groups(const Call& c, int64_t t, int64_t r0, Line line) {
  __m512 tot[R];
  for (int r = 0; r < R; ++r) tot[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < c.groups; ++g) {
    const int64_t k0 = g * c.group, k1 = std::min(c.kp, k0 + c.group);
    __m512 acc[R][kChains4];
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < kChains4; ++s) acc[r][s] = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; k += 8) line(k, acc);
    end_group(c, t, g, r0, acc, tot);
  }
  for (int r = 0; r < R; ++r) store_row(c, r0 + r, t, tot[r]);
}

// Prefill in fp32 from a once-widened panel per tile (code_gemm_avx512_panel.cc; 4- and 8-bit
// codes), from this many rows on; below it the tiles decode in registers.
constexpr int64_t kPanelRows = 16;
void panel_gemm_f32(const Call& c, int64_t t0, int64_t t1);
// The same for 4-bit codes in Mode::Bf16: a panel of decoded BF16 pairs per tile.
void panel_gemm_bf16_4bit(const Call& c, int64_t t0, int64_t t1);
// The same in Mode::Int8: a panel of unsigned bytes 2·value + offset per block of tiles.
void panel_gemm_int8_4bit(const Call& c, int64_t t0, int64_t t1);

// Mode::Int8's lookup of a 4-bit code to 2·value + offset (unsigned) for vpermb, which reads 6
// index bits: with the 16 entries stored 4 times, the nibble above the one looked up (or the
// shifted-in neighbour) needs no masking.
inline __m512i int8_code_table(const Call& c) {
  alignas(64) uint8_t u8[64];
  for (int i = 0; i < 64; ++i) u8[i] = uint8_t(c.wt->twice[i & 15] + c.int8_offset);
  return _mm512_load_si512(u8);
}

// The end of group g for one row and tile in Mode::Int8: the exact int32 sum in fp32, scaled by
// ws · x_scale / 4, added to the running total. Register tiles and panels both end here.
inline __m512 int8_group_end(const Call& c, __m512i sum, __m512 ws, int64_t row, int64_t g, __m512 total) {
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale_by(c, ws, c.xs4[row * c.groups + g]), total);
}

}  // namespace lowbit::code_avx512
