// AVX-512 VNNI integer GEMM over PackedCodes (see int_gemm_vnni.h).
//
// vpdpbusd multiplies unsigned by signed bytes. The activations are signed and broadcast four
// at a time (one K step of one row), so the WEIGHTS are made unsigned by a bias B, and the
// bias is removed per (row, group) with the activation sums S = Σ_{k∈g} xq:
//   Σ xq·(w − z) = Σ xq·(w − z + B) − B·S.
// Every term fits int32 for K ≤ 2^16 (|xq·(w − z + B)| ≤ 128·255, |B·S| ≤ 2^30) and the
// arithmetic wraps, so the difference is exact.
//
// Decode (m ≤ 8) streams every weight byte once: one register block of all rows × T tiles,
// B = 128 (int8 w ^ 0x80) or 8 (int4 nibble ^ 8, then mask / shift) applied per K step, zero
// points subtracted as (B + z)·S, software prefetch ahead on each tile's stream.
//
// Prefill (m > 8) is compute-bound, so the per-step weight decoding moves out of the K loop.
// Tiles go in blocks of T = 4 (64 columns). The first block of rows over a tile block reads the
// packed codes (streaming them from memory, prefetched ahead), decodes each line in registers
// to unsigned bytes u = w − z + 128 and, besides using them, stores them to a per-thread
// scratch in "int8 view" (int4's low and high nibbles become two lines of 4 K each),
// [line][tile][64 bytes]: one contiguous stream of T·16·k_pad bytes (128 KiB at K = 2048) that
// stays in L2. Every further block of R = 6 rows runs the whole K over that scratch with
// R·T = 24 int32 accumulators in registers: per K step T weight loads, R activation broadcasts
// and R·T vpdpbusd, nothing else on the vector ALU ports (measured ~85 % of the 2/cycle
// vpdpbusd peak at 512×2048×6144). Those blocks also prefetch the next tile block's packed
// codes into L2, so the next decoding block does not wait for memory. y is written once; with
// groups the int32 sums are flushed to fp32 sums (in L1) after each group. Zero points that do
// not fit the unsigned byte (int8 weights, or |z| > 120) stay out of u and are subtracted as
// z·S per group instead.

// GCC 12's AVX-512 headers initialise their "undefined" operands from themselves (__Y = __Y),
// which -Wmaybe-uninitialized reports at every inlined use; those values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "kernels/cpu/int_gemm_vnni.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

namespace lowbit {

namespace {

constexpr int kMaxRows = 8;             // decode: rows per register block (all of m)
constexpr int64_t kLine = 64;           // bytes per K step of a tile: 16 lanes × 4 codes
constexpr int64_t kPrefetchLines = 16;  // decode: 1 KiB ahead on each weight stream

// Decode tiles per register block. In the K loop R·T int32 accumulators, the T decoded weight
// vectors (2T for int4: low and high nibbles) and a broadcast or two fit the 32 zmm registers.
constexpr int tiles_for(int rows, bool int4) {
  return int4 ? (rows <= 4 ? 4 : rows <= 6 ? 3 : 2) : (rows <= 6 ? 4 : 3);
}

inline __m512i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// (v ^ 0x88) & 0x0F per byte: the unsigned value w + 8 of the low nibbles (vpternlog 0x28).
inline __m512i low_nibbles_biased(__m512i v, __m512i c88, __m512i c0f) {
  return _mm512_ternarylogic_epi32(v, c88, c0f, 0x28);
}

// y rows [i0, i0 + R), tiles [t, t + T) from the fp32 sums: · row scale · column scale + bias,
// lanes past N masked off.
template <int R, int T>
inline void store_rows(const IntGemmArgs& a, int64_t i0, int64_t t, const __m512 (&out)[R][T]) {
  const int64_t n = a.w->n();
  for (int j = 0; j < T; ++j) {
    const int64_t nb = (t + j) * kTileN;
    const __mmask16 lanes = n - nb >= kTileN ? __mmask16(0xFFFF) : __mmask16((1u << (n - nb)) - 1);
    for (int r = 0; r < R; ++r) {
      __m512 v = out[r][j];
      if (a.row_scale) v = _mm512_mul_ps(v, _mm512_set1_ps(a.row_scale[i0 + r]));
      if (a.col_scale) v = _mm512_mul_ps(v, _mm512_loadu_ps(a.col_scale + nb));
      if (a.col_bias) v = _mm512_add_ps(v, _mm512_loadu_ps(a.col_bias + nb));
      _mm512_mask_storeu_ps(a.y + (i0 + r) * a.ldy + nb, lanes, v);
    }
  }
}

// ---- Decode: m ≤ 8.

struct Plan {
  const IntGemmArgs* a = nullptr;
  int64_t lines = 0;        // K steps per tile (k_pad / 4 or / 8)
  int64_t group_lines = 0;  // K steps per group (lines without groups)
  int64_t groups = 1;       // row_group_sum entries per row
  const int32_t* sums = nullptr;
};

// Σ over lines [l0, l1) for R rows × T tiles: each line of the T tiles is decoded once, then
// every row broadcasts its 4 codes and updates its T accumulators. Not inlined: inlined into
// block(), GCC 12 kept the 8 × 3 int8 accumulators in registers but also stored every one to
// the stack on every line (a copy for the caller's array), which halved m = 8 (a server's
// decode step): 2048×6144 int8 at m = 8 went from 455-500 to 243-263 µs on Zen4 (2 threads).
template <int R, int T, bool kInt4>
__attribute__((noinline)) void dot(const uint8_t* const* w, const int8_t* const* x, int64_t l0, int64_t l1, __m512i (&out)[R][T]) {
  const __m512i c80 = _mm512_set1_epi8(char(0x80)), c88 = _mm512_set1_epi8(char(0x88)), c0f = _mm512_set1_epi8(0x0F);
  // A local copy GCC keeps in registers (through the caller's array it stores every line).
  __m512i acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) acc[r][j] = _mm512_setzero_si512();
  const uint8_t* wp[T];
  for (int j = 0; j < T; ++j) wp[j] = w[j];
  for (int64_t l = l0; l < l1; ++l) {
    __m512i lo[T], hi[T];
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(wp[j] + (l + kPrefetchLines) * kLine), _MM_HINT_T0);
      const __m512i v = _mm512_load_si512(wp[j] + l * kLine);
      if constexpr (kInt4) {
        lo[j] = low_nibbles_biased(v, c88, c0f);
        hi[j] = low_nibbles_biased(_mm512_srli_epi16(v, 4), c88, c0f);
      } else {
        lo[j] = _mm512_xor_si512(v, c80);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i xl = broadcast4(x[r] + (kInt4 ? 8 : 4) * l);
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], lo[j], xl);
      if constexpr (kInt4) {
        const __m512i xh = broadcast4(x[r] + 8 * l + 4);
#pragma GCC unroll 4
        for (int j = 0; j < T; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], hi[j], xh);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) out[r][j] = acc[r][j];
}

// acc − (B + z)·S for group g of tiles [t, t + T): the exact Σ xq·(w − z).
template <int R, int T, bool kInt4>
inline void unbias(const Plan& p, int64_t i0, int64_t t, int64_t g, __m512i (&acc)[R][T]) {
  constexpr int32_t kBias = kInt4 ? 8 : 128;
  const IntGemmArgs& a = *p.a;
  const int32_t* s = p.sums + i0 * p.groups + g;
  if (a.group_zero) {
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) {
      const __m512i z = _mm512_cvtps_epi32(_mm512_load_ps(a.group_zero->lanes(t + j, g)));
      const __m512i bz = _mm512_add_epi32(_mm512_set1_epi32(kBias), z);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        acc[r][j] = _mm512_sub_epi32(acc[r][j], _mm512_mullo_epi32(bz, _mm512_set1_epi32(s[r * p.groups])));
    }
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i c = _mm512_set1_epi32(int32_t(uint32_t(kBias) * uint32_t(s[r * p.groups])));
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) acc[r][j] = _mm512_sub_epi32(acc[r][j], c);
    }
  }
}

// The register block at rows [i0, i0 + R) (all of m), tiles [t, t + T), the whole K.
template <int R, int T, bool kInt4, bool kGrouped>
void block(const Plan& p, int64_t i0, int64_t t) {
  const IntGemmArgs& a = *p.a;
  const uint8_t* w[T];
  for (int j = 0; j < T; ++j) w[j] = a.w->tile(t + j);
  const int8_t* x[R];
  for (int r = 0; r < R; ++r) x[r] = a.xq + (i0 + r) * a.ldxq;
  // Fetch the output lines this block will write now, so their misses overlap the K loop.
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < T; ++j) {
      const float* y = a.y + (i0 + r) * a.ldy + (t + j) * kTileN;
      _mm_prefetch(reinterpret_cast<const char*>(y), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(y + kTileN - 1), _MM_HINT_T0);
    }

  __m512i acc[R][T];
  __m512 out[R][T];
  if constexpr (kGrouped) {
    // fp32 group sums wait in L1, leaving the registers to the K loop.
    alignas(64) float sums[R][T][kTileN];
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t g = 0, b = 0; b < p.lines; ++g, b += p.group_lines) {
      dot<R, T, kInt4>(w, x, b, std::min(p.lines, b + p.group_lines), acc);
      unbias<R, T, kInt4>(p, i0, t, g, acc);
      for (int j = 0; j < T; ++j) {
        const __m512 gs = a.group_scale ? _mm512_load_ps(a.group_scale->lanes(t + j, g)) : one;
        for (int r = 0; r < R; ++r) {
          const __m512 prev = g == 0 ? _mm512_setzero_ps() : _mm512_load_ps(sums[r][j]);
          _mm512_store_ps(sums[r][j], _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][j]), gs, prev));
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < T; ++j) out[r][j] = _mm512_load_ps(sums[r][j]);
  } else {
    dot<R, T, kInt4>(w, x, 0, p.lines, acc);
    unbias<R, T, kInt4>(p, i0, t, 0, acc);
    for (int j = 0; j < T; ++j) {
      const __m512i cib =
          a.col_int_bias ? _mm512_loadu_si512(a.col_int_bias + (t + j) * kTileN) : _mm512_setzero_si512();
      for (int r = 0; r < R; ++r) out[r][j] = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][j], cib));
    }
  }
  store_rows<R, T>(a, i0, t, out);
}

// All m ≤ 8 rows over tiles [t0, t1), T at a time, then one by one.
template <int R, bool kInt4, bool kGrouped>
void decode_rows(const Plan& p, int64_t t0, int64_t t1) {
  constexpr int T = tiles_for(R, kInt4);
  int64_t t = t0;
  for (; t + T <= t1; t += T) block<R, T, kInt4, kGrouped>(p, 0, t);
  for (; t < t1; ++t) block<R, 1, kInt4, kGrouped>(p, 0, t);
}

template <bool kInt4, bool kGrouped>
void decode(const Plan& p, int64_t t0, int64_t t1) {
  using Fn = void (*)(const Plan&, int64_t, int64_t);
  static constexpr Fn kByRows[kMaxRows] = {
      decode_rows<1, kInt4, kGrouped>, decode_rows<2, kInt4, kGrouped>, decode_rows<3, kInt4, kGrouped>,
      decode_rows<4, kInt4, kGrouped>, decode_rows<5, kInt4, kGrouped>, decode_rows<6, kInt4, kGrouped>,
      decode_rows<7, kInt4, kGrouped>, decode_rows<8, kInt4, kGrouped>};
  kByRows[p.a->m - 1](p, t0, t1);
}

// ---- Prefill: m > 8.

constexpr int kRows = 6, kTiles = 4;  // register block: 24 accumulators, 4 weight vectors, 1 broadcast
// The first row block of a tile block also decodes: int4 needs 2T decoded vectors, so fewer rows.
constexpr int first_rows(bool int4) { return int4 ? 4 : kRows; }
constexpr int32_t kU8Bias = 128;

struct Prefill {
  const IntGemmArgs* a = nullptr;
  int64_t lines = 0;        // int8-view K steps per tile: k_pad / 4
  int64_t group_lines = 0;  // int8-view K steps per group (lines without groups)
  int64_t groups = 1;
  const int32_t* sums = nullptr;  // S per row and group, [m][groups]
  bool fold_zero = false;         // zero points are inside u (else subtracted as z·S)
  uint8_t* u = nullptr;           // the decoded tile block: [line][T][64]
};

// Zero points fold into u = w − z + 128 when every w − z fits [−128, 127]: int4 weights and
// integer |z| ≤ 120 on tiles [t0, t1).
bool zeros_fold(const IntGemmArgs& a, int64_t t0, int64_t t1, int64_t groups) {
  if (!a.group_zero) return true;
  if (a.w->bits() != 4) return false;
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t g = 0; g < groups; ++g) {
      const float* z = a.group_zero->lanes(t, g);
      for (int64_t l = 0; l < kTileN; ++l)
        if (!(std::fabs(z[l]) <= 120.0f) || z[l] != std::nearbyint(z[l])) return false;
    }
  return true;
}

// The K loop of a register block over int8-view lines [l0, l1): R·T accumulators start at
// start[r] and end in out[r][j]. Every row block but the first reads the decoded tile block u
// ([line][T][64] bytes, u = w − z + 128 (mod 256, the value is in [0, 255]): one contiguous
// stream from L2) and does nothing but broadcasts and vpdpbusd. The first (kDecode) reads the
// packed tiles w[j] instead, decodes each line in registers, uses it and stores it to u:
//   int8: u = w ^ 0x80 (zero points of int8 weights never fold);
//   int4: packed line L holds K 8L..8L+3 in its low nibbles and 8L+4..8L+7 in its high ones,
//         int8-view lines 2L and 2L + 1; u = (nibble ^ 8) + off4[j] with off4 = 120 − z.
// Not inlined: GCC keeps the accumulators in registers only when the K loop is all the function
// does (inside the caller's group loop it spills them every step).
template <int R, int T, bool kInt4, bool kDecode>
__attribute__((noinline)) void dot_u8(const uint8_t* const* w, uint8_t* u, const uint8_t (*off4)[kLine],
                                      const int8_t* const* x, int64_t l0, int64_t l1, const int32_t* start,
                                      int32_t (*out)[T][kTileN], const char* next, int64_t next_lines) {
  __m512i acc[R][T];
  const int8_t* xp[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    xp[r] = x[r];
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) acc[r][j] = _mm512_set1_epi32(start[r]);
  }
  // One packed line: 1 int8-view line (int8), 2 (int4).
  constexpr int kViews = kDecode && kInt4 ? 2 : 1;
  const __m512i c80 = _mm512_set1_epi8(char(0x80)), c88 = _mm512_set1_epi8(char(0x88)), c0f = _mm512_set1_epi8(0x0F);
  uint8_t* up = u + l0 * T * kLine;
  for (int64_t l = l0; l < l1; l += kViews, up += kViews * T * kLine) {
    __m512i wv[kViews][T];
    if constexpr (kDecode) {
      const int64_t pl = l / kViews;  // packed line
      // Opaque to the optimiser, so off4 stays a memory operand instead of T more registers.
      const uint8_t(*off)[kLine] = off4;
      __asm__("" : "+r"(off));
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) {
        _mm_prefetch(reinterpret_cast<const char*>(w[j] + (pl + kPrefetchLines) * kLine), _MM_HINT_T0);
        const __m512i v = _mm512_load_si512(w[j] + pl * kLine);
        if constexpr (kInt4) {
          const __m512i o = _mm512_load_si512(off[j]);
          wv[0][j] = _mm512_add_epi8(low_nibbles_biased(v, c88, c0f), o);
          wv[1][j] = _mm512_add_epi8(low_nibbles_biased(_mm512_srli_epi16(v, 4), c88, c0f), o);
          _mm512_store_si512(up + (T + j) * kLine, wv[1][j]);
        } else {
          wv[0][j] = _mm512_xor_si512(v, c80);
        }
        _mm512_store_si512(up + j * kLine, wv[0][j]);
      }
    } else {
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) wv[0][j] = _mm512_load_si512(up + j * kLine);
      if (l - l0 < next_lines) _mm_prefetch(next + (l - l0) * kLine, _MM_HINT_T1);
    }
#pragma GCC unroll 2
    for (int h = 0; h < kViews; ++h)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512i xb = broadcast4(xp[r] + 4 * (l + h));
#pragma GCC unroll 4
        for (int j = 0; j < T; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], wv[h][j], xb);
      }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) _mm512_store_si512(out[r][j], acc[r][j]);
}

// Rows [i0, i0 + R) × tiles [t, t + T) over the whole K, into y. Each group's int32 sums start
// at −128·S (removing u's bias) and, when zero points are not in u, lose z·S after the K loop;
// then they scale into the fp32 sums.
template <int R, int T, bool kInt4, bool kDecode, bool kGrouped>
void prefill_block(const Prefill& p, int64_t i0, int64_t t, const char* next, int64_t next_lines) {
  const IntGemmArgs& a = *p.a;
  const uint8_t* w[T];
  for (int j = 0; j < T; ++j) w[j] = a.w->tile(t + j);
  const int8_t* x[R];
  for (int r = 0; r < R; ++r) x[r] = a.xq + (i0 + r) * a.ldxq;
  // Fetch the output lines this block will write now, so their misses overlap the K loop.
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < T; ++j) {
      const float* y = a.y + (i0 + r) * a.ldy + (t + j) * kTileN;
      _mm_prefetch(reinterpret_cast<const char*>(y), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(y + kTileN - 1), _MM_HINT_T0);
    }
  alignas(64) int32_t acc[R][T][kTileN];
  alignas(64) float sums[R][T][kTileN];
  alignas(64) uint8_t off4[T][kLine];
  int32_t start[R];
  const bool sub_zero = !p.fold_zero && a.group_zero;
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t g = 0, b = 0; b < p.lines; ++g, b += p.group_lines) {
    const int32_t* s = p.sums + i0 * p.groups + g;
    for (int r = 0; r < R; ++r) start[r] = int32_t(0u - uint32_t(kU8Bias) * uint32_t(s[r * p.groups]));
    if (kDecode && kInt4)  // 120 − z as bytes, each lane's value in its 4 bytes
      for (int j = 0; j < T; ++j) {
        __m512i o = _mm512_set1_epi32(kU8Bias - 8);
        if (p.fold_zero && a.group_zero)
          o = _mm512_sub_epi32(o, _mm512_cvtps_epi32(_mm512_load_ps(a.group_zero->lanes(t + j, g))));
        o = _mm512_mullo_epi32(_mm512_and_si512(o, _mm512_set1_epi32(0xFF)), _mm512_set1_epi32(0x01010101));
        _mm512_store_si512(off4[j], o);
      }
    const int64_t e = std::min(p.lines, b + p.group_lines), pf = std::min(next_lines, e - b);
    dot_u8<R, T, kInt4, kDecode>(w, p.u, off4, x, b, e, start, acc, next, kDecode ? 0 : pf);
    next += pf * kLine;
    next_lines -= pf;
    for (int j = 0; j < T; ++j) {
      const __m512i z = sub_zero ? _mm512_cvtps_epi32(_mm512_load_ps(a.group_zero->lanes(t + j, g))) : __m512i{};
      const __m512 gs = kGrouped && a.group_scale ? _mm512_load_ps(a.group_scale->lanes(t + j, g)) : one;
      const __m512i cib = !kGrouped && a.col_int_bias ? _mm512_loadu_si512(a.col_int_bias + (t + j) * kTileN)
                                                      : _mm512_setzero_si512();
      for (int r = 0; r < R; ++r) {
        __m512i v = _mm512_load_si512(acc[r][j]);
        if (sub_zero) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(z, _mm512_set1_epi32(s[r * p.groups])));
        if constexpr (kGrouped) {
          const __m512 prev = g == 0 ? _mm512_setzero_ps() : _mm512_load_ps(sums[r][j]);
          _mm512_store_ps(sums[r][j], _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), gs, prev));
        } else {
          _mm512_store_ps(sums[r][j], _mm512_cvtepi32_ps(_mm512_add_epi32(v, cib)));
        }
      }
    }
  }
  __m512 out[R][T];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < T; ++j) out[r][j] = _mm512_load_ps(sums[r][j]);
  store_rows<R, T>(a, i0, t, out);
}

// A block of rows over tiles [t, t + T), R = 1..kRows chosen at run time.
template <int T, bool kInt4, bool kDecode, bool kGrouped>
void prefill_rows(int rows, const Prefill& p, int64_t i0, int64_t t, const char* next, int64_t next_lines) {
  using Fn = void (*)(const Prefill&, int64_t, int64_t, const char*, int64_t);
  static constexpr Fn kByRows[kRows] = {
      prefill_block<1, T, kInt4, kDecode, kGrouped>, prefill_block<2, T, kInt4, kDecode, kGrouped>,
      prefill_block<3, T, kInt4, kDecode, kGrouped>, prefill_block<4, T, kInt4, kDecode, kGrouped>,
      prefill_block<5, T, kInt4, kDecode, kGrouped>, prefill_block<6, T, kInt4, kDecode, kGrouped>};
  kByRows[rows - 1](p, i0, t, next, next_lines);
}

// Tiles [t, t + T): the first row block decodes them into u, the others read u. Those also
// prefetch the packed bytes of the next tiles (up to t_end) into L2, a line per K step, so that
// the next first row block, which is memory-bound when it has to wait for them, reads L2.
template <int T, bool kInt4, bool kGrouped>
void prefill_tiles(const Prefill& p, int64_t t, int64_t t_end) {
  const PackedCodes& w = *p.a->w;
  const int64_t m = p.a->m;
  const int64_t first = std::min<int64_t>(m, first_rows(kInt4));
  prefill_rows<T, kInt4, true, kGrouped>(int(first), p, 0, t, nullptr, 0);
  const char* next = reinterpret_cast<const char*>(w.tile(t + T));
  int64_t next_lines = t + T < t_end ? (w.tile(std::min(t_end, t + 2 * T)) - w.tile(t + T)) / kLine : 0;
  // The other rows in blocks of at most kRows, balanced (12 rows of int4: 4 + 4 + 4, not
  // 4 + 6 + 2: a block of few rows is bound by the L2 stream of u, not by vpdpbusd).
  const int64_t blocks = (m - first + kRows - 1) / kRows;
  for (int64_t b = 0, i0 = first; b < blocks; ++b) {
    const int64_t rows = (m - first) / blocks + (b < (m - first) % blocks ? 1 : 0);
    prefill_rows<T, kInt4, false, kGrouped>(int(rows), p, i0, t, next, next_lines);
    i0 += rows;
    const int64_t done = std::min(next_lines, p.lines);  // one line per K step
    next += done * kLine;
    next_lines -= done;
  }
}

template <bool kInt4, bool kGrouped>
void prefill(const Prefill& p, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + kTiles <= t1; t += kTiles) prefill_tiles<kTiles, kInt4, kGrouped>(p, t, t1);
  using Fn = void (*)(const Prefill&, int64_t, int64_t);
  static constexpr Fn kTail[kTiles] = {nullptr, prefill_tiles<1, kInt4, kGrouped>, prefill_tiles<2, kInt4, kGrouped>,
                                       prefill_tiles<3, kInt4, kGrouped>};
  if (t < t1) kTail[t1 - t](p, t, t1);
}

}  // namespace

void int_gemm_vnni(const IntGemmArgs& a, int64_t t0, int64_t t1) {
  if (a.m <= 0 || t0 >= t1) return;
  const PackedCodes& w = *a.w;
  const bool int4 = w.bits() == 4, grouped = a.group > 0;
  const int64_t lines = w.k_pad() / w.k_step(), group_lines = grouped ? a.group / w.k_step() : lines;
  const int64_t groups = (lines + group_lines - 1) / group_lines;
  // Grow-only per-thread scratch: activation sums when the caller has none, decoded weights.
  thread_local std::vector<int32_t> sums;
  struct alignas(64) Line {
    uint8_t b[kLine];
  };
  thread_local std::unique_ptr<Line[]> u;
  thread_local size_t u_lines = 0;
  const int32_t* s = a.row_group_sum;
  if (!s) {
    const int64_t kp = w.k_pad(), group = grouped ? a.group : kp;
    if (sums.size() < size_t(a.m * groups)) sums.resize(size_t(a.m * groups));
    for (int64_t i = 0; i < a.m; ++i)
      for (int64_t g = 0; g < groups; ++g) {
        int32_t sum = 0;
        for (int64_t k = g * group; k < std::min(kp, (g + 1) * group); ++k) sum += a.xq[i * a.ldxq + k];
        sums[size_t(i * groups + g)] = sum;
      }
    s = sums.data();
  }
  if (a.m <= kMaxRows) {
    const Plan p{&a, lines, group_lines, groups, s};
    if (int4)
      grouped ? decode<true, true>(p, t0, t1) : decode<true, false>(p, t0, t1);
    else
      grouped ? decode<false, true>(p, t0, t1) : decode<false, false>(p, t0, t1);
    return;
  }
  Prefill p;
  p.a = &a;
  p.lines = w.k_pad() / 4;
  p.group_lines = grouped ? a.group / 4 : p.lines;
  p.groups = groups;
  p.sums = s;
  p.fold_zero = zeros_fold(a, t0, t1, groups);
  const size_t need = size_t(kTiles * p.lines);
  if (u_lines < need) {
    u.reset(new Line[need]);  // aligned to 64 bytes (C++17 aligned new)
    u_lines = need;
  }
  p.u = reinterpret_cast<uint8_t*>(u.get());
  if (int4)
    grouped ? prefill<true, true>(p, t0, t1) : prefill<true, false>(p, t0, t1);
  else
    grouped ? prefill<false, true>(p, t0, t1) : prefill<false, false>(p, t0, t1);
}

}  // namespace lowbit
