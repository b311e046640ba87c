// The kernel seam of the quantized schemes: two GEMMs over PackedCodes (packed_weights.h)
// cover every scheme. A scheme quantizes activations its own way, then calls one of them for
// a range of 16-row weight tiles; the caller splits tiles across threads. Kernels read only
// the packed layout and never allocate. Backends (AVX-512 VNNI, AMX, CUDA) add entries to the
// registry; the scalar oracles in kernels/reference/quant_gemm_ref.h check them all.
#pragma once

#include <cstdint>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/packed_weights.h"

namespace lowbit {

// Integer weights × int8 activations, exact int32 dot products.
//   groups == 0: y = float(Σ_k xq·(wq − z[n]) + col_int_bias[n]) · row_scale[m] · col_scale[n] + col_bias[n]
//   groups > 0:  y = (Σ_j float(Σ_{k∈j} xq·(wq − z[n, j])) · group_scale[n, j]) · row_scale[m] · col_scale[n]
//                    + col_bias[n]
// Weight codes are signed: int8, or int4 two's complement nibbles. Null pointers mean 0
// (biases, zero points) or 1 (scales). xq rows hold k_pad codes, zero past K. Groups are
// ceil(k_pad / group) (the last may be short); K ≤ 2^16 keeps every sum inside int32
// (|xq·(wq − z)| ≤ 128·255 < 2^15), and kernels may compute in wrapping int32 arithmetic.
struct IntGemmArgs {
  const int8_t* xq = nullptr;
  int64_t ldxq = 0, m = 0;
  const PackedCodes* w = nullptr;
  int64_t group = 0;                      // K per group (a multiple of w->k_step()), 0 = none
  const TiledParams* group_scale = nullptr;
  // Asymmetric weights (W4A16 with zero points, AWQ): zero point per (n, group) in code units
  // (integer-valued floats), y uses Σ_k xq·(w − z). With group == 0 it has one group: a zero
  // point per n. Requires row_group_sum.
  const TiledParams* group_zero = nullptr;
  // Σ_{k∈g} xq per row and group: [m][groups] contiguous, groups = k_pad / group rounded up
  // (1 when group == 0). Written by the activation quantizer (kernels/quantize_rows.h);
  // kernels that shift weights to unsigned (VNNI's u8×s8) use it too (the VNNI kernel sums
  // xq itself when it is null, at the cost of one more pass over xq per call).
  const int32_t* row_group_sum = nullptr;
  const int32_t* col_int_bias = nullptr;  // [n_pad], only without groups
  const float* row_scale = nullptr;       // [m]
  const float* col_scale = nullptr;       // [n_pad]
  const float* col_bias = nullptr;        // [n_pad]
  float* y = nullptr;
  int64_t ldy = 0;
};

// Weight codes decoded through a table (E4M3, E2M1, int4 signed or unsigned) × activations:
//   y[m, n] = Σ_j xs[m, j] · ws[n, j] · Σ_{k∈j} x[m, k] · (lut[q] − zero[n, j]) + col_bias[n]
// over weight groups j of `group` K (ceil(k_pad / group), the last may be short). Activations
// are either fp32 (x) or codes through their own table (xq, x_lut: MX and FP8 activations
// keep their E4M3/E2M1 codes, so kernels can multiply exactly in BF16 or int8); rows hold
// k_pad values, zero (code of 0) past K. xs = x_scale[m·ldxs + j] (ldxs 0: one row shared by
// every row, e.g. a static per-tensor scale; nullptr: 1). ws = scale or 2^(u−127) from
// scale_e8m0 (MX: one byte per lane and group, tiled like TiledParams). zero == nullptr means
// symmetric.
struct CodeGemmArgs {
  const float* x = nullptr;          // fp32 activations, or
  const uint8_t* xq = nullptr;       // activation codes decoded by x_lut (16 or 256 entries)
  const float* x_lut = nullptr;
  int x_bits = 8;                    // activation code width: 4 (x_lut has 16 entries) or 8
  int64_t ldx = 0, m = 0;            // row stride of x or xq, in elements
  const float* x_scale = nullptr;    // per row and weight group
  int64_t ldxs = 0;
  // Fp32 x may be rounded to BF16 (RNE) before multiplying (runtime_options().float_activations
  // allows it); kernels that do must say so in their bound. Coded activations are never rounded.
  bool x_bf16_ok = false;
  const PackedCodes* w = nullptr;
  const float* lut = nullptr;  // 256 entries (8-bit codes) or 16 (4-bit)
  int64_t group = 0;           // K per group (a multiple of w->k_step()), 0 = one group
  const TiledParams* scale = nullptr;    // fp32 weight scales, or (one of the two is required)
  const uint8_t* scale_e8m0 = nullptr;   // E8M0 exponents at [(t·groups + j)·16 + lane]
  const TiledParams* zero = nullptr;
  const float* col_bias = nullptr;  // [n_pad]
  float* y = nullptr;
  int64_t ldy = 0;
  // Nonzero and distinct per call (next_code_gemm_call_id()), the same for every tile range of
  // the call: a kernel may then convert x once per thread and reuse it for the call's further
  // ranges (a call runs as ~4 ranges per thread). 0: convert on every range.
  uint64_t call_id = 0;
};

// A fresh CodeGemmArgs::call_id (thread-safe, never 0).
uint64_t next_code_gemm_call_id();

using IntGemmFn = void (*)(const IntGemmArgs&, int64_t tile_begin, int64_t tile_end);
using CodeGemmFn = void (*)(const CodeGemmArgs&, int64_t tile_begin, int64_t tile_end);

// One backend's kernel set. The *_large entries (when set) take over from m >= large_rows
// (prefill: AMX tiles, cache-blocked GEMM); the plain ones serve every m (decode GEMV 1-8
// rows and the fallback). A set is usable when max_isa() >= isa and usable(cpu) (if given)
// holds, e.g. AVX-512 VNNI present.
struct QuantGemmKernels {
  const char* name;
  Isa isa;
  bool (*usable)(const CpuFeatures&);
  IntGemmFn int_gemm;
  CodeGemmFn code_gemm;
  IntGemmFn int_gemm_large = nullptr;
  CodeGemmFn code_gemm_large = nullptr;
  int64_t large_rows = 0;
};

// The fastest set the CPU runs (capped by LOWBIT_MAX_ISA), and all of them for tests.
const QuantGemmKernels& pick_quant_gemm(const CpuFeatures& cpu);
std::vector<const QuantGemmKernels*> quant_gemm_kernels(const CpuFeatures& cpu);

extern const QuantGemmKernels kQuantGemmPortable;
extern const QuantGemmKernels kQuantGemmAvx512;
extern const QuantGemmKernels kQuantGemmVnni;
extern const QuantGemmKernels kQuantGemmAmx;

}  // namespace lowbit
