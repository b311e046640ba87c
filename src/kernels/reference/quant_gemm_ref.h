// Reference GEMMs for every quantized scheme, straight from the table in
// shared/spec/quantization.md: y[m, n] = Σ_k x[m, k] · W[n, k] with W in its canonical
// unpacked form (one code per byte, [N, K] row-major, as core/int4_packing.h produces) and
// fp32 activations, quantized inside exactly as the scheme quantizes them at run time
// (kernels/reference/quantize_ref.h). They are the oracles for the fast kernels: every
// integer dot product is exact in int32, every floating block sum is exact in double, and
// scales are applied in the order the spec writes them.
//
// int32 overflow bounds (checked, lowbit::Error otherwise): |xq·wq| ≤ 128·128 = 2^14 for
// int8×int8, so K ≤ 2^16 leaves room for quant_bias (|quant_bias| < 2^30 is checked too);
// int4 products are ≤ 2^6 (A4) or 2^10 (A8), far inside the same K bound.
#pragma once

#include <cstdint>

namespace lowbit {

struct QuantGemmDims {
  int64_t m = 0, n = 0, k = 0;
};

// W8A8 static (msmodelslim W8A8): xq = clamp(rne(x·(1/input_scale) + input_offset), -128, 127),
// y = float(Σ xq·wq + quant_bias[n]) · deq_scale[n]. quant_bias already holds the float bias
// and the zero-point correction; nothing else is added.
void gemm_w8a8_static_ref(const QuantGemmDims& d, const float* x, const int8_t* wq,
                          float input_scale, float input_offset, const int32_t* quant_bias,
                          const float* deq_scale, float* y);

// W8A8 / W4A4 dynamic: xq per-token symmetric with act_bits (8: s = max|x|/127, 4: /7),
// y = float(Σ xq·wq) · s_x[m] · s_w[n]. Weight codes must fit w_bits.
void gemm_dynamic_int_ref(const QuantGemmDims& d, const float* x, const int8_t* wq,
                          const float* w_scale, int w_bits, int act_bits, float* y);
inline void gemm_w8a8_dynamic_ref(const QuantGemmDims& d, const float* x, const int8_t* wq,
                                  const float* w_scale, float* y) {
  gemm_dynamic_int_ref(d, x, wq, w_scale, 8, 8, y);
}
inline void gemm_w4a4_dynamic_ref(const QuantGemmDims& d, const float* x, const int8_t* wq,
                                  const float* w_scale, float* y) {
  gemm_dynamic_int_ref(d, x, wq, w_scale, 4, 4, y);
}

// W4A8 dynamic: int4 codes, int8 per-token activations. Without scale_second (nullptr) it
// is W8A8 dynamic with int4 weights. With it ([N, ceil(K/g)]), each group's exact partial
// sum is scaled: y = s_x[m] · Σ_j (Σ_{k∈j} xq·wq) · scale_second[n, j] · w_scale[n], the
// group sum in double (w = q · scale_second[n, k/g] · weight_scale[n]).
void gemm_w4a8_dynamic_ref(const QuantGemmDims& d, const float* x, const int8_t* wq,
                           const float* w_scale, const float* scale_second, int64_t group,
                           float* y);

// W4A16: fp32 activations, w[n, k] = (q - z[n, k/g]) · s[n, k/g] in fp32 (the dequantized
// weight as the writers define it), y = Σ x·w accumulated in double. Codes are signed
// (pack-quantized) or unsigned (AWQ); zero is nullptr for symmetric.
void gemm_w4a16_ref(const QuantGemmDims& d, const float* x, const int8_t* wq, const int8_t* zero,
                    const float* scale, int64_t group, float* y);

// W4A16 with per-token int8 activations (runtime_options().w4a16_activations == "int8", as
// SGLang CPU's AWQ path and ggml's Q4×Q8 run it): xq, s_x as W8A8 dynamic (s = max|x|/127),
// then y = s_x[m] · Σ_j s[n, j] · Σ_{k∈j} xq·(q − z[n, j]), each group's sum exact in int32 and
// the rest in double. Codes and zeros as gemm_w4a16_ref (signed or unsigned, zero nullable).
// Versus gemm_w4a16_ref it differs only by the activation rounding, |x − s_x·xq| ≤ s_x/2 per
// element: |Δy| ≤ (s_x/2)·Σ_k |w[n, k]| (plus fp32 rounding).
void gemm_w4a16_int8act_ref(const QuantGemmDims& d, const float* x, const int8_t* wq, const int8_t* zero,
                            const float* scale, int64_t group, float* y);

// MXFP8: E4M3 weights with E8M0 scales [N, K/32]; activations MXFP8-quantized with the OCP
// rule (our run-time quantizer). y = Σ_blocks 2^(ex+ew) · Σ_32 x·w, block sums exact in
// double. K % 32 != 0 and any 0xFF weight scale throw.
void gemm_mxfp8_ref(const QuantGemmDims& d, const float* x, const uint8_t* w_fp8,
                    const uint8_t* w_scales, float* y);
// MXFP4: E2M1 weight codes (unpacked, one per byte) with E8M0 scales [N, K/32];
// activations MXFP8 (W4A8_MXFP, act_fp4 = false) or MXFP4 (W4A4_MXFP4), OCP rule.
void gemm_mxfp4_ref(const QuantGemmDims& d, const float* x, const uint8_t* w_fp4,
                    const uint8_t* w_scales, bool act_fp4, float* y);

// FP8 block (Qwen3-FP8): E4M3 weights, scale_inv [ceil(N/b), ceil(K/b)] fp32; activations
// per token and group of b along K (s = amax/448). y = Σ_j s_x[m, j] · s_w[n/b, j] · Σ_{k∈j} x·w.
void gemm_fp8_block_ref(const QuantGemmDims& d, const float* x, const uint8_t* w_fp8,
                        const float* w_scale_inv, int64_t block, float* y);

}  // namespace lowbit
