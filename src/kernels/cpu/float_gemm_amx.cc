// AMX-BF16 GEMM: BF16 weights read in place × activations rounded to BF16, fp32 accumulation
// in tiles. Prefill path on Sapphire/Emerald Rapids; fewer than kAmxMinRows rows go to the
// vdpbf16ps kernel (float_gemm_bf16.cc).
//
// The weights are the A operand: 16 weight rows × 32 k of Hugging Face's [N, K] layout is
// exactly an A tile (16 rows of 64 bytes, stride ldw·2), loaded straight from the mmap, so
// nothing is repacked. The activations are the B operand, repacked once per call into
// thread_local scratch in VNNI pair order, one 1 KB tile per (16 rows, 32 k):
// B[p][j] = (x[j][2p], x[j][2p+1]) rounded to BF16, zero past M and K. C = 16 weight rows ×
// 16 activation rows = a block of yᵀ, transposed in registers on the way to y.
//
// Register block: 2 weight strips × 2 activation tiles (4 C tiles, 2 A, 2 B = all 8 tiles),
// each C accumulated over a K chunk inside the tile unit. Loops: K chunk (sized so the chunk's
// packed activations, ≤ 1 MB, stay in L2), then weight strip pairs (32 rows × chunk, 64 KB at
// 1024 k, reused from L1/L2 by every activation tile), then activation tile pairs. The first
// activation pair of a strip pair prefetches the next strip pair's weights from memory.
// Tails: a K tail (K % 32) uses a zero-padded copy of the strip's last 32 columns; a strip
// with fewer than 16 rows (end of N) uses a zero-padded copy of its rows; M pads with zeros.
//
// GCC 12 reports -Wmaybe-uninitialized inside the AVX-512 intrinsics that start from
// _mm512_undefined_*() (unpack, shuffle, insert, shift: GCC PR 105593, fixed in 13); the
// pragma must precede <immintrin.h> to cover those locations.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/bf16_avx512.h"
#include "kernels/float_gemm.h"
#ifdef LOWBIT_AMX_EMULATE  // test build (float_gemm_amx_emulated.cc): tile ops in plain C++
#include "kernels/cpu/amx_bf16_emulation.h"
#endif

namespace lowbit {

namespace {

#ifdef LOWBIT_AMX_EMULATE
namespace tiles = amx_emulation;
#else
namespace tiles = amx;
#endif

using bf16x::round_up;

// Below this many rows the vdpbf16ps kernel streams the weights at memory bandwidth; from
// here on it becomes compute-bound on Sapphire/Emerald Rapids (measured on an Emerald Rapids
// VM, one thread, lm_head 151936 × 2048: 1-4 rows at the read bandwidth, 6 rows 1.6× and 8
// rows 1.6-2× slower than it, with vdpbf16ps at half the fp32 FMA rate there), while AMX has
// an order of magnitude more compute and stays memory-bound. Not timed with AMX itself: that
// VM hid AMX. Rows 5-15 leave part of each 16-row activation tile empty, which costs
// nothing while the weights' bandwidth is the limit.
constexpr int64_t kAmxMinRows = 5;

constexpr int kTileElems = 512;  // BF16 per 1 KB tile: 16 rows × 32
constexpr int64_t kChunkBytes = int64_t(1) << 20;  // packed activations per K chunk (L2 is 2 MB)

// Tile registers: C 0..3 (strip i, activation tile j → 2i + j), A 4..5, B 6..7.
amx::TileConfig all_16x64() {
  amx::TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.set(t, 16, 64);
  return cfg;
}

// 16 weight rows as A tiles: k tiles 0..kfull-1 at base + 32t (stride bytes apart), the K
// tail (when K % 32) at `tail`.
struct Strip {
  const uint16_t* base;
  int64_t stride;
  const uint16_t* tail;
  int64_t tail_stride;
  int rows;  // valid rows (16 unless the end of N)
};

// Packs rows of x into B tiles: tile (mt, kt) at (mt · ktiles + kt) · 512.
void pack_activations(const FloatGemmArgs& a, int64_t mtiles, int64_t ktiles, uint16_t* out) {
  for (int64_t mt = 0; mt < mtiles; ++mt) {
    for (int64_t kt = 0; kt < ktiles; ++kt) {
      __m512 r[16];
      const int valid_k = int(std::min<int64_t>(32, a.k - kt * 32));
      for (int j = 0; j < 16; ++j) {
        const int64_t row = mt * 16 + j;
        r[j] = row < a.m ? _mm512_castsi512_ps(bf16x::round_32_to_bf16(a.x + row * a.ldx + kt * 32, valid_k))
                         : _mm512_setzero_ps();
      }
      bf16x::transpose_16x16(r);  // r[p] = pair p of every row: tile row p
      uint16_t* tile = out + (mt * ktiles + kt) * kTileElems;
      for (int p = 0; p < 16; ++p) _mm512_store_ps(reinterpret_cast<float*>(tile + p * 32), r[p]);
    }
  }
}

// Sets up strip s for weight rows [n, n + rows). `pad` is this strip's scratch: 16 × kpad for a
// short strip, or one 16 × 32 tail tile.
Strip make_strip(const FloatGemmArgs& a, int64_t n, int rows, int64_t kpad, uint16_t* pad) {
  const uint16_t* w = static_cast<const uint16_t*>(a.w) + n * a.ldw;
  const int64_t kfull = a.k / 32 * 32;
  if (rows < 16) {  // copy the rows, zero-padded to 16 × kpad
    std::memset(pad, 0, size_t(16 * kpad) * 2);
    for (int r = 0; r < rows; ++r) std::memcpy(pad + r * kpad, w + r * a.ldw, size_t(a.k) * 2);
    return {pad, kpad * 2, pad + kfull, kpad * 2, rows};
  }
  if (kfull < a.k) {  // the last 32 columns, zero past K
    const __mmask32 mask = __mmask32((uint64_t(1) << (a.k - kfull)) - 1);
    for (int r = 0; r < 16; ++r) _mm512_store_si512(pad + r * 32, _mm512_maskz_loadu_epi16(mask, w + r * a.ldw + kfull));
  }
  return {w, a.ldw * 2, pad, 64, 16};
}

// One register block over k tiles [t0, t1) (full tiles, t1 ≤ kfull) and the K tail tile when
// `tail`; C tiles stored to c (tile t at c + 256 t, rows = weight rows). With Prefetch (the first activation block of a strip pair, which pulls the weights from
// memory), each k step also prefetches the same 64 bytes of the next 32 weight rows (`pf`).
template <int NS, int MT, bool Prefetch>
void block(const Strip* s, const uint16_t* b, int64_t b_next, int64_t t0, int64_t t1, bool tail,
           const char* const* pf, float* c) {
  _tile_zero(0);
  if constexpr (MT > 1) _tile_zero(1);
  if constexpr (NS > 1) _tile_zero(2);
  if constexpr (NS > 1 && MT > 1) _tile_zero(3);
  auto step = [&](const uint16_t* a0, int64_t s0, const uint16_t* a1, int64_t s1, const uint16_t* b0) {
    _tile_loadd(4, a0, s0);
    if constexpr (NS > 1) _tile_loadd(5, a1, s1);
    _tile_loadd(6, b0, 64);
    if constexpr (MT > 1) _tile_loadd(7, b0 + b_next, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (MT > 1) _tile_dpbf16ps(1, 4, 7);
    if constexpr (NS > 1) _tile_dpbf16ps(2, 5, 6);
    if constexpr (NS > 1 && MT > 1) _tile_dpbf16ps(3, 5, 7);
  };
  const Strip& s1 = s[NS > 1 ? 1 : 0];
  for (int64_t t = t0; t < t1; ++t) {
    if constexpr (Prefetch)
      for (int r = 0; r < 32; ++r) _mm_prefetch(pf[r] + 64 * t, _MM_HINT_T0);
    step(s[0].base + 32 * t, s[0].stride, s1.base + 32 * t, s1.stride, b + t * kTileElems);
  }
  if (tail) step(s[0].tail, s[0].tail_stride, s1.tail, s1.tail_stride, b + t1 * kTileElems);
  _tile_stored(0, c, 64);
  if constexpr (MT > 1) _tile_stored(1, c + 256, 64);
  if constexpr (NS > 1) _tile_stored(2, c + 512, 64);
  if constexpr (NS > 1 && MT > 1) _tile_stored(3, c + 768, 64);
}

// C tile (16 weight rows n0.. × 16 activation rows m0..) → y[m0 + j][n0 + r], transposed;
// added to y when `accumulate` (a later k chunk).
void store_transposed(const float* c, const FloatGemmArgs& a, int64_t m0, int64_t n0, int rows, bool accumulate) {
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(c + 16 * i);
  bf16x::transpose_16x16(r);
  const __mmask16 keep = __mmask16((1u << rows) - 1);
  const int mrows = int(std::min<int64_t>(16, a.m - m0));
  for (int j = 0; j < mrows; ++j) {
    float* y = a.y + (m0 + j) * a.ldy + n0;
    _mm512_mask_storeu_ps(y, keep, accumulate ? _mm512_add_ps(r[j], _mm512_maskz_loadu_ps(keep, y)) : r[j]);
  }
}

using BlockFn = void (*)(const Strip*, const uint16_t*, int64_t, int64_t, int64_t, bool, const char* const*, float*);
// [prefetch][strips - 1][activation tiles - 1]
constexpr BlockFn kBlocks[2][2][2] = {{{block<1, 1, false>, block<1, 2, false>}, {block<2, 1, false>, block<2, 2, false>}},
                                      {{block<1, 1, true>, block<1, 2, true>}, {block<2, 1, true>, block<2, 2, true>}}};

}  // namespace

void gemm_bf16_bf16_amx(const FloatGemmArgs& a) {
  if (a.m < kAmxMinRows || a.k <= 0) {
    gemm_bf16_bf16_avx512bf16(a);
    return;
  }
  if (a.n_begin >= a.n_end) return;
  const int64_t kpad = round_up(a.k, 32), ktiles = kpad / 32, kfull = a.k / 32;
  const int64_t mtiles = (a.m + 15) / 16;
  const bool tail = kfull < ktiles;

  static thread_local std::vector<uint16_t> xbuf, padbuf;
  uint16_t* xb = bf16x::grow_aligned(xbuf, size_t(mtiles * ktiles * kTileElems));
  pack_activations(a, mtiles, ktiles, xb);
  // Two strips' pads, each big enough for a short strip (16 × kpad) or a tail tile.
  const int64_t pad_elems = 16 * kpad;
  uint16_t* pads = bf16x::grow_aligned(padbuf, size_t(2 * pad_elems));

  static const amx::TileConfig cfg = all_16x64();
  tiles::ensure_config(cfg);
  alignas(64) float c[4 * 256];
  const int64_t b_next = ktiles * kTileElems;  // from one activation tile row to the next
  const char* pf[32];
  // K chunks: the chunk's packed activations (mtiles KB per k tile) stay in L2, ≤ ~1 MB, while
  // all strip pairs pass; later chunks add into y.
  const int64_t chunk = std::max<int64_t>(8, kChunkBytes / (mtiles * 1024));
  for (int64_t t0 = 0; t0 < ktiles; t0 += chunk) {
    const int64_t t1 = std::min(ktiles, t0 + chunk);
    const bool chunk_tail = tail && t1 == ktiles;
    for (int64_t n0 = a.n_begin; n0 < a.n_end; n0 += 32) {
      Strip s[2];
      const int ns = a.n_end - n0 > 16 ? 2 : 1;
      for (int i = 0; i < ns; ++i) {
        const int64_t n = n0 + 16 * i;
        s[i] = make_strip(a, n, int(std::min<int64_t>(16, a.n_end - n)), kpad, pads + i * pad_elems);
      }
      for (int r = 0; r < 32; ++r)  // the next strip pair's rows (clamped to stay inside the tensor)
        pf[r] = static_cast<const char*>(a.w) + 2 * std::min(n0 + 32 + r, a.n_end - 1) * a.ldw;
      for (int64_t mt = 0; mt < mtiles; mt += 2) {
        const int mts = mtiles - mt > 1 ? 2 : 1;
        kBlocks[mt == 0][ns - 1][mts - 1](s, xb + mt * b_next, b_next, t0, std::min(t1, kfull), chunk_tail, pf, c);
        for (int i = 0; i < ns; ++i)
          for (int j = 0; j < mts; ++j)
            store_transposed(c + 256 * (2 * i + j), a, (mt + j) * 16, n0 + 16 * i, s[i].rows, t0 > 0);
      }
    }
  }
}

}  // namespace lowbit
