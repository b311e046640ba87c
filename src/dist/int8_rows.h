// The two row kernels of the compressed all-reduce (../shared/spec/tp-compression.md):
// per-token symmetric INT8 quantization of a partial sum, and dequantize-and-accumulate of one
// rank's INT8 rows into an fp32 sum. Every set is bit-identical to the portable one (true
// division, round half to even, no FMA contraction), so ranks on hosts with different ISAs still
// end with bit-identical all-reduce results. One set is chosen per process (cpu_features()).
#pragma once

#include <cstdint>
#include <vector>

#include "core/cpu_features.h"

namespace lowbit::dist {

// Largest code magnitude: symmetric, so -128 is never produced.
inline constexpr float kInt8Max = 127.0f;

struct Int8RowKernels {
  const char* name;
  Isa isa;
  // Row m of x[m][h] (ld floats apart): scale[m] = max|x[m,:]| / 127 and
  // q[m][j] = clamp(round_half_even(x / scale), -127, 127); an all-zero row gets scale 0 and
  // zero codes. Codes are written densely (h per row). NaN elements are skipped by the max and
  // get code 0; an infinite element makes the scale infinite (the row dequantizes to NaN).
  void (*quantize)(const float* x, int64_t ld, int64_t m, int64_t h, int8_t* q, float* scale);
  // out[m][j] (ld apart) = Σ_r float(q_r[m][j]) · scale_r[m] over r = 0 … ranks−1 in that
  // order, each product and each add rounded to fp32 (never fused; the first term is the
  // product itself), so every rank and every set gets the same bits. One pass over out.
  void (*dequant_sum)(const int8_t* const* q, const float* const* scale, int ranks, int64_t m, int64_t h,
                      float* out, int64_t ld);
};

extern const Int8RowKernels kInt8RowsPortable;
extern const Int8RowKernels kInt8RowsAvx512;

// The fastest set this CPU runs (LOWBIT_MAX_ISA caps it), and every runnable set for tests.
const Int8RowKernels& int8_row_kernels();
std::vector<const Int8RowKernels*> int8_row_kernel_list(const CpuFeatures& cpu);

}  // namespace lowbit::dist
