// W4A16: int4 weights with a scale per group of K (or per channel) and, when asymmetric, a
// zero point per group; activations stay float. w[n, k] = (q − z[n, g(k)]) · s[n, g(k)].
// Stored as compressed-tensors pack-quantized (signed codes, zero points packed along N,
// optional actorder g_idx), AutoAWQ GEMM (unsigned codes, transposed scales and zeros), or
// quantized at load from a float checkpoint (symmetric, QMax rule, group 128 by default).
// With g_idx, K is permuted at load so that every group is contiguous, and activations are
// gathered in that order at run time (vLLM's Marlin does the same).
//
// Activations (runtime_options().w4a16_activations, read at load): "int8" quantizes them per
// token to int8 (SGLang CPU's AWQ path and ggml's Q4×Q8 do the same) so the integer kernels
// run, y = s_x · Σ_g s[n, g] · Σ_{k∈g} xq·(q − z) (kernels/reference gemm_w4a16_int8act_ref);
// "float" keeps them fp32 through the table-decoded GEMM (gemm_w4a16_ref); "bf16" rounds them
// to BF16 here, then the same GEMM (vdpbf16ps where the CPU has it: products stay exact);
// "auto" picks bf16 or float (core/runtime_options.h). AWQ's unsigned
// codes and zero points are stored shifted by −8 (q − 8, z − 8: the same q − z) so both paths
// see signed int4 codes.
#pragma once

#include "schemes/packed_linear.h"

namespace lowbit {

class W4A16Linear final : public PackedLinear {
 public:
  W4A16Linear(const SchemeSpec& spec, const LinearTensors& tensors, LinearShape shape, const CpuFeatures& cpu);

  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override;
  size_t weight_bytes() const override;
  std::string describe() const override;

 private:
  SchemeSpec spec_;
  int64_t group_ = 0;  // K per scale; k_pad when per channel
  bool online_ = false;
  bool int8_act_ = false;  // per-token int8 activations through the integer GEMM
  bool bf16_act_ = false;  // activations rounded to BF16 (vdpbf16ps where the CPU has it)
  const float* lut_ = nullptr;
  TiledParams scale_, zero_;
  std::vector<int32_t> perm_;  // g_idx order: packed column p holds input column perm_[p]
};

}  // namespace lowbit
