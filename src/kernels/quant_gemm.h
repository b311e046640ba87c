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
//   groups == 0: y = float(Σ_k xq·wq + col_int_bias[n]) · row_scale[m] · col_scale[n] + col_bias[n]
//   groups > 0:  y = (Σ_j float(Σ_{k∈j} xq·wq) · group_scale[n, j]) · row_scale[m] · col_scale[n] + col_bias[n]
// Weight codes are signed: int8, or int4 two's complement nibbles. Null pointers mean 0
// (biases) or 1 (scales). xq rows hold k_pad codes, zero past K.
struct IntGemmArgs {
  const int8_t* xq = nullptr;
  int64_t ldxq = 0, m = 0;
  const PackedCodes* w = nullptr;
  int64_t group = 0;                      // K per group (a multiple of w->k_step()), 0 = none
  const TiledParams* group_scale = nullptr;
  const int32_t* col_int_bias = nullptr;  // [n_pad], only without groups
  const float* row_scale = nullptr;       // [m]
  const float* col_scale = nullptr;       // [n_pad]
  const float* col_bias = nullptr;        // [n_pad]
  float* y = nullptr;
  int64_t ldy = 0;
};

// Weight codes decoded through a table (E4M3, E2M1, int4 signed or unsigned) × fp32
// activations (already dequantized by the scheme: x̂ = code · scale, exact for MX):
//   y = Σ_k x̂ · ((lut[q] − zero[n, j(k)]) · scale[n, j(k)]) + col_bias[n]
// zero == nullptr means symmetric. x rows hold k_pad floats, zero past K.
struct CodeGemmArgs {
  const float* x = nullptr;
  int64_t ldx = 0, m = 0;
  const PackedCodes* w = nullptr;
  const float* lut = nullptr;  // 256 entries (8-bit codes) or 16 (4-bit)
  int64_t group = 0;           // K per group (a multiple of w->k_step()); scale has k_pad/group groups
  const TiledParams* scale = nullptr;
  const TiledParams* zero = nullptr;
  const float* col_bias = nullptr;  // [n_pad]
  float* y = nullptr;
  int64_t ldy = 0;
};

using IntGemmFn = void (*)(const IntGemmArgs&, int64_t tile_begin, int64_t tile_end);
using CodeGemmFn = void (*)(const CodeGemmArgs&, int64_t tile_begin, int64_t tile_end);

struct QuantGemmKernels {
  const char* name;
  Isa isa;
  IntGemmFn int_gemm;
  CodeGemmFn code_gemm;
};

// The fastest set the CPU runs (capped by LOWBIT_MAX_ISA), and all of them for tests.
const QuantGemmKernels& pick_quant_gemm(const CpuFeatures& cpu);
std::vector<const QuantGemmKernels*> quant_gemm_kernels(const CpuFeatures& cpu);

extern const QuantGemmKernels kQuantGemmPortable;
extern const QuantGemmKernels kQuantGemmAvx512;

}  // namespace lowbit
