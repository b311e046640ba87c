// Load-time quantizers for online quantization (a float checkpoint under --quantization S):
// one weight row at a time, bit-identical to the reference quantizers they stand in for
// (kernels/reference/quantize_ref.h) but branch-free per element, so the compiler vectorises
// them. The references divide, clamp and round through libm calls per element, which made
// quantizing a 1.7B model at load take 20 s (int) to 70 s (MX) on one core.
//
// Each returns false, writing nothing meaningful, when the row holds a NaN or an infinity:
// no scale represents it, and the caller names the tensor and row.
#pragma once

#include <cstdint>

namespace lowbit {

// quantize_weight_sym(x, 1, k, bits, group, IntScaleRule::QMax) in fp32: per group of `group`
// along K (0: the whole row; the last group may be short) s = max(amax / qmax, 2^-23),
// q = round-half-even(clamp(x / s, qmin, qmax)). codes[k] hold q in two's complement masked
// to `bits` (8 or 4); scales[ceil(k / group)].
bool quantize_row_int_sym(const float* x, int64_t k, int bits, int64_t group, uint8_t* codes, float* scales);

// quantize_mx(x, 1, k, fp4 ? E2M1 : E4M3, MxScaleRule::Ocp, codes, scales): K a multiple of
// 32, E8M0 scale bytes scales[k / 32].
bool quantize_row_mx_ocp(const float* x, int64_t k, bool fp4, uint8_t* codes, uint8_t* scales);

}  // namespace lowbit
