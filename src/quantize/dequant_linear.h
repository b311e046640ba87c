// A linear layer that runs a quantizer's result as the float kernels would: y = fq(x) · Ŵᵀ
// (+ bias), with Ŵ [n, k] the dequantized weight a format writer (or GPTQ) produced and fq
// the per-token symmetric fake quantization of the activations at act_bits (16: none), as a
// dynamic scheme's integer kernels quantize them at run time. The quantizer's tools swap it
// into the float model (DecoderModel::for_each_linear): GPTQ's sequential pipeline to feed
// the next layer, the scheme search to measure a candidate.
//
// Ŵ is held in fp32 by default (a BF16 copy would round int4 × bf16-scale products); with
// weights = BF16 it is rounded once, for a model whose float layers multiply BF16-rounded
// activations (llm-compressor writes GPTQ's result back into the bf16 parameter the same way).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "schemes/linear_method.h"

namespace lowbit::quantize {

std::unique_ptr<LinearMethod> make_dequant_linear(const std::string& prefix, std::vector<float> dequant, int64_t n,
                                                  int64_t k, const std::optional<TensorView>& bias, int act_bits = 16,
                                                  DType weights = DType::F32);

}  // namespace lowbit::quantize
