// FP8 E4M3 weights with float scales: per tensor or per channel (compressed-tensors
// float-quantized: FP8 and FP8_DYNAMIC presets, or weight-only), or per [rows × cols] block
// (SchemeKind::Fp8Block, DeepSeek / Qwen3-FP8 style). Activations, when quantized, are E4M3
// per token (dynamic, s = amax/448), per tensor (static input_scale) or per token and block
// of K (Fp8Block); the kernel gets the codes and s, and multiplies codes exactly. Weight-only
// layers pass fp32 activations (BF16-rounded only with --float-activations bf16).
#pragma once

#include "schemes/packed_linear.h"

namespace lowbit {

class Fp8Linear final : public PackedLinear {
 public:
  Fp8Linear(const SchemeSpec& spec, const LinearTensors& tensors, LinearShape shape, const CpuFeatures& cpu);

  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override;
  size_t weight_bytes() const override { return codes_.bytes() + scale_.bytes() + bias_.bytes(); }
  std::string describe() const override;

 private:
  enum class Act { None, Token, Tensor, Group };
  Act act_ = Act::None;
  float input_scale_ = 1;
  bool bf16_activations_ = false;
  int64_t group_ = 0;  // K per weight scale (k_pad for tensor/channel)
  TiledParams scale_;
};

}  // namespace lowbit
