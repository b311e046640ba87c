// Run-time activation quantizers for the float-coded schemes (MXFP8/MXFP4 blocks, FP8 per
// token, per group or per tensor), bit-identical to the reference quantizers
// (kernels/reference/quantize_ref.h: quantize_mx with the OCP rule, quantize_act_fp8_groups,
// f32_to_fp8_e4m3_rne) but branch-free per element, so the compiler vectorises them: the
// references call frexp/ldexp and branch per element, which costs more than a decode GEMV's
// whole share of the row. Outputs are codes for CodeGemmArgs::xq plus per-group fp32 scales.
#pragma once

#include <cstdint>

namespace lowbit {

// One row of K (a multiple of 32): codes[K] (E4M3 bytes, or E2M1 codes when fp4) and
// scales[K/32] = 2^(u − 127), the block's E8M0 scale.
void quantize_mx_row(const float* x, int64_t k, bool fp4, uint8_t* codes, float* scales);
// One block of 32 (finite) values: its codes, and its E8M0 scale byte as the return value.
uint8_t quantize_mx_block(const float* x, bool fp4, uint8_t* codes);

// One row, groups of `group` along K (the last may be short): s = amax / 448,
// codes = E4M3(x / s) (0 when s == 0); scales[ceil(K / group)].
void quantize_fp8_row_groups(const float* x, int64_t k, int64_t group, uint8_t* codes, float* scales);

// One row against a fixed scale: codes = E4M3(clamp(x / s, ±448)) (compressed-tensors static).
void quantize_fp8_row_static(const float* x, int64_t k, float s, uint8_t* codes);

// The element encoders (round to nearest even, saturating; NaN → 0x7F | sign for E4M3, +0 for
// E2M1), exposed for tests.
uint8_t encode_e4m3(float x);
uint8_t encode_e2m1(float x);

}  // namespace lowbit
