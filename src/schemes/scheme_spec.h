// A scheme spec is a pure description of how one linear layer is stored in a checkpoint: what
// a format found, with nothing about hardware. Kernel choice happens later, in the scheme.
#pragma once

#include <optional>
#include <string>

#include "core/tensor.h"

namespace lowbit {

enum class SchemeKind { Float };

struct SchemeSpec {
  SchemeKind kind = SchemeKind::Float;
  std::string origin;  // where the spec came from, for logs: "hf:float", "msmodelslim:W8A8", ...
};

// A linear layer's tensors under canonical role names, shared by every format.
struct LinearTensors {
  std::string prefix;  // "model.layers.0.self_attn.q_proj", for error messages
  TensorView weight;
  std::optional<TensorView> bias;
};

struct LinearShape {
  int64_t in_features = 0, out_features = 0;
};

}  // namespace lowbit
