// AMX peaks (tdpbssd, tdpbf16ps) from register-only loops: 2×2 blocking as a GEMM kernel does
// it, four C tiles fed by two A and two B tiles, so four independent chains cover the
// instruction's latency (~4 × its 16-cycle issue interval on Sapphire Rapids). Compiled with
// AMX flags only; the config goes through amx_tiles.h (GCC 12's _tile_loadconfig is broken).
#include <immintrin.h>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/roofline.h"

namespace lowbit::roofline {

namespace {
// Tiles 0-3: C (16 rows × 16 int32/fp32); 4-5: A (16 rows × 64 bytes); 6-7: B (16 × 64 bytes).
void configure() {
  amx::TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.set(t, 16, 64);
  amx::ensure_config(cfg);
}

// Zeroes all eight tiles after the config, then runs `block` (one iteration's tile products)
// `iters` times: the loop body is only tile instructions, no memory traffic.
template <class Block>
[[gnu::always_inline]] inline void run_blocks(int64_t iters, Block block) {
  configure();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_zero(4);
  _tile_zero(5);
  _tile_zero(6);
  _tile_zero(7);
  for (int64_t i = 0; i < iters; ++i) block();
}

// One iteration's four products C0..C3 += {A4, A5} × {B6, B7} with the tile instruction OP. A
// macro because the intrinsics paste literal tile numbers into the instruction text.
#define LOWBIT_AMX_2X2_BLOCK(OP) \
  [] {                           \
    OP(0, 4, 6);                 \
    OP(1, 4, 7);                 \
    OP(2, 5, 6);                 \
    OP(3, 5, 7);                 \
  }

template <class T>
T fold_tile0() {
  alignas(64) T c[16 * 16];
  _tile_stored(0, c, 64);
  T s = 0;
  for (T v : c) s += v;
  return s;
}
}  // namespace

// Each tdpbssd: 16×16 outputs × 64 int8 products = 16384 multiply-adds = 32768 operations.
double int8_amx(int64_t iters, int32_t* sink) {
  run_blocks(iters, LOWBIT_AMX_2X2_BLOCK(_tile_dpbssd));
  // Unsigned: the int32 accumulators wrap over a long run, and only the bits matter to the sink.
  *sink = int32_t(uint32_t(*sink) + fold_tile0<uint32_t>());
  return double(iters) * 4 * 16 * 16 * 64 * 2;
}

// Each tdpbf16ps: 16×16 outputs × 32 bf16 products = 8192 multiply-adds = 16384 operations.
double bf16_amx(int64_t iters, float* sink) {
  run_blocks(iters, LOWBIT_AMX_2X2_BLOCK(_tile_dpbf16ps));
  *sink += fold_tile0<float>();
  return double(iters) * 4 * 16 * 16 * 32 * 2;
}

#undef LOWBIT_AMX_2X2_BLOCK

}  // namespace lowbit::roofline
