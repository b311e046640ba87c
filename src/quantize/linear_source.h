// Where `lowbit quantize` reads a linear layer's float weight. Dense layers and the per-expert
// MoE layout have "<prefix>.weight"; a Qwen3-MoE checkpoint that transformers 5 saved holds
// each MoE layer's experts as two fused parameters instead,
//   <layer>.mlp.experts.gate_up_proj [E, 2F, H]   (expert e: rows [0, F) gate, [F, 2F) up)
//   <layer>.mlp.experts.down_proj    [E, H, F],
// so expert e's gate/up/down is a contiguous slice of them, read in place (no copy). The
// quantized output always uses the per-expert names the upstream tools write
// (mlp.experts.<e>.gate_proj ...), so the same plan serves both layouts.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/checkpoint.h"

namespace lowbit::quantize {

// The [out, in] float weight of `prefix`; an Error naming the folder and the tensor looked
// for when neither layout has it, or when a fused tensor has the wrong dtype or shape.
TensorView linear_weight(const Checkpoint& ckpt, const std::string& prefix, int64_t out_features,
                         int64_t in_features);

// The checkpoint tensors that hold `prefix`'s weight: "<prefix>.weight", or the fused expert
// tensor it is a slice of.
std::vector<std::string> linear_weight_sources(const Checkpoint& ckpt, const std::string& prefix);

}  // namespace lowbit::quantize
