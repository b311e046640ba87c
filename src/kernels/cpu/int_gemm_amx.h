// AMX-INT8 prefill GEMM for the integer schemes (W8A8, W4A8, W4A4, W4A16 with int8
// activations): the IntGemmArgs contract of kernels/quant_gemm.h, computed on AMX tiles.
// Defined in int_gemm_amx.cc, the only file built with -mamx-*; it may run only when
// cpu_features().max_isa() >= Isa::Amx (tile-data permission granted by Linux).
#pragma once

#include <cstdint>

#include "kernels/quant_gemm.h"

namespace lowbit {

// Same result as the portable tiles' int_gemm (quant_gemm_tiled.inc) for weight tiles
// [tile_begin, tile_end): integer dot products exact, then the same fp32 epilogue.
void int_gemm_amx(const IntGemmArgs& a, int64_t tile_begin, int64_t tile_end);

// The same kernel on a scalar model of the tile instructions (kernels/cpu/amx_emulator.h),
// linked into int_gemm_amx_test only: it checks the kernel's logic on machines without AMX
// (it still needs AVX-512 for the widening and the epilogue).
void int_gemm_amx_emulated(const IntGemmArgs& a, int64_t tile_begin, int64_t tile_end);

}  // namespace lowbit
