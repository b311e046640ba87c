// AMX-INT8 GEMM over PackedCodes (see int_gemm_amx.h).
//
// The packed 8-bit weight tile already is AMX's B layout (one row = one K/4 step of 16 lanes ×
// 4 k = 64 bytes), so B tiles load straight from the weights with stride 64. int4 codes are
// widened to that layout (sign-extended nibbles) into thread-local scratch once per
// (M chunk, N block) and reused by every M block of the chunk; no second copy of the weights
// is kept. Register block: 2 A tiles (32 rows) × 2 B tiles (32 columns) → 4 int32 C tiles;
// tdpbssd multiplies signed by signed, so neither operand needs a compensation term.
//
// K runs in blocks of kb = 64 codes (a whole tile), or gcd(group, 64) so that every group is
// a whole number of blocks and its exact int32 sum sits in C at the group's end. k_pad need
// not be a multiple of kb: the last, partial block of every operand is read from a
// zero-padded copy (weights per N block, activations once per call), as are the last
// m % 16 rows of x, so no tile load ever reads outside its operand.
#include "kernels/cpu/int_gemm_amx.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels/cpu/amx_tiles.h"
#ifdef LOWBIT_AMX_EMULATE
#include "kernels/cpu/amx_emulator.h"
#endif

namespace lowbit {

namespace {

constexpr int64_t kTileRows = 16;   // rows of an A or C tile
constexpr int64_t kBlockRows = 32;  // rows per register block: 2 A tiles
constexpr int64_t kBlockTiles = 2;  // weight tiles per register block: 2 B tiles
constexpr int64_t kBlockCols = kBlockTiles * kTileN;
constexpr int64_t kLine = 64;       // bytes per B-tile row: 16 lanes × 4 k
constexpr int64_t kMaxKBlock = 64;  // K per tile: 64 int8 bytes per A row
// With N blocks outer and M blocks inner, a chunk of x rows is re-read once per N block, so
// a chunk should stay in L2 (2 MiB per core on Sapphire Rapids) next to the weights.
constexpr int64_t kChunkBytes = int64_t(1) << 20;

#ifndef LOWBIT_AMX_EMULATE
// GCC 12's tileloadd/tdpbssd macros have no "memory" clobber, so the compiler may move plain
// stores to the scratch they read (widened weights, padded copies) past them; these may not.
#define LB_TILE_LOAD(tmm, base, stride) \
  __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #tmm ::"r"(base), "r"(int64_t(stride)) : "memory")
#define LB_TILE_STORE(tmm, base, stride) \
  __asm__ volatile("tilestored %%tmm" #tmm ", (%0,%1,1)" ::"r"(base), "r"(int64_t(stride)) : "memory")
#define LB_TILE_ZERO(tmm) __asm__ volatile("tilezero %%tmm" #tmm ::)
#define LB_TDPBSSD(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)
#define LB_TILE_CONFIG(cfg) amx::ensure_config(cfg)
#define LB_ENTRY int_gemm_amx
#else
// Test build (int_gemm_amx_test): the same kernel on a scalar model of the tile unit.
#define LB_TILE_LOAD(tmm, base, stride) amx_emulator::load(tmm, base, stride)
#define LB_TILE_STORE(tmm, base, stride) amx_emulator::store(tmm, base, stride)
#define LB_TILE_ZERO(tmm) amx_emulator::zero(tmm)
#define LB_TDPBSSD(c, a, b) amx_emulator::dpbssd(c, a, b)
#define LB_TILE_CONFIG(cfg) amx_emulator::ensure_config(cfg)
#define LB_ENTRY int_gemm_amx_emulated
#endif

// Tile registers: C[ma][nb] = tmm(2·ma + nb), A[ma] = tmm(4 + ma), B[nb] = tmm(6 + nb).

struct Plan {
  int64_t kb = kMaxKBlock;  // K per tile block
  int64_t nkb = 0;          // blocks covering k_pad
  int64_t full_blocks = 0;  // blocks read in place: nkb, or nkb − 1 when the last is partial
  int64_t kp_round = 0;     // nkb · kb
  int64_t group_blocks = 0; // blocks per group (nkb without groups)
  int64_t groups = 1;       // ceil(k_pad / group), 1 without groups
};

// Where one tile operand's K blocks live: block b < full_blocks at p + b·step (row stride ld),
// the partial last block in a zero-padded copy at last (row stride last_ld).
struct Operand {
  const int8_t* p = nullptr;
  int64_t ld = 0;
  const int8_t* last = nullptr;
  int64_t last_ld = 0;
};

// One register block of output: x rows [row0, row0 + rows), weight tiles tile, tile + 1.
struct Block {
  int64_t row0 = 0, rows = 0, tile = 0;
  int64_t lanes[kBlockTiles] = {};  // valid output columns of each tile
};

// Grow-only per-thread scratch (no allocation once warm).
struct Scratch {
  AlignedArray<int8_t> wide;    // int4 tiles widened: [kBlockTiles][kp_round / 4][64]
  AlignedArray<int8_t> b_last;  // int8 partial last K block: [kBlockTiles][16][64]
  AlignedArray<int8_t> a_rows;  // the last m % 16 rows of x, zero-padded: [16][kp_round]
  AlignedArray<int8_t> a_last;  // each full-tile row's partial last K block: [m][kb]
  std::vector<int32_t> sums;    // Σ xq per row and group when the caller passes none
};

int8_t* grow(AlignedArray<int8_t>& buf, int64_t bytes) {
  if (buf.size() < size_t(bytes)) buf = AlignedArray<int8_t>(size_t(bytes));
  return buf.data();
}

template <int MA, int NB>
inline void zero_c() {
  LB_TILE_ZERO(0);
  if constexpr (NB == 2) LB_TILE_ZERO(1);
  if constexpr (MA == 2) LB_TILE_ZERO(2);
  if constexpr (MA == 2 && NB == 2) LB_TILE_ZERO(3);
}

// C tiles → c[32][32] int32 (row stride 128 bytes).
template <int MA, int NB>
inline void store_c(int32_t* c) {
  constexpr int64_t ld = kBlockCols * 4;
  LB_TILE_STORE(0, c, ld);
  if constexpr (NB == 2) LB_TILE_STORE(1, c + kTileN, ld);
  if constexpr (MA == 2) LB_TILE_STORE(2, c + kTileRows * kBlockCols, ld);
  if constexpr (MA == 2 && NB == 2) LB_TILE_STORE(3, c + kTileRows * kBlockCols + kTileN, ld);
}

// One K block: loads interleaved with the products so the AMX unit starts early.
template <int MA, int NB>
inline void tile_step(const int8_t* a0, int64_t lda0, const int8_t* a1, int64_t lda1, const int8_t* b0,
                      const int8_t* b1) {
  LB_TILE_LOAD(4, a0, lda0);
  LB_TILE_LOAD(6, b0, kLine);
  LB_TDPBSSD(0, 4, 6);
  if constexpr (NB == 2) {
    LB_TILE_LOAD(7, b1, kLine);
    LB_TDPBSSD(1, 4, 7);
  }
  if constexpr (MA == 2) {
    LB_TILE_LOAD(5, a1, lda1);
    LB_TDPBSSD(2, 5, 6);
    if constexpr (NB == 2) LB_TDPBSSD(3, 5, 7);
  }
}

// C += A·B over K blocks [k0, k1).
template <int MA, int NB>
inline void dot_blocks(const Plan& p, const Operand* A, const Operand* B, int64_t k0, int64_t k1) {
  const int64_t a_step = p.kb, b_step = p.kb * kTileN;
  const int64_t end = std::min(k1, p.full_blocks);
  for (int64_t k = k0; k < end; ++k)
    tile_step<MA, NB>(A[0].p + k * a_step, A[0].ld, A[1].p + k * a_step, A[1].ld, B[0].p + k * b_step,
                      B[1].p + k * b_step);
  if (k1 > p.full_blocks)
    tile_step<MA, NB>(A[0].last, A[0].last_ld, A[1].last, A[1].last_ld, B[0].last, B[1].last);
}

inline __mmask16 lane_mask(int64_t lanes) { return __mmask16((1u << lanes) - 1); }

// int32 → fp32 (round to nearest). Conversions are written as vector casts: GCC 12's
// _mm512_cvt* intrinsics trip -Wmaybe-uninitialized on their internal _mm512_undefined_*().
inline __m512 to_float(__m512i v) { return __m512(__builtin_convertvector(__v16si(v), __v16sf)); }

inline __m512 load_or(const float* p, int64_t n0, float fallback) {
  return p ? _mm512_loadu_ps(p + n0) : _mm512_set1_ps(fallback);
}

// Writes y = v · row_scale · col_scale + col_bias for one row of a block, in the portable
// kernel's order of operations.
inline void store_row(const IntGemmArgs& a, const Block& blk, int64_t r, int j, __m512 v) {
  const int64_t row = blk.row0 + r, n0 = (blk.tile + j) * kTileN;
  if (a.row_scale) v = _mm512_mul_ps(v, _mm512_set1_ps(a.row_scale[row]));
  if (a.col_scale) v = _mm512_mul_ps(v, _mm512_loadu_ps(a.col_scale + n0));
  if (a.col_bias) v = _mm512_add_ps(v, _mm512_loadu_ps(a.col_bias + n0));
  _mm512_mask_storeu_ps(a.y + row * a.ldy + n0, lane_mask(blk.lanes[j]), v);
}

// Zero points are integer-valued floats in code units (quant_gemm.h): Σ xq·(w − z) =
// Σ xq·w − z·Σ xq, exact in (wrapping) int32 like the portable kernel's sum; z converts by
// truncation, as there.
inline __m512i zero_lanes(const IntGemmArgs& a, int64_t t, int64_t g) {
  return a.group_zero ? __m512i(__builtin_convertvector(__v16sf(_mm512_loadu_ps(a.group_zero->lanes(t, g))), __v16si)) : _mm512_setzero_si512();
}

// Without groups: float(Σ xq·(w − z) + col_int_bias), then store_row.
template <int NB>
void epilogue_int(const IntGemmArgs& a, const Block& blk, const int32_t* c) {
  for (int j = 0; j < NB; ++j) {
    const int64_t n0 = (blk.tile + j) * kTileN;
    const __m512i cib = a.col_int_bias ? _mm512_loadu_si512(a.col_int_bias + n0) : _mm512_setzero_si512();
    const __m512i z = zero_lanes(a, blk.tile + j, 0);
    for (int64_t r = 0; r < blk.rows; ++r) {
      __m512i s = _mm512_add_epi32(_mm512_loadu_si512(c + r * kBlockCols + j * kTileN), cib);
      if (a.group_zero) s = _mm512_sub_epi32(s, _mm512_mullo_epi32(z, _mm512_set1_epi32(a.row_group_sum[blk.row0 + r])));
      store_row(a, blk, r, j, to_float(s));
    }
  }
}

// acc (+)= float(Σ_{k∈g} xq·(w − z)) · group_scale for group g.
template <int NB>
void accumulate_group(const IntGemmArgs& a, const Plan& p, const Block& blk, int64_t g, const int32_t* c,
                      float* acc) {
  for (int j = 0; j < NB; ++j) {
    const int64_t t = blk.tile + j;
    const __m512 gs = _mm512_loadu_ps(a.group_scale->lanes(t, g));
    const __m512i z = zero_lanes(a, t, g);
    for (int64_t r = 0; r < blk.rows; ++r) {
      __m512i s = _mm512_loadu_si512(c + r * kBlockCols + j * kTileN);
      if (a.group_zero)
        s = _mm512_sub_epi32(s, _mm512_mullo_epi32(z, _mm512_set1_epi32(a.row_group_sum[(blk.row0 + r) * p.groups + g])));
      float* out = acc + r * kBlockCols + j * kTileN;
      const __m512 prev = g == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(out);
      _mm512_storeu_ps(out, _mm512_add_ps(prev, _mm512_mul_ps(to_float(s), gs)));
    }
  }
}

// One register block over all of K, including its epilogue.
template <int MA, int NB>
void run_block(const IntGemmArgs& a, const Plan& p, const Operand* A, const Operand* B, const Block& blk) {
  alignas(64) int32_t c[2][kBlockRows * kBlockCols];
  if (a.group == 0) {
    zero_c<MA, NB>();
    dot_blocks<MA, NB>(p, A, B, 0, p.nkb);
    store_c<MA, NB>(c[0]);
    epilogue_int<NB>(a, blk, c[0]);
    return;
  }
  // Groups: the tile unit computes group g while the vector units fold group g − 1 into the
  // fp32 sums (two C buffers, so neither waits on the other's memory).
  alignas(64) float acc[kBlockRows * kBlockCols];
  for (int64_t g = 0; g < p.groups; ++g) {
    zero_c<MA, NB>();
    dot_blocks<MA, NB>(p, A, B, g * p.group_blocks, std::min(p.nkb, (g + 1) * p.group_blocks));
    if (g > 0) accumulate_group<NB>(a, p, blk, g - 1, c[(g - 1) & 1], acc);
    store_c<MA, NB>(c[g & 1]);
  }
  accumulate_group<NB>(a, p, blk, p.groups - 1, c[(p.groups - 1) & 1], acc);
  for (int j = 0; j < NB; ++j)
    for (int64_t r = 0; r < blk.rows; ++r) store_row(a, blk, r, j, _mm512_loadu_ps(acc + r * kBlockCols + j * kTileN));
}

// Widens tile t's int4 codes into int8 B rows (row = k/4): line L of the packed tile holds
// k 8L..8L+3 in the low nibbles and 8L+4..8L+7 in the high ones, lanes in the same places,
// so the low nibbles are row 2L and the high ones row 2L + 1. Sign extension: (q ^ 8) − 8.
void widen_int4(const PackedCodes& w, const Plan& p, int64_t t, int8_t* dst) {
  const uint8_t* src = w.tile(t);
  const int64_t lines = w.k_pad() / 8;
  const __m512i low = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
  for (int64_t l = 0; l < lines; ++l) {
    const __m512i v = _mm512_loadu_si512(src + l * kLine);
    const __m512i lo = _mm512_and_si512(v, low), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    _mm512_storeu_si512(dst + (2 * l) * kLine, _mm512_sub_epi8(_mm512_xor_si512(lo, eight), eight));
    _mm512_storeu_si512(dst + (2 * l + 1) * kLine, _mm512_sub_epi8(_mm512_xor_si512(hi, eight), eight));
  }
  std::memset(dst + 2 * lines * kLine, 0, size_t((p.kp_round / 4 - 2 * lines) * kLine));
}

// B operands of weight tiles [t, t + nb).
void prepare_b(const PackedCodes& w, const Plan& p, int64_t t, int64_t nb, Scratch& s, Operand* B) {
  const int64_t block_bytes = p.kb * kTileN;  // kb/4 rows of 64 bytes
  for (int64_t j = 0; j < nb; ++j) {
    Operand& b = B[j];
    if (w.bits() == 4) {
      int8_t* dst = grow(s.wide, kBlockTiles * p.kp_round * kTileN) + j * p.kp_round * kTileN;
      widen_int4(w, p, t + j, dst);
      b.p = dst;
      b.last = dst + p.full_blocks * block_bytes;
    } else {
      b.p = reinterpret_cast<const int8_t*>(w.tile(t + j));
      b.last = b.p;
      if (p.full_blocks < p.nkb) {
        int8_t* dst = grow(s.b_last, kBlockTiles * kMaxKBlock * kTileN) + j * kMaxKBlock * kTileN;
        const int64_t bytes = (w.k_pad() - p.full_blocks * p.kb) * kTileN;
        std::memcpy(dst, b.p + p.full_blocks * block_bytes, size_t(bytes));
        std::memset(dst + bytes, 0, size_t(block_bytes - bytes));
        b.last = dst;
      }
    }
    b.ld = b.last_ld = kLine;
  }
  if (nb == 1) B[1] = B[0];
}

Plan make_plan(const IntGemmArgs& a) {
  const int64_t kp = a.w->k_pad();
  Plan p;
  p.kb = a.group ? std::gcd(a.group, kMaxKBlock) : kMaxKBlock;
  p.nkb = (kp + p.kb - 1) / p.kb;
  p.kp_round = p.nkb * p.kb;
  p.full_blocks = kp % p.kb ? p.nkb - 1 : p.nkb;
  p.group_blocks = a.group ? a.group / p.kb : p.nkb;
  p.groups = a.group ? (kp + a.group - 1) / a.group : 1;
  return p;
}

// Σ_{k∈g} xq per row and group, [m][groups], for zero points when the caller has none.
const int32_t* row_group_sums(const IntGemmArgs& a, const Plan& p, Scratch& s) {
  const int64_t kp = a.w->k_pad(), gk = a.group ? a.group : kp;
  if (s.sums.size() < size_t(a.m * p.groups)) s.sums.resize(size_t(a.m * p.groups));
  for (int64_t i = 0; i < a.m; ++i)
    for (int64_t g = 0; g < p.groups; ++g) {
      int32_t sum = 0;
      for (int64_t k = g * gk; k < std::min(kp, (g + 1) * gk); ++k) sum += a.xq[i * a.ldxq + k];
      s.sums[size_t(i * p.groups + g)] = sum;
    }
  return s.sums.data();
}

}  // namespace

void LB_ENTRY(const IntGemmArgs& args, int64_t t0, int64_t t1) {
  if (args.m <= 0 || t0 >= t1) return;
  thread_local Scratch s;
  const Plan p = make_plan(args);
  IntGemmArgs a = args;
  if (a.group_zero && !a.row_group_sum) a.row_group_sum = row_group_sums(args, p, s);
  const PackedCodes& w = *a.w;
  const int64_t m = a.m, kp = w.k_pad(), m_full = m / kTileRows * kTileRows;

  amx::TileConfig cfg;
  for (int c = 0; c < 4; ++c) cfg.set(c, kTileRows, kTileN * 4);
  cfg.set(4, kTileRows, int(p.kb));
  cfg.set(5, kTileRows, int(p.kb));
  cfg.set(6, int(p.kb / 4), kLine);
  cfg.set(7, int(p.kb / 4), kLine);
  LB_TILE_CONFIG(cfg);

  // Padded copies of x: the partial last tile of rows, and every full tile row's partial last
  // K block (m·kb bytes; both are copied once per call).
  const int64_t tail_bytes = kp - p.full_blocks * p.kb;
  int8_t* a_rows = nullptr;
  if (m_full < m) {
    a_rows = grow(s.a_rows, kTileRows * p.kp_round);
    std::memset(a_rows, 0, size_t(kTileRows * p.kp_round));
    for (int64_t r = m_full; r < m; ++r) std::memcpy(a_rows + (r - m_full) * p.kp_round, a.xq + r * a.ldxq, size_t(kp));
  }
  int8_t* a_last = nullptr;
  if (p.full_blocks < p.nkb && m_full > 0) {
    a_last = grow(s.a_last, m_full * p.kb);
    for (int64_t r = 0; r < m_full; ++r) {
      std::memcpy(a_last + r * p.kb, a.xq + r * a.ldxq + p.full_blocks * p.kb, size_t(tail_bytes));
      std::memset(a_last + r * p.kb + tail_bytes, 0, size_t(p.kb - tail_bytes));
    }
  }
  auto a_operand = [&](int64_t r0) {
    if (r0 >= m_full) return Operand{a_rows, p.kp_round, a_rows + p.full_blocks * p.kb, p.kp_round};
    const int8_t* x = a.xq + r0 * a.ldxq;
    return Operand{x, a.ldxq, a_last ? a_last + r0 * p.kb : x, a_last ? p.kb : a.ldxq};
  };

  const int64_t chunk = std::max(kBlockRows, kChunkBytes / p.kp_round / kBlockRows * kBlockRows);
  const int64_t tile_bytes = kTileN * kp * w.bits() / 8;
  for (int64_t m0 = 0; m0 < m; m0 += chunk) {
    const int64_t m1 = std::min(m, m0 + chunk);
    for (int64_t t = t0; t < t1; t += kBlockTiles) {
      const int64_t nb = std::min(kBlockTiles, t1 - t);
      Operand B[kBlockTiles];
      prepare_b(w, p, t, nb, s, B);
      Block blk;
      blk.tile = t;
      for (int64_t j = 0; j < kBlockTiles; ++j) blk.lanes[j] = std::clamp<int64_t>(w.n() - (t + j) * kTileN, 0, kTileN);
      // The next N block's packed weights come from memory: fetch them into L2 while this
      // block computes, a slice per M block.
      const int64_t next_tiles = std::clamp<int64_t>(t1 - t - kBlockTiles, 0, kBlockTiles);
      const uint8_t* next = next_tiles ? w.tile(t + kBlockTiles) : nullptr;
      const int64_t next_bytes = next_tiles * tile_bytes;
      const int64_t m_blocks = (m1 - m0 + kBlockRows - 1) / kBlockRows;
      const int64_t slice = round_up((next_bytes + m_blocks - 1) / m_blocks, kLine);
      for (int64_t i = m0, off = 0; i < m1; i += kBlockRows) {
        for (const int64_t end = std::min(next_bytes, off + slice); off < end; off += kLine)
          _mm_prefetch(reinterpret_cast<const char*>(next + off), _MM_HINT_T1);
        blk.row0 = i;
        blk.rows = std::min(kBlockRows, m1 - i);
        const bool two_a = blk.rows > kTileRows;
        const Operand A[2] = {a_operand(i), a_operand(two_a ? i + kTileRows : i)};
        if (two_a)
          nb == 2 ? run_block<2, 2>(a, p, A, B, blk) : run_block<2, 1>(a, p, A, B, blk);
        else
          nb == 2 ? run_block<1, 2>(a, p, A, B, blk) : run_block<1, 1>(a, p, A, B, blk);
      }
    }
  }
}

}  // namespace lowbit
