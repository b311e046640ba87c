// AMX tile configuration shared by the AMX kernels (compiled with -mamx-tile only there).
// GCC 12 miscompiles _tile_loadconfig at -O2/-O3: it assumes the instruction reads only 8 of
// the 64 config bytes and drops the stores of the row/column fields, so the first tile
// instruction faults (SIGILL). We load the config with inline asm that takes the whole
// 64-byte block as a memory operand, which the compiler cannot elide.
#pragma once

#include <cstdint>
#include <cstring>

namespace lowbit::amx {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row, per tile
  uint8_t rows[16] = {};

  void set(int tile, int rows_, int colsb_) {
    rows[tile] = uint8_t(rows_);
    colsb[tile] = uint16_t(colsb_);
  }
};
static_assert(sizeof(TileConfig) == 64);

inline void load_config(const TileConfig& cfg) {
  __asm__ volatile("ldtilecfg %0" : : "m"(*reinterpret_cast<const uint8_t(*)[64]>(&cfg)) : "memory");
}

inline void release() { __asm__ volatile("tilerelease" ::: "memory"); }

// The config this thread last loaded: kernels reload only when the shape changes (ldtilecfg
// zeroes all tiles and costs ~tens of cycles; a GEMV-sized call should not pay it twice).
inline void ensure_config(const TileConfig& cfg) {
  static thread_local TileConfig current{};
  static thread_local bool loaded = false;
  if (!loaded || std::memcmp(&current, &cfg, sizeof cfg) != 0) {
    load_config(cfg);
    current = cfg;
    loaded = true;
  }
}

}  // namespace lowbit::amx
