// Reference GEMMs and activation calibration for the compressed-tensors schemes that
// kernels/reference/quant_gemm_ref.h does not cover (static unfolded int8, per-tensor /
// per-channel FP8), plus the plain float product used as the report's baseline. Written
// from the scheme table in ../shared/spec/quantization.md and compressed-tensors'
// forward fake-quantization (quantization/lifecycle/forward.py); used only by the error
// report of `lowbit quantize`, so clarity over speed. Sums are exact (int32 for int8
// products, double for floats).
#pragma once

#include <cstdint>

#include "kernels/reference/quantize_ref.h"

namespace lowbit::quantize {

// y[m, n] = Σ_k x[m, k] · w[n, k] in double, rounded to fp32 once.
void gemm_float_ref(const float* x, int64_t m, const float* w, int64_t n, int64_t k, float* y);

// compressed-tensors int-quantized weights (per-channel w_scale [N]) with static per-tensor
// int8 activations: xq = clamp(rne(x / s_x) + zp, -128, 127) (zp = 0 when symmetric),
// y = float(Σ (xq − zp)·wq) · s_x · w_scale[n].
void gemm_w8a8_static_unfolded_ref(const float* x, int64_t m, const int8_t* wq, const float* w_scale, int64_t n,
                                   int64_t k, float input_scale, int input_zero, float* y);

// compressed-tensors FP8: E4M3 weights with w_scale per tensor (per_channel false, one
// value) or per channel [N]; activations E4M3, static per tensor (input_scale > 0:
// xq = e4m3(x / s)) or dynamic per token (input_scale == 0: s[m] = amax/448).
// y = Σ xq·wq (double) · s_x · s_w.
void gemm_fp8_ref(const float* x, int64_t m, const uint8_t* wq, const float* w_scale, bool per_channel, int64_t n,
                  int64_t k, float input_scale, float* y);

// compressed-tensors calculate_qparams for a static per-tensor activation from an observed
// range, in the compute dtype as upstream (min ≤ 0 ≤ max forced): int8 symmetric
// s = amax / 127.5, asymmetric s = (max − min) / 255, zp = rne(clamp(−128 − min / s));
// FP8 s = amax / 448; a zero scale becomes the dtype's eps.
struct CtActQParams {
  float scale = 0;
  int zero = 0;
};
CtActQParams ct_static_act_qparams(float min_val, float max_val, bool fp8, bool symmetric, ComputeDType compute);

}  // namespace lowbit::quantize
