// AVX-512 VNNI integer GEMM for the integer schemes (W8A8 static/dynamic, W4A8, W4A4, W4A16
// with int8 activations): the IntGemmArgs contract of kernels/quant_gemm.h on vpdpbusd,
// reading PackedCodes in place. Serves every m: decode GEMV (m ≤ 8, one pass over the
// weights) and prefill (blocks of 4 tiles decoded once into a per-thread scratch of
// 64·k_pad bytes, then reused by every block of rows) where no AMX runs (Zen4, VMs that hide
// AMX). Defined in int_gemm_vnni.cc, the only file built with -mavx512vnni; it may run only
// when cpu_features().vnni().
#pragma once

#include <cstdint>

#include "kernels/quant_gemm.h"

namespace lowbit {

// Same result as the portable tiles' int_gemm (quant_gemm_tiled.inc) for weight tiles
// [tile_begin, tile_end): integer dot products exact, then an fp32 epilogue whose only
// difference is fused multiply-adds when accumulating group sums.
void int_gemm_vnni(const IntGemmArgs& a, int64_t tile_begin, int64_t tile_end);

}  // namespace lowbit
