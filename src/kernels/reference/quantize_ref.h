// Reference quantizers, written from shared/spec/quantization.md and the upstream writers'
// source, bit-exact with them (tests/python/test_quant_reference.py checks against
// compressed_tensors itself and against torch re-implementations in tests/reference/).
// Clarity over speed: these are the oracles for the fast quantizers and the source of
// `lowbit quantize`. Inputs are fp32 arrays; a bf16/f16 checkpoint's values are passed
// widened to fp32 and ComputeDType says whether to round every intermediate back to that
// type, as the Python writers do when they compute in the weight's own dtype.
#pragma once

#include <cstdint>
#include <vector>

#include "schemes/scheme_spec.h"

namespace lowbit {

enum class ComputeDType { F32, BF16, F16 };
// x rounded to `t` (round to nearest even) and widened back; identity for F32.
float round_to_compute(float x, ComputeDType t);

// ---- Integer weights, [N, K] row-major, one scale (and zero point) per row per group of
// `group_size` along K (0 = per channel, i.e. one group of K). Results: q [N, K], scale and
// zero [N, G] with G = ceil(K / group_size).
enum class IntScaleRule {
  // s = max(amax / qmax, 2^-23) (qmax 127 or 7), q = clamp(rne(w / s), -qmax - 1, qmax), so
  // an all-zero group gets s = 2^-23 and q = 0. msmodelslim's calculate_int_qparam /
  // int_quantize (symmetric), and ours for online quantization. A ragged last group
  // (K % group_size != 0) is allowed.
  QMax,
  // compressed-tensors calculate_qparams + _quantize (v0.19): range forced to include 0,
  // s = amax / ((qmax - qmin) / 2) = amax / 127.5 (int8) or / 7.5 (int4), s == 0 replaced by
  // the compute dtype's eps, q = clamp(rne(w / s), qmin, qmax). K % group_size != 0 with
  // K >= group_size is rejected as upstream does.
  CompressedTensors,
};

struct IntWeightQuant {
  int64_t n = 0, k = 0, groups = 0, group_size = 0;
  std::vector<int8_t> q;     // [N, K]
  std::vector<float> scale;  // [N, G]
  std::vector<int8_t> zero;  // [N, G]; empty if symmetric. compressed-tensors: signed, in
                             // [qmin, qmax]; AWQ: unsigned 0..15. Dequant (q - zero)·scale.
};

IntWeightQuant quantize_weight_sym(const float* w, int64_t n, int64_t k, int bits,
                                   int64_t group_size, IntScaleRule rule,
                                   ComputeDType compute = ComputeDType::F32);
// compressed-tensors asymmetric (bits 4 or 8): min ≤ 0 ≤ max forced, s = (max - min) /
// (qmax - qmin), zp = rne(clamp(qmin - min / s, qmin, qmax)), q = clamp(rne(w / s + zp)).
// An all-zero group has 0/0 = NaN as its zero point upstream; we write zp = 0 there (what
// torch's NaN→int8 cast yields on x86) and s = eps, so every code is 0 either way.
IntWeightQuant quantize_weight_asym_ct(const float* w, int64_t n, int64_t k, int bits,
                                       int64_t group_size,
                                       ComputeDType compute = ComputeDType::F32);
// AutoAWQ pseudo_quantize_tensor (w_bit 4, zero_point=True): s = max(max - min, 1e-5) / 15,
// z = clamp(-rne(min / s), 0, 15), q = clamp(rne(w / s) + z, 0, 15); min/max are the
// group's own (0 is not forced into the range). K % group_size must be 0, as upstream.
IntWeightQuant quantize_weight_awq(const float* w, int64_t n, int64_t k, int64_t group_size,
                                   ComputeDType compute = ComputeDType::F32);

// ---- Activations, x [M, K] row-major, fp32.
// Per-token symmetric (W8A8/W4A4/W4A8 dynamic): s[m] = max|x_m| / qmax (127 for 8 bits, 7
// for 4), q = clamp(rne(x / s), -qmax - 1, qmax); an all-zero row gets s = 0 and q = 0.
void quantize_act_per_token_sym(const float* x, int64_t m, int64_t k, int bits, int8_t* q,
                                float* scale);
// Per-tensor static asymmetric int8 (msmodelslim W8A8 static, as SGLang runs it through
// npu_quantize(x, 1/s, offset, div_mode=False)): q = clamp(rne(x · (1/s) + offset), -128, 127),
// each operation rounded to fp32 (no FMA).
void quantize_act_static_asym(const float* x, int64_t count, float input_scale, float input_offset,
                              int8_t* q);
// msmodelslim's calibration of those two numbers from an observed range (calculate_int_qparam,
// asymmetric, signed int8): min ≤ 0 ≤ max forced, s = max(max/255 - min/255, 2^-23),
// offset = rne(-min / s) - 128 (a signed-domain zero point, stored as fp32).
struct StaticActQuant {
  float input_scale = 0, input_offset = 0;
};
StaticActQuant calibrate_static_asym_int8(float min_val, float max_val);

// ---- Microscaling (OCP MX v1.0): blocks of 32 along K, E8M0 scale per block.
enum class MxElem { E4M3, E2M1 };
inline constexpr int64_t kMxBlock = 32;
// The unbiased block exponent e for a block whose largest magnitude is amax:
//   Ocp             floor(log2 amax) - emax (emax 8 for E4M3, 2 for E2M1)
//   MsModelSlimFp8  floor(log2 amax) - 8            (E4M3 only)
//   MsModelSlimFp4  floor(log2(amax / 0.875 + 9.6e-7)) - 2   (E2M1 only, fp32 arithmetic)
// (msmodelslim msmodelslim/ir/api/impl/mx_quantization.py: calculate_mx_qparam,
// calculate_mxfp4_qparam). amax = 0 gives -127 except under MsModelSlimFp4 (-22). floor(log2)
// is exact here (frexp); upstream uses torch.log2 in fp32, which can round a value within an
// ulp or so below a power of two up to it: the only known way our exponents can differ.
// Throws for a rule/element mismatch.
int mx_block_exponent(float amax, MxElem elem, MxScaleRule rule);
// x [rows, K] → codes [rows, K] (E4M3 bytes or E2M1 codes, one per byte) and E8M0 scales
// [rows, K/32]. Elements are x · 2^-e rounded — to nearest even for Ocp, half away from zero
// for the msmodelslim rules — and saturated to the element max. e is clamped to E8M0's
// [-127, 127] (an all-zero block gets u = 0 under Ocp and MsModelSlimFp8) and codes are
// computed against the clamped exponent, except that MsModelSlimFp4 zeroes a block whose
// exponent is below -127, as its writer does. K % 32 != 0 throws.
void quantize_mx(const float* x, int64_t rows, int64_t k, MxElem elem, MxScaleRule rule,
                 uint8_t* codes, uint8_t* scales);

// ---- FP8 E4M3 with fp32 scales (compressed-tensors float-quantized, Qwen3-FP8 blocks):
// s = amax / 448 per tensor, row, or [block × block] tile (ceil at the edges), s == 0 → the
// compute dtype's eps as compressed-tensors does, q = e4m3_rne(w / s) (torch .to(float8)).
enum class Fp8Granularity { Tensor, Channel, Block };
struct Fp8WeightQuant {
  std::vector<uint8_t> q;    // [N, K] E4M3 bytes
  std::vector<float> scale;  // [1], [N] or [ceil(N/b), ceil(K/b)]
};
Fp8WeightQuant quantize_weight_fp8(const float* w, int64_t n, int64_t k, Fp8Granularity g,
                                   int64_t block = 128, ComputeDType compute = ComputeDType::F32);
// Activations per token and group of `group` along K (FP8 block scheme, dynamic):
// s[m, j] = amax / 448, q = e4m3_rne(x / s); an all-zero group gets s = 0 and q = 0.
// scale is [M, ceil(K / group)].
void quantize_act_fp8_groups(const float* x, int64_t m, int64_t k, int64_t group, uint8_t* q,
                             float* scale);

}  // namespace lowbit
