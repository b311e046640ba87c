// A scalar model of the AMX-INT8 tile instructions int_gemm_amx.cc uses, for testing its
// blocking, tails and epilogues on CPUs (and VMs) without AMX: int_gemm_amx.cc built with
// -DLOWBIT_AMX_EMULATE (tests only) runs on these instead of the tile unit. It checks the
// shape rules under which the real instructions fault (#UD), so a tile configuration that
// would crash on hardware fails here too.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/amx_tiles.h"

namespace lowbit::amx_emulator {

struct State {
  amx::TileConfig cfg{};
  bool configured = false;
  alignas(64) uint8_t tile[8][16][64] = {};
};

inline State& state() {
  static thread_local State s;
  return s;
}

[[noreturn]] inline void fault(const char* what) {
  std::fprintf(stderr, "AMX emulator: %s (the real instruction faults)\n", what);
  std::abort();
}

// ldtilecfg: palette 1, at most 16 rows × 64 bytes per tile; zeroes every tile.
inline void configure(const amx::TileConfig& cfg) {
  if (cfg.palette != 1) fault("palette must be 1");
  for (int t = 0; t < 8; ++t)
    if (cfg.rows[t] > 16 || cfg.colsb[t] > 64) fault("tile larger than 16 rows x 64 bytes");
  State& s = state();
  s.cfg = cfg;
  s.configured = true;
  std::memset(s.tile, 0, sizeof s.tile);
}

inline void check_tile(int t) {
  const State& s = state();
  if (!s.configured) fault("tile instruction before ldtilecfg");
  if (s.cfg.rows[t] == 0 || s.cfg.colsb[t] == 0) fault("tile not configured");
}

inline void load(int t, const void* base, int64_t stride) {
  check_tile(t);
  State& s = state();
  for (int r = 0; r < s.cfg.rows[t]; ++r)
    std::memcpy(s.tile[t][r], static_cast<const uint8_t*>(base) + r * stride, s.cfg.colsb[t]);
}

inline void store(int t, void* base, int64_t stride) {
  check_tile(t);
  const State& s = state();
  for (int r = 0; r < s.cfg.rows[t]; ++r)
    std::memcpy(static_cast<uint8_t*>(base) + r * stride, s.tile[t][r], s.cfg.colsb[t]);
}

inline void zero(int t) {
  check_tile(t);
  std::memset(state().tile[t], 0, sizeof state().tile[t]);
}

// tdpbssd c, a, b: C[m][n] += Σ_k Σ_{i<4} int8 A[m][4k + i] · int8 B[k][4n + i], wrapping int32.
inline void dpbssd(int c, int a, int b) {
  check_tile(c), check_tile(a), check_tile(b);
  State& s = state();
  const auto& cfg = s.cfg;
  if (cfg.rows[c] != cfg.rows[a] || cfg.colsb[c] != cfg.colsb[b] || cfg.colsb[a] / 4 != cfg.rows[b] ||
      cfg.colsb[a] % 4 != 0 || cfg.colsb[c] % 4 != 0)
    fault("tdpbssd operand shapes do not match");
  for (int m = 0; m < cfg.rows[c]; ++m)
    for (int n = 0; n < cfg.colsb[c] / 4; ++n) {
      int32_t acc;
      std::memcpy(&acc, &s.tile[c][m][4 * n], 4);
      uint32_t sum = uint32_t(acc);
      for (int k = 0; k < cfg.rows[b]; ++k)
        for (int i = 0; i < 4; ++i)
          sum += uint32_t(int32_t(int8_t(s.tile[a][m][4 * k + i])) * int32_t(int8_t(s.tile[b][k][4 * n + i])));
      acc = int32_t(sum);
      std::memcpy(&s.tile[c][m][4 * n], &acc, 4);
    }
}

// ensure_config as amx_tiles.h has it: reload only when the shape changes.
inline void ensure_config(const amx::TileConfig& cfg) {
  State& s = state();
  if (!s.configured || std::memcmp(&s.cfg, &cfg, sizeof cfg) != 0) configure(cfg);
}

}  // namespace lowbit::amx_emulator
