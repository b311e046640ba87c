// Test-only: the AMX instructions float_gemm_amx.cc uses (tile config, load, store, zero,
// TDPBF16PS), in plain C++ with the ISA's semantics, including the per-tile rows and column
// bytes of the loaded config. float_gemm_amx_emulated.cc builds that kernel against these so
// its activation packing, weight strips, tails and transposed stores are checked on hosts
// without AMX (Zen4, or a VM that hides it). Never part of the library.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/amx_tiles.h"

namespace lowbit::amx_emulation {

struct State {
  amx::TileConfig cfg;
  alignas(64) uint8_t tile[8][1024];
};
inline State& state() {
  static thread_local State s;
  return s;
}

inline void ensure_config(const amx::TileConfig& cfg) {
  State& s = state();
  if (std::memcmp(&s.cfg, &cfg, sizeof cfg) != 0) {
    s.cfg = cfg;
    std::memset(s.tile, 0, sizeof s.tile);  // ldtilecfg zeroes every tile
  }
}
inline void check(bool ok) {
  if (!ok) std::abort();  // #UD on real hardware: a shape the config does not allow
}
inline void zero(int t) { std::memset(state().tile[t], 0, 1024); }
inline void load(int t, const void* p, int64_t stride) {
  State& s = state();
  check(s.cfg.rows[t] > 0 && s.cfg.colsb[t] <= 64);
  std::memset(s.tile[t], 0, 1024);
  for (int r = 0; r < s.cfg.rows[t]; ++r)
    std::memcpy(s.tile[t] + 64 * r, static_cast<const uint8_t*>(p) + r * stride, s.cfg.colsb[t]);
}
inline void store(int t, void* p, int64_t stride) {
  State& s = state();
  for (int r = 0; r < s.cfg.rows[t]; ++r)
    std::memcpy(static_cast<uint8_t*>(p) + r * stride, s.tile[t] + 64 * r, s.cfg.colsb[t]);
}
inline float bf16_at(const uint8_t* tile, int row, int element) {
  uint16_t h;
  std::memcpy(&h, tile + 64 * row + 2 * element, 2);
  return bf16_to_f32(h);
}
// C[m][n] += Σ_p A[m][2p]·B[p][n].lo + A[m][2p+1]·B[p][n].hi, in fp32.
inline void dpbf16ps(int c, int a, int b) {
  State& s = state();
  const int m_rows = s.cfg.rows[c], n_cols = s.cfg.colsb[c] / 4, pairs = s.cfg.colsb[a] / 4;
  check(s.cfg.rows[a] == m_rows && s.cfg.rows[b] == pairs && s.cfg.colsb[b] == s.cfg.colsb[c]);
  for (int m = 0; m < m_rows; ++m)
    for (int n = 0; n < n_cols; ++n) {
      float acc;
      std::memcpy(&acc, s.tile[c] + 64 * m + 4 * n, 4);
      for (int p = 0; p < pairs; ++p) {
        acc += bf16_at(s.tile[a], m, 2 * p) * bf16_at(s.tile[b], p, 2 * n);
        acc += bf16_at(s.tile[a], m, 2 * p + 1) * bf16_at(s.tile[b], p, 2 * n + 1);
      }
      std::memcpy(s.tile[c] + 64 * m + 4 * n, &acc, 4);
    }
}

}  // namespace lowbit::amx_emulation

#undef _tile_zero
#undef _tile_loadd
#undef _tile_stored
#undef _tile_dpbf16ps
#define _tile_zero(t) ::lowbit::amx_emulation::zero(t)
#define _tile_loadd(t, p, stride) ::lowbit::amx_emulation::load(t, p, stride)
#define _tile_stored(t, p, stride) ::lowbit::amx_emulation::store(t, p, stride)
#define _tile_dpbf16ps(c, a, b) ::lowbit::amx_emulation::dpbf16ps(c, a, b)
