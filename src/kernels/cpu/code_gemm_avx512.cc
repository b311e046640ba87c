// AVX-512 table-decoded GEMM: see code_gemm_avx512.h for the scheme, here for the layout
// tricks. A 64-byte line of a tile holds 16 lanes × one 4-byte cell (8 k of 4-bit codes, 4 k of
// 8-bit codes), and every decode below turns one line into vectors of 16 lanes × 2 k, the
// operand shape of vdpbf16ps (and of AMX B tiles):
//   4-bit: word w0 of a cell is nibbles [k5 k1 k4 k0], w1 is [k7 k3 k6 k2]. vpermw reads the
//          low 5 bits of each word, so with the 16-entry table stored twice (entries i and
//          i + 16 equal) v, v>>4, v>>8, v>>12 (16-bit shifts) give the pairs (k0,k2), (k4,k6),
//          (k1,k3), (k5,k7): 3 shifts + 4 lookups per 128 codes. Activations are stored in
//          that order per cell: x0 x2 x4 x6 x1 x3 x5 x7.
//   8-bit: vpermi2b over two 64-byte tables looks up 7 bits, the magnitude; one table holds the
//          BF16 high bytes, one the low bytes, the sign bit is or-ed into the high byte and
//          vpunpckl/hbw interleave the two into words. Lane order comes out permuted (dword
//          4c + j holds lane 4c + j/2 (unpacklo) or 4c + 2 + j/2 (unpackhi), pair (k0,k1) for
//          even j, (k2,k3) for odd j), which is fixed once per group by permuting the scale
//          vectors and once per tile at the store; activations stay in natural order.
//   int8 (E2M1 weights × E2M1 activations): the low nibbles and (16-bit shift by 4) the high
//          nibbles are the VNNI layout already; vpermb maps codes to 2·value + offset
//          (unsigned), activations are 2·value (signed), and −offset·Σx seeds each group's
//          accumulator.
#include "kernels/cpu/code_gemm_avx512.h"

// GCC 12's AVX-512 headers seed some intrinsics' pass-through operand with a self-initialised
// "undefined" vector (_mm512_undefined_ps) and then warn about it wherever they are inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/bf16_avx512.h"
#include "kernels/cpu/code_gemm_avx512_call.h"

namespace lowbit {

namespace {

using namespace code_avx512;

// ---------------------------------------------------------------------------------------
// Tables derived from a code table, cached per table pointer (the schemes' tables are static).
uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}

void build(Tables& t, const float* lut, int entries) {
  t.lut = lut;
  t.entries = entries;
  t.bf16 = true;
  for (int i = 0; i < entries; ++i) {
    const uint32_t b = bits_of(lut[i]);
    if (std::isnan(lut[i])) {
      t.all[i] = uint16_t(0x7FC0 | ((b >> 16) & 0x8000));
      continue;
    }
    if (b & 0xFFFF) t.bf16 = false;
    t.all[i] = uint16_t(b >> 16);
  }
  if (entries == 16) {
    for (int i = 0; i < 16; ++i) t.t4[i] = t.t4[i + 16] = t.all[i];
    t.int8 = true;
    for (int i = 0; i < 16; ++i) {
      const float v2 = 2.0f * lut[i];
      if (!(v2 == std::nearbyint(v2)) || std::fabs(v2) > 127.0f) {
        t.int8 = false;
        break;
      }
      t.twice[i] = int8_t(v2);
    }
    if (t.int8) {
      t.min_twice = *std::min_element(t.twice, t.twice + 16);
      t.max_twice = *std::max_element(t.twice, t.twice + 16);
    }
  } else {
    // Sign-magnitude: code b | 0x80 is −(code b). NaN codes (E4M3's 0x7F, 0xFF) decode to a
    // NaN of either sign, which is all a NaN needs to be.
    for (int i = 0; i < 128; ++i) {
      const bool nan = std::isnan(lut[i]) && std::isnan(lut[i + 128]);
      if (!nan && ((t.all[i] & 0x8000) || (t.all[i] | 0x8000) != t.all[i + 128])) t.bf16 = false;
      t.hi[i] = uint8_t((t.all[i] & 0x7FFF) >> 8);
      t.lo[i] = uint8_t(t.all[i]);
    }
  }
}

const Tables& tables_for(const float* lut, int entries) {
  thread_local Tables cache[4];
  thread_local int next = 0;
  for (const Tables& t : cache)
    if (t.lut == lut && t.entries == entries) return t;
  Tables& t = cache[next];
  next = (next + 1) % 4;
  build(t, lut, entries);
  return t;
}

// ---------------------------------------------------------------------------------------
struct Scratch {
  std::vector<uint16_t> xb;
  std::vector<float> xf, xsum;
  std::vector<int8_t> x8;
  std::vector<int32_t> xoff;
  std::vector<float> xs4;
  uint64_t call_id = 0;  // the call whose activations these are (0: none)
  Call prepared;         // that call's state after prepare()
};

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

uint16_t bf16_rne(float v) {
  const uint32_t b = bits_of(v);
  if (std::isnan(v)) return uint16_t((b >> 16) | 0x40);
  return uint16_t((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}

constexpr int kPerm8[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // 4-bit pair order
constexpr int kPerm4[4] = {0, 2, 1, 3};              // 8-bit fp32 pair order

// Activation values of row i as floats (coded: exact table values).
inline float x_value(const CodeGemmArgs& a, const Tables* xt, int64_t i, int64_t k) {
  if (a.xq) return xt ? xt->lut[a.xq[i * a.ldx + k]] : a.x_lut[a.xq[i * a.ldx + k]];
  return a.x[i * a.ldx + k];
}

// Up to 32 activation codes (n of them) as BF16 words in natural order: 16-entry tables by
// vpermw, 256-entry ones by the two byte tables (sign-magnitude, as for weights).
inline __m512i codes_to_bf16(const Tables& t, const uint8_t* q, int n) {
  const __m512i v = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(__mmask32(n == 32 ? ~0u : (1u << n) - 1), q));
  if (t.entries == 16) return _mm512_permutexvar_epi16(v, _mm512_load_si512(t.t4));
  const __m512i h = _mm512_permutex2var_epi8(_mm512_load_si512(t.hi), v, _mm512_load_si512(t.hi + 64));
  const __m512i l = _mm512_permutex2var_epi8(_mm512_load_si512(t.lo), v, _mm512_load_si512(t.lo + 64));
  // word = lo byte | hi byte << 8 | sign (code bit 7) << 8; the lookups of the zero high
  // bytes are discarded by the shifts and the mask.
  const __m512i hs = _mm512_slli_epi16(_mm512_ternarylogic_epi32(h, v, _mm512_set1_epi16(0x80), 0xF8), 8);
  return _mm512_ternarylogic_epi32(hs, l, _mm512_set1_epi16(0x00FF), 0xF8);  // hs | (l & 0xFF)
}

// The same orders over 16 fp32 lanes: two 8-cells, four 4-cells.
alignas(64) constexpr int32_t kCell8x2[16] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};
alignas(64) constexpr int32_t kCell4x4[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};

alignas(64) constexpr int16_t kPerm8x4[32] = {0,  2,  4,  6,  1,  3,  5,  7,  8,  10, 12, 14, 9,  11, 13, 15,
                                              16, 18, 20, 22, 17, 19, 21, 23, 24, 26, 28, 30, 25, 27, 29, 31};

// One row of kp fp32 activations as BF16 words, each exactly bf16_rne (bf16x's integer
// rounding, not vcvtne2ps2bf16, which flushes denormal inputs), in the 4-bit pair order when four.
void bf16_rne_row(const float* x, int64_t kp, bool four, uint16_t* out) {
  const __m512i perm = _mm512_load_si512(kPerm8x4);
  int64_t k = 0;
  for (; k + 32 <= kp; k += 32) {
    __m512i w = bf16x::round_32_to_bf16(x + k, 32);
    if (four) w = _mm512_permutexvar_epi16(perm, w);
    _mm512_storeu_si512(out + k, w);
  }
  const int cell = four ? 8 : 4;
  for (; k < kp; k += cell)
    for (int j = 0; j < cell; ++j) out[k + j] = bf16_rne(x[k + (four ? kPerm8[j] : j)]);
}

void prepare(Call& c, const Tables* xt, Scratch& s) {
  const CodeGemmArgs& a = *c.a;
  const int64_t m = a.m, kp = c.kp, G = c.groups;
  c.ldp = kp;
  const bool four = c.w->bits() == 4;
  if (a.zero) {
    float* xsum = grow(s.xsum, size_t(m * G));
    std::fill(xsum, xsum + m * G, 0.0f);
    c.xsum = xsum;
  }
  if (c.mode == Mode::Int8) {
    int8_t* x8 = grow(s.x8, size_t(m * kp));
    int32_t* off = grow(s.xoff, size_t(m * G));
    alignas(16) int8_t twice[16];
    std::memcpy(twice, xt->twice, 16);
    const __m512i table = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(twice)));
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int64_t i = 0; i < m; ++i) {
      const uint8_t* q = a.xq + i * a.ldx;
      int8_t* xi = x8 + i * kp;
      for (int64_t k = 0; k < kp; k += 64) {
        const __mmask64 mk = kp - k >= 64 ? ~__mmask64(0) : (__mmask64(1) << (kp - k)) - 1;
        const __m512i v = _mm512_and_si512(_mm512_maskz_loadu_epi8(mk, q + k), low4);
        _mm512_mask_storeu_epi8(xi + k, mk, _mm512_shuffle_epi8(table, v));
      }
      for (int64_t g = 0; g < G; ++g) {
        int32_t sum = 0;
        for (int64_t k = g * c.group; k < std::min(kp, (g + 1) * c.group); ++k) sum += xi[k];
        off[i * G + g] = -c.int8_offset * sum;
      }
    }
    float* xs4 = grow(s.xs4, size_t(m * G));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t g = 0; g < G; ++g) xs4[i * G + g] = (a.x_scale ? a.x_scale[i * a.ldxs + g] : 1.0f) * 0.25f;
    c.x8 = x8;
    c.xoff = off;
    c.xs4 = xs4;
    return;
  }
  const int cell = four ? 8 : 4;
  if (c.mode == Mode::Bf16) {
    uint16_t* xb = grow(s.xb, size_t(m * kp));
    if (a.xq && !c.xsum) {  // coded activations: vector decode, then the 4-bit pair order
      const __m512i perm = _mm512_load_si512(kPerm8x4);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t k = 0; k < kp; k += 32) {
          const int n = int(std::min<int64_t>(32, kp - k));
          __m512i w = codes_to_bf16(*xt, a.xq + i * a.ldx + k, n);
          if (four) w = _mm512_permutexvar_epi16(perm, w);
          _mm512_mask_storeu_epi16(xb + i * kp + k, __mmask32(n == 32 ? ~0u : (1u << n) - 1), w);
        }
      c.xb = xb;
      return;
    }
    if (!a.xq && !c.xsum) {  // fp32 activations: bf16_rne 32 at a time (every thread runs this)
      for (int64_t i = 0; i < m; ++i) bf16_rne_row(a.x + i * a.ldx, kp, four, xb + i * kp);
      c.xb = xb;
      return;
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t k = 0; k < kp; k += cell)
        for (int j = 0; j < cell; ++j) {
          const int64_t src = k + (four ? kPerm8[j] : j);
          const uint16_t v = a.xq ? xt->all[a.xq[i * a.ldx + src]] : bf16_rne(a.x[i * a.ldx + src]);
          xb[i * kp + k + j] = v;
          if (c.xsum) {
            const float f = std::bit_cast<float>(uint32_t(v) << 16);
            const_cast<float*>(c.xsum)[i * G + src / c.group] += f;
          }
        }
    c.xb = xb;
  } else {
    float* xf = grow(s.xf, size_t(m * kp));
    if (!a.xq && !c.xsum) {  // fp32 activations: only the cell order changes
      const __m512i perm = _mm512_load_si512(four ? kCell8x2 : kCell4x4);
      for (int64_t i = 0; i < m; ++i) {
        const float* x = a.x + i * a.ldx;
        int64_t k = 0;
        for (; k + 16 <= kp; k += 16) _mm512_storeu_ps(xf + i * kp + k, _mm512_permutexvar_ps(perm, _mm512_loadu_ps(x + k)));
        for (; k < kp; k += cell)
          for (int j = 0; j < cell; ++j) xf[i * kp + k + j] = x[k + (four ? kPerm8[j] : kPerm4[j])];
      }
      c.xf = xf;
      return;
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t k = 0; k < kp; k += cell)
        for (int j = 0; j < cell; ++j) {
          const int64_t src = k + (four ? kPerm8[j] : kPerm4[j]);
          const float v = x_value(a, xt, i, src);
          xf[i * kp + k + j] = v;
          if (c.xsum) const_cast<float*>(c.xsum)[i * G + src / c.group] += v;
        }
    c.xf = xf;
  }
}

// ---------------------------------------------------------------------------------------
// R rows × one tile, one accumulator chain per decoded pair q (kChains4 of them, see there),
// which also cover the ~5-cycle latency of vdpbf16ps at one row.
template <int R>
void tile_bf16_4bit(const Call& c, int64_t t, int64_t r0) {
  const uint8_t* wt = c.w->tile(t);
  const uint16_t* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = c.xb + (r0 + r) * c.ldp;
  const __m512i table = _mm512_load_si512(c.wt->t4);
  float_4bit_groups<R>(c, t, r0, [&](int64_t k, __m512 (&acc)[R][kChains4]) {
    const uint8_t* p = wt + k * 8;
    _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
    __m512i w[4];
    decode4(p, table, w);
    for (int r = 0; r < R; ++r) {
      const uint16_t* xp = xr[r] + k;
      for (int q = 0; q < 4; ++q)
        acc[r][q] = _mm512_dpbf16_ps(acc[r][q], as_bh(w[q]), as_bh(_mm512_set1_epi32(int(load_u32(xp + 2 * q)))));
    }
  });
}

template <int R>
void tile_f32_4bit(const Call& c, int64_t t, int64_t r0) {
  const uint8_t* wt = c.w->tile(t);
  const float* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = c.xf + (r0 + r) * c.ldp;
  const __m512i table = _mm512_load_si512(c.wt->t4);
  const __m512i high = _mm512_set1_epi32(int(0xFFFF0000u));
  float_4bit_groups<R>(c, t, r0, [&](int64_t k, __m512 (&acc)[R][kChains4]) {
    const uint8_t* p = wt + k * 8;
    _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
    __m512i w[4];
    decode4(p, table, w);
    for (int q = 0; q < 4; ++q) {
      const __m512 wa = _mm512_castsi512_ps(_mm512_slli_epi32(w[q], 16));
      const __m512 wb = _mm512_castsi512_ps(_mm512_and_si512(w[q], high));
      for (int r = 0; r < R; ++r) {
        const float* xp = xr[r] + k + 2 * q;
        acc[r][(2 * q) % kChains4] = _mm512_fmadd_ps(wa, _mm512_set1_ps(xp[0]), acc[r][(2 * q) % kChains4]);
        acc[r][(2 * q + 1) % kChains4] = _mm512_fmadd_ps(wb, _mm512_set1_ps(xp[1]), acc[r][(2 * q + 1) % kChains4]);
      }
    }
  });
}

template <int R, int S>
void tile_int8_4bit(const Call& c, int64_t t, int64_t r0) {
  const uint8_t* wt = c.w->tile(t);
  const int8_t* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = c.x8 + (r0 + r) * c.ldp;
  const __m512i table = int8_code_table(c);
  __m512 tot[R];
  for (int r = 0; r < R; ++r) tot[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < c.groups; ++g) {
    const int64_t k0 = g * c.group, k1 = std::min(c.kp, k0 + c.group);
    __m512i acc[R][S];
    for (int r = 0; r < R; ++r) {
      acc[r][0] = _mm512_set1_epi32(c.xoff[(r0 + r) * c.groups + g]);
      for (int s = 1; s < S; ++s) acc[r][s] = _mm512_setzero_si512();
    }
    for (int64_t k = k0; k < k1; k += 8) {
      const uint8_t* p = wt + k * 8;
      _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
      const __m512i v = _mm512_load_si512(p);
      const __m512i wl = _mm512_permutexvar_epi8(v, table);
      const __m512i wh = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), table);
      for (int r = 0; r < R; ++r) {
        const int8_t* xp = xr[r] + k;
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], wl, _mm512_set1_epi32(int(load_u32(xp))));
        acc[r][1 % S] = _mm512_dpbusd_epi32(acc[r][1 % S], wh, _mm512_set1_epi32(int(load_u32(xp + 4))));
      }
    }
    const __m512 ws = weight_scale(c, t, g);
    for (int r = 0; r < R; ++r) {
      __m512i v = acc[r][0];
      for (int s = 1; s < S; ++s) v = _mm512_add_epi32(v, acc[r][s]);
      tot[r] = int8_group_end(c, v, ws, r0 + r, g, tot[r]);
    }
  }
  for (int r = 0; r < R; ++r) store_row(c, r0 + r, t, tot[r]);
}

// ---------------------------------------------------------------------------------------
// 8-bit weights. Dword 4c + j of the unpacklo (A) / unpackhi (B) vectors holds lane
// 4c + j/2 (A) or 4c + 2 + j/2 (B); these index vectors move natural lanes there and back.
alignas(64) constexpr int32_t kLaneA[16] = {0, 0, 1, 1, 4, 4, 5, 5, 8, 8, 9, 9, 12, 12, 13, 13};
alignas(64) constexpr int32_t kLaneB[16] = {2, 2, 3, 3, 6, 6, 7, 7, 10, 10, 11, 11, 14, 14, 15, 15};
template <int R, bool kF32>
void tile_8bit(const Call& c, int64_t t, int64_t r0) {
  const uint8_t* wt = c.w->tile(t);
  const float* xf[R] = {};
  const uint16_t* xb[R] = {};
  for (int r = 0; r < R; ++r) {
    if constexpr (kF32)
      xf[r] = c.xf + (r0 + r) * c.ldp;
    else
      xb[r] = c.xb + (r0 + r) * c.ldp;
  }
  const Decoder8 dec(*c.wt);
  const __m512i high = _mm512_set1_epi32(int(0xFFFF0000u));
  const __m512i lane_a = _mm512_load_si512(kLaneA), lane_b = _mm512_load_si512(kLaneB);
  __m512 tot_a[R], tot_b[R];
  for (int r = 0; r < R; ++r) tot_a[r] = tot_b[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < c.groups; ++g) {
    const int64_t k0 = g * c.group, k1 = std::min(c.kp, k0 + c.group);
    __m512 acc_a[R], acc_b[R];
    for (int r = 0; r < R; ++r) acc_a[r] = acc_b[r] = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; k += 4) {
      const uint8_t* p = wt + k * 16;
      _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
      __m512i a, b;
      dec(p, a, b);
      if constexpr (kF32) {
        // Pairs widened: low words are k0 (even dwords) / k2 (odd), high words k1 / k3; x is
        // stored x0 x2 x1 x3 per cell, so one 64-bit broadcast feeds each.
        const __m512 al = _mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), ah = _mm512_castsi512_ps(_mm512_and_si512(a, high));
        const __m512 bl = _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), bh = _mm512_castsi512_ps(_mm512_and_si512(b, high));
        for (int r = 0; r < R; ++r) {
          const float* xp = xf[r] + k;
          const __m512 xl = _mm512_castsi512_ps(_mm512_set1_epi64(int64_t(load_u64(xp))));
          const __m512 xh = _mm512_castsi512_ps(_mm512_set1_epi64(int64_t(load_u64(xp + 2))));
          acc_a[r] = _mm512_fmadd_ps(ah, xh, _mm512_fmadd_ps(al, xl, acc_a[r]));
          acc_b[r] = _mm512_fmadd_ps(bh, xh, _mm512_fmadd_ps(bl, xl, acc_b[r]));
        }
      } else {
        for (int r = 0; r < R; ++r) {
          const __m512i xv = _mm512_set1_epi64(int64_t(load_u64(xb[r] + k)));
          acc_a[r] = _mm512_dpbf16_ps(acc_a[r], as_bh(a), as_bh(xv));
          acc_b[r] = _mm512_dpbf16_ps(acc_b[r], as_bh(b), as_bh(xv));
        }
      }
    }
    const __m512 ws = weight_scale(c, t, g);
    const __m512 ws_a = _mm512_permutexvar_ps(lane_a, ws), ws_b = _mm512_permutexvar_ps(lane_b, ws);
    __m512 z_a = _mm512_setzero_ps(), z_b = _mm512_setzero_ps();
    if (c.a->zero) {
      const __m512 z = _mm512_loadu_ps(c.a->zero->lanes(t, g));
      // Each lane's zero correction is split over its two pair dwords: half in each.
      z_a = _mm512_mul_ps(_mm512_permutexvar_ps(lane_a, z), _mm512_set1_ps(0.5f));
      z_b = _mm512_mul_ps(_mm512_permutexvar_ps(lane_b, z), _mm512_set1_ps(0.5f));
    }
    for (int r = 0; r < R; ++r) {
      if (c.xsum) {
        const __m512 xs = _mm512_set1_ps(c.xsum[(r0 + r) * c.groups + g]);
        acc_a[r] = _mm512_fnmadd_ps(z_a, xs, acc_a[r]);
        acc_b[r] = _mm512_fnmadd_ps(z_b, xs, acc_b[r]);
      }
      tot_a[r] = _mm512_fmadd_ps(acc_a[r], row_scale(c, ws_a, r0 + r, g), tot_a[r]);
      tot_b[r] = _mm512_fmadd_ps(acc_b[r], row_scale(c, ws_b, r0 + r, g), tot_b[r]);
    }
  }
  const __m512i even = _mm512_load_si512(kEven), odd = _mm512_load_si512(kOdd);
  for (int r = 0; r < R; ++r)
    store_row(c, r0 + r, t,
              _mm512_add_ps(_mm512_permutex2var_ps(tot_a[r], even, tot_b[r]),
                            _mm512_permutex2var_ps(tot_a[r], odd, tot_b[r])));
}

// ---------------------------------------------------------------------------------------
using TileFn = void (*)(const Call&, int64_t t, int64_t r0);

// Row-block kernels by rows (index 1..max) for the call's mode and code width.
TileFn pick(const Call& c, int64_t rows) {
  const bool four = c.w->bits() == 4;
  switch (c.mode) {
    case Mode::Int8: {
      static constexpr TileFn k[] = {nullptr, tile_int8_4bit<1, 2>, tile_int8_4bit<2, 2>, tile_int8_4bit<3, 2>,
                                     tile_int8_4bit<4, 2>, tile_int8_4bit<5, 1>, tile_int8_4bit<6, 1>,
                                     tile_int8_4bit<7, 1>, tile_int8_4bit<8, 1>};
      return k[rows];
    }
    case Mode::Bf16:
      if (four) {
        static constexpr TileFn k[] = {nullptr,           tile_bf16_4bit<1>, tile_bf16_4bit<2>, tile_bf16_4bit<3>,
                                       tile_bf16_4bit<4>, tile_bf16_4bit<5>, tile_bf16_4bit<6>};
        return k[rows];
      } else {
        static constexpr TileFn k[] = {nullptr, tile_8bit<1, false>, tile_8bit<2, false>, tile_8bit<3, false>,
                                       tile_8bit<4, false>};
        return k[rows];
      }
    case Mode::F32:
      if (four) {
        static constexpr TileFn k[] = {nullptr, tile_f32_4bit<1>, tile_f32_4bit<2>, tile_f32_4bit<3>,
                                       tile_f32_4bit<4>};
        return k[rows];
      } else {
        static constexpr TileFn k[] = {nullptr, tile_8bit<1, true>, tile_8bit<2, true>, tile_8bit<3, true>,
                                       tile_8bit<4, true>};
        return k[rows];
      }
  }
  return nullptr;
}

int64_t max_rows(const Call& c) {
  if (c.mode == Mode::Int8) return 8;
  return c.mode == Mode::Bf16 && c.w->bits() == 4 ? 6 : 4;
}

// bf16: the CPU has AVX512-BF16, so the Bf16 mode (vdpbf16ps) may run; without it coded
// activations are widened to fp32 too and only fp32 FMAs and VNNI integer dots execute.
void code_gemm(const CodeGemmArgs& a, int64_t t0, int64_t t1, bool bf16) {
  if (a.m <= 0 || t0 >= t1) return;
  Call c;
  c.a = &a;
  c.w = a.w;
  c.kp = a.w->k_pad();
  c.n = a.w->n();
  c.group = a.group ? a.group : c.kp;
  c.groups = (c.kp + c.group - 1) / c.group;
  const bool four = a.w->bits() == 4;
  c.wt = &tables_for(a.lut, four ? 16 : 256);
  if (!c.wt->bf16) {
    kQuantGemmPortable.code_gemm(a, t0, t1);
    return;
  }
  const Tables* xt = a.xq ? &tables_for(a.x_lut, a.x_bits == 4 ? 16 : 256) : nullptr;
  if (xt) {
    c.mode = xt->bf16 && bf16 ? Mode::Bf16 : Mode::F32;
    if (four && a.x_bits == 4 && c.wt->int8 && xt->int8 && !a.zero && c.group <= 4096 &&
        c.wt->max_twice - c.wt->min_twice <= 255) {
      c.mode = Mode::Int8;
      c.int8_offset = -c.wt->min_twice;
    }
  } else {
    c.mode = a.x_bf16_ok && bf16 ? Mode::Bf16 : Mode::F32;
  }
  // A call runs as several tile ranges per thread; its activations are converted on the first.
  thread_local Scratch scratch;
  if (a.call_id != 0 && a.call_id == scratch.call_id) {
    // Only what prepare() wrote: the rest is this range's own (its args object may differ).
    const Call& p = scratch.prepared;
    c.ldp = p.ldp;
    c.xb = p.xb, c.xf = p.xf, c.x8 = p.x8;
    c.xsum = p.xsum, c.xoff = p.xoff, c.xs4 = p.xs4;
  } else {
    prepare(c, xt, scratch);
    scratch.call_id = a.call_id;
    scratch.prepared = c;
  }
  if (c.mode == Mode::F32 && a.m >= kPanelRows) {
    panel_gemm_f32(c, t0, t1);
    return;
  }
  if (c.mode == Mode::Bf16 && four && a.m >= kPanelRows) {
    panel_gemm_bf16_4bit(c, t0, t1);
    return;
  }
  if (c.mode == Mode::Int8 && a.m >= kPanelRows) {
    panel_gemm_int8_4bit(c, t0, t1);
    return;
  }
  const int64_t block = max_rows(c);
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t r0 = 0; r0 < a.m; r0 += block) {
      const int64_t rows = std::min(block, a.m - r0);
      pick(c, rows)(c, t, r0);
    }
}

}  // namespace

void code_gemm_avx512(const CodeGemmArgs& a, int64_t t0, int64_t t1) { code_gemm(a, t0, t1, true); }
void code_gemm_avx512_f32(const CodeGemmArgs& a, int64_t t0, int64_t t1) { code_gemm(a, t0, t1, false); }

}  // namespace lowbit
