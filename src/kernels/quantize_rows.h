// Row quantizers, run once per GEMM on every row of x: the integer schemes' per-token
// symmetric (W8A8/W4A4/W4A8 dynamic, W4A16 with int8 activations) and per-tensor static
// (W8A8 static) activations, and OCP MX blocks (MX activations per GEMM, MX weights once at
// load). Each writes rows of k_pad codes (zeros past K, as IntGemmArgs wants) and
// the per-(row, group) code sums that IntGemmArgs::row_group_sum carries, in the same pass.
// Results are bit-identical to the reference quantizers in kernels/reference/quantize_ref.h
// (same scale formula, true division, round half to even); one set is chosen per process.
#pragma once

#include <cstdint>
#include <vector>

#include "core/cpu_features.h"

namespace lowbit {

// Rows x[m][k] (ldx apart) → q[m][ldq]: codes in [0, k), zeros in [k, ldq). When group_sum
// is set it receives Σ q over each group of `group` codes ([m][ceil(ldq / group)], one group
// of ldq codes when group == 0).
struct ActQuantRows {
  const float* x = nullptr;
  int64_t ldx = 0, m = 0, k = 0;
  int8_t* q = nullptr;
  int64_t ldq = 0;
  int64_t group = 0;
  int32_t* group_sum = nullptr;
};

// Per-tensor static int8 rules, as the checkpoint writers round.
enum class StaticActRule {
  // msmodelslim: q = clamp(rne(x · (1/scale) + zero), -128, 127), each step rounded to fp32
  // (quantize_act_static_asym).
  MulOffset,
  // compressed-tensors: q = clamp(rne(x / scale + zero), -128, 127), zero an integer.
  DivZero,
};

struct ActQuantKernels {
  const char* name;
  Isa isa;
  // quantize_act_per_token_sym per row: s = max|x| / qmax (127 or 7 for bits 8 or 4),
  // q = clamp(rne(x / s), -qmax - 1, qmax), an all-zero row gets s = 0 and q = 0. scale: [m].
  void (*per_token_sym)(const ActQuantRows& rows, int bits, float* scale);
  void (*static_int8)(const ActQuantRows& rows, float scale, float zero, StaticActRule rule);
  // quantize_mx(x, 1, k, fp4 ? E2M1 : E4M3, MxScaleRule::Ocp, codes, e8m0) for K a multiple
  // of 32: codes[k] and one E8M0 byte per block. Returns false, outputs unspecified, when the
  // row holds a NaN or an infinity (the reference has no scale for them either).
  bool (*mx_row)(const float* x, int64_t k, bool fp4, uint8_t* codes, uint8_t* e8m0);
  // FP8 (E4M3) activations of one row, fp_act_quant.h's quantize_fp8_row_groups and
  // quantize_fp8_row_static.
  void (*fp8_groups)(const float* x, int64_t k, int64_t group, uint8_t* codes, float* scales);
  void (*fp8_static)(const float* x, int64_t k, float s, uint8_t* codes);
};

// Number of row_group_sum entries per row for `group` (0 = per row) over ldq codes.
inline int64_t act_groups(int64_t ldq, int64_t group) { return group ? (ldq + group - 1) / group : 1; }

// The fastest set this CPU runs (chosen once per process, capped by LOWBIT_MAX_ISA), and all
// of them for tests.
const ActQuantKernels& act_quant_kernels();
std::vector<const ActQuantKernels*> act_quant_kernel_list(const CpuFeatures& cpu);

extern const ActQuantKernels kActQuantPortable;
extern const ActQuantKernels kActQuantAvx512;

}  // namespace lowbit
