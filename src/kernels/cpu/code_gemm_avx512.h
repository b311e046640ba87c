// AVX-512 table-decoded GEMM (CodeGemmArgs of kernels/quant_gemm.h: MXFP8, MXFP4, FP8,
// W4A16 with float activations) reading PackedCodes in place. Weight codes are decoded in
// registers to BF16 pairs (4-bit: vpermw over a 16-entry table per 32 codes; E4M3: two
// vpermi2b byte tables over 128 magnitudes plus the sign bit), each decoded vector shared
// by up to 6 activation rows, so every weight byte is read once per call for m ≤ 6.
//   - Coded activations (MX, FP8 with quantized activations) multiply in BF16 (vdpbf16ps):
//     every product of two E4M3/E2M1 values is exact in fp32; group scales are applied in
//     fp32 per group, so the only error is fp32 accumulation order.
//   - MXFP4 weights × MXFP4 activations (E2M1 × E2M1) multiply in int8 (vpdpbusd on 2·value,
//     exact int32 block sums) — twice the BF16 rate. From 16 rows on, pairs of tiles are decoded
//     once per call into an int8 panel (code_gemm_avx512_panel.cc), same sums and order.
//   - Activations are converted to the kernel's form once per thread per call when the call
//     has a call_id (PackedLinear gives one), not once per tile range.
//   - Fp32 activations multiply in fp32 FMAs on the widened weights (exact weights), unless
//     x_bf16_ok lets the kernel round them to BF16. From 16 rows on, 4-bit tiles are widened
//     once per call into an fp32 panel (code_gemm_avx512_panel.cc) in the same summation
//     order, so a row's result does not depend on the path.
// Defined in code_gemm_avx512.cc (built with AVX-512 F/BW/VL/DQ + VBMI + BF16 + VNNI).
// code_gemm_avx512 may run only when the CPU has all of those; code_gemm_avx512_f32 never
// executes a BF16 instruction (coded activations are widened to fp32 as well), so it needs
// only VBMI and VNNI: Ice Lake, and Xeon guests whose hypervisor hides AVX512-BF16
// (registry.cc checks).
#pragma once

#include <cstdint>

#include "kernels/quant_gemm.h"

namespace lowbit {

// Any m: row blocks of up to 8 (int8), 6 (4-bit BF16) or 4 (8-bit, fp32) rows per pass over
// a weight tile.
// Falls back to the portable tiles for tables it cannot decode exactly (never for the
// schemes' code tables).
void code_gemm_avx512(const CodeGemmArgs& a, int64_t tile_begin, int64_t tile_end);
void code_gemm_avx512_f32(const CodeGemmArgs& a, int64_t tile_begin, int64_t tile_end);

}  // namespace lowbit
