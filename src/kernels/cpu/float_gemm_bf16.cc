// AVX512-BF16 GEMM: BF16 weights read in place × activations rounded to BF16, fp32
// accumulation with vdpbf16ps (32 products per instruction). Serves decode (GEMV, m ≤ 8;
// on AMX machines m ≤ 4, see kAmxMinRows) and prefill on CPUs without AMX (Zen4).
//
// W is [N, K] row-major (Hugging Face layout), so each dot product runs along k: a register
// tile holds MR activation rows × NR weight rows of 16-lane partial sums, reduced
// horizontally once at the end of its k range. Activations are rounded once per call into
// thread_local scratch, rows zero-padded to a multiple of 32 so only the weight loads need a
// mask on the K tail (a masked load never touches bytes past the checkpoint's tensor).
//
// Blocking for prefill: a block of kMBlock activation rows × kKBlock k (256 KB of BF16)
// stays in L2 while every weight tile of the thread's columns passes over it; a weight tile
// (NR rows × kKBlock) stays in L1 across the block's row tiles. Partial sums of successive k
// blocks are added into y. Decode (gemv_one_row, gemv_sweep) uses the same k blocks and one
// accumulator per (row, column, k block) too, so a row's result does not depend on m.
//
// GCC 12 reports -Wmaybe-uninitialized inside the AVX-512 intrinsics that start from
// _mm512_undefined_*() (unpack, shuffle, insert, shift: GCC PR 105593, fixed in 13); the
// pragma must precede <immintrin.h> to cover those locations.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <vector>

#include "kernels/cpu/bf16_avx512.h"
#include "kernels/float_gemm.h"

namespace lowbit {

namespace {

using bf16x::round_up;

constexpr int64_t kMBlock = 128;
constexpr int64_t kKBlock = 1024;
// At most this many rows is decode: each weight byte read from memory once for all of them.
constexpr int64_t kGemvRows = 8;

struct Ctx {
  const uint16_t* x;  // BF16 activations, rows ldx apart, zero-padded to a multiple of 32
  int64_t ldx;
  const uint16_t* w;  // checkpoint weights, [N, K], rows ldw apart
  int64_t ldw;
  float* y;
  int64_t ldy;
  int64_t m, k;
  int64_t n_end;  // last valid column + 1 (tails clamp to it)
};

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// Horizontal sums of four accumulators → one __m128 (lane j = sum of a[j]).
// (extractf32x8(·, 0) rather than castps512_ps256: GCC 12 warns falsely on the cast.)
inline __m256 fold(__m512 a) { return _mm256_add_ps(_mm512_extractf32x8_ps(a, 0), _mm512_extractf32x8_ps(a, 1)); }
inline __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m256 v = _mm256_hadd_ps(_mm256_hadd_ps(fold(a0), fold(a1)), _mm256_hadd_ps(fold(a2), fold(a3)));
  return _mm_add_ps(_mm256_extractf128_ps(v, 0), _mm256_extractf128_ps(v, 1));
}

// One register tile: rows m0.. (mr ≤ MR valid) × columns n0.. (nr ≤ NR valid) over
// k ∈ [kb, ke). Rows past the valid ones repeat the last valid row (same cost, never stored),
// so one instantiation per shape serves every tail.
template <int MR, int NR, bool Prefetch>
void tile(const Ctx& c, int64_t m0, int mr, int64_t n0, int nr, int64_t kb, int64_t ke, bool accumulate) {
  static_assert(NR % 4 == 0);
  const uint16_t* x[MR];
  for (int i = 0; i < MR; ++i) x[i] = c.x + (m0 + std::min(i, mr - 1)) * c.ldx;
  const uint16_t* w[NR];
  const char* pf[NR];
  for (int j = 0; j < NR; ++j) {
    w[j] = c.w + (n0 + std::min(j, nr - 1)) * c.ldw;
    // The next tile's rows, so their first bytes are in flight before it starts.
    pf[j] = reinterpret_cast<const char*>(c.w + std::min(n0 + NR + j, c.n_end - 1) * c.ldw);
  }
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();

  int64_t k = kb;
  for (; k + 32 <= ke; k += 32) {
    __m512i wv[NR];
    for (int j = 0; j < NR; ++j) {
      wv[j] = _mm512_loadu_si512(w[j] + k);
      if constexpr (Prefetch) _mm_prefetch(pf[j] + 2 * k, _MM_HINT_T0);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512i xv = _mm512_loadu_si512(x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], as_bh(xv), as_bh(wv[j]));
    }
  }
  if (k < ke) {  // K tail: weights masked, activations already zero-padded
    const __mmask32 mask = __mmask32((uint64_t(1) << (ke - k)) - 1);
    __m512i wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_maskz_loadu_epi16(mask, w[j] + k);
    for (int i = 0; i < MR; ++i) {
      const __m512i xv = _mm512_loadu_si512(x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], as_bh(xv), as_bh(wv[j]));
    }
  }

  const __mmask8 keep = __mmask8((1u << std::min(nr, 8)) - 1);
  for (int i = 0; i < mr; ++i) {
    float* y = c.y + (m0 + i) * c.ldy + n0;
    for (int j = 0; j < NR; j += 4) {
      if (j >= nr) break;
      const __mmask8 part = __mmask8((keep >> j) & 0xf);
      __m128 s = hsum4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
      if (accumulate) s = _mm_add_ps(s, _mm_maskz_loadu_ps(part, y + j));
      _mm_mask_storeu_ps(y + j, part, s);
    }
  }
}

// Columns [nb, ne) × rows [mb, me) × k [kb, ke) with MR × NR tiles; weight tile outer so it
// is reused from L1 by every row tile.
template <int MR, int NR, bool Prefetch>
void sweep(const Ctx& c, int64_t nb, int64_t ne, int64_t mb, int64_t me, int64_t kb, int64_t ke, bool accumulate) {
  for (int64_t n = nb; n < ne; n += NR) {
    const int nr = int(std::min<int64_t>(NR, ne - n));
    for (int64_t m = mb; m < me; m += MR)
      tile<MR, NR, Prefetch>(c, m, int(std::min<int64_t>(MR, me - m)), n, nr, kb, ke, accumulate);
  }
}

// The horizontal sum hsum4 gives each of its accumulators, for one accumulator: the 16 lanes
// folded to 8, then ((f0+f1)+(f2+f3)) + ((f4+f5)+(f6+f7)), so decode and prefill round alike.
inline float hsum1(__m512 a) {
  const __m256 f = fold(a);
  const __m128 p = _mm_hadd_ps(_mm256_extractf128_ps(f, 0), _mm256_extractf128_ps(f, 1));  // f01 f23 f45 f67
  const __m128 q = _mm_hadd_ps(p, p);                                                      // f0123 f4567 · ·
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

// Decode of one row: columns [nb, ne), one weight row at a time, start to end, each k block's
// sum added into y in block order (as the tiles do, so a row's result does not depend on m).
// Reading one weight row at a time makes each thread's reads one sequential stream that the
// hardware prefetcher follows across the rows it owns; the 8-row tiles read 8 streams at a
// 4 KiB stride (K = 2048 BF16), which it followed worse (Zen4, 2 threads, 1.2 GB of weights
// alternated: 31-38 -> 34-50 GB/s; a software prefetch, 1-8 KiB ahead, made it slower). The one
// accumulator is a dependent chain, but the next weight row's chain is independent and
// out-of-order execution overlaps them.
void gemv_one_row(const Ctx& c, int64_t nb, int64_t ne) {
  for (int64_t n = nb; n < ne; ++n) {
    const uint16_t* w = c.w + n * c.ldw;
    for (int64_t kb = 0; kb < c.k; kb += kKBlock) {
      const int64_t ke = std::min(c.k, kb + kKBlock);
      __m512 acc = _mm512_setzero_ps();
      int64_t k = kb;
      for (; k + 32 <= ke; k += 32)
        acc = _mm512_dpbf16_ps(acc, as_bh(_mm512_loadu_si512(c.x + k)), as_bh(_mm512_loadu_si512(w + k)));
      if (k < ke) {  // K tail: weights masked, activations already zero-padded
        const __m512i wv = _mm512_maskz_loadu_epi16(__mmask32((uint64_t(1) << (ke - k)) - 1), w + k);
        acc = _mm512_dpbf16_ps(acc, as_bh(_mm512_loadu_si512(c.x + k)), as_bh(wv));
      }
      const float s = hsum1(acc);
      c.y[n] = kb > 0 ? s + c.y[n] : s;
    }
  }
}

// Decode of 2-8 rows: all c.m rows × columns [nb, ne), NR weight rows at a time, each tile over
// every k block in turn (the blocks' sums added into y in block order, as prefill does),
// prefetching the next tile. Each weight load serves every activation row from a register:
// one weight row at a time would reload the activations for every 64 bytes of weights, and
// measured 2x slower at m = 4 and 8 (vdpbf16ps and loads, not memory, are the limit there).
template <int MR, int NR>
void gemv_sweep(const Ctx& c, int64_t nb, int64_t ne) {
  for (int64_t n = nb; n < ne; n += NR) {
    const int nr = int(std::min<int64_t>(NR, ne - n));
    for (int64_t kb = 0; kb < c.k; kb += kKBlock)
      tile<MR, NR, true>(c, 0, int(c.m), n, nr, kb, std::min(c.k, kb + kKBlock), kb > 0);
  }
}

// Rounds rows of x into BF16 scratch with ldx_out = K rounded up to 32, tail zeroed.
const uint16_t* round_activations(const FloatGemmArgs& a, int64_t ld_out) {
  static thread_local std::vector<uint16_t> buf;
  uint16_t* out = bf16x::grow_aligned(buf, size_t(a.m * ld_out));
  for (int64_t i = 0; i < a.m; ++i) {
    const float* src = a.x + i * a.ldx;
    uint16_t* dst = out + i * ld_out;
    for (int64_t k = 0; k < ld_out; k += 32)
      _mm512_storeu_si512(dst + k, bf16x::round_32_to_bf16(src + k, int(std::min<int64_t>(32, a.k - k))));
  }
  return out;
}

}  // namespace

void gemm_bf16_bf16_avx512bf16(const FloatGemmArgs& a) {
  if (a.m <= 0 || a.n_begin >= a.n_end) return;
  if (a.k <= 0) {
    for (int64_t i = 0; i < a.m; ++i) std::fill(a.y + i * a.ldy + a.n_begin, a.y + i * a.ldy + a.n_end, 0.0f);
    return;
  }
  const int64_t ldx = round_up(a.k, 32);
  const Ctx c{round_activations(a, ldx), ldx, static_cast<const uint16_t*>(a.w), a.ldw, a.y, a.ldy, a.m, a.k, a.n_end};

  if (a.m <= kGemvRows) {
    // Decode: every weight byte read from memory once. Shapes for 2-8 rows timed on a Xeon
    // (Emerald Rapids, single thread, lm_head 151936 × 2048): 2×8 streams at the machine's read
    // bandwidth; 4×4 for m = 3, 4; for m = 5..8 vdpbf16ps itself is the limit (measured at half
    // the fp32 FMA rate) and 8×4 came closest to its peak even though 32 accumulators make GCC
    // spill a few to L1. K is cut into the same kKBlock blocks as prefill, each reduced and
    // added into y in the same order, so a row's result does not depend on how many rows share
    // the call (batch invariance: the server's outputs do not depend on what else is in the batch).
    if (a.m == 1)
      gemv_one_row(c, a.n_begin, a.n_end);
    else if (a.m == 2)
      gemv_sweep<2, 8>(c, a.n_begin, a.n_end);
    else if (a.m <= 4)
      gemv_sweep<4, 4>(c, a.n_begin, a.n_end);
    else
      gemv_sweep<8, 4>(c, a.n_begin, a.n_end);
    return;
  }
  for (int64_t kb = 0; kb < a.k; kb += kKBlock) {
    const int64_t ke = std::min(a.k, kb + kKBlock);
    for (int64_t mb = 0; mb < a.m; mb += kMBlock)
      sweep<4, 4, false>(c, a.n_begin, a.n_end, mb, std::min(a.m, mb + kMBlock), kb, ke, kb > 0);
  }
}

}  // namespace lowbit
