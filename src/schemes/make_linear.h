// The one switch from a scheme spec to the object that computes it. A new scheme adds one
// case here and one file in schemes/.
#pragma once

#include <memory>

#include "core/cpu_features.h"
#include "schemes/linear_method.h"
#include "schemes/scheme_spec.h"

namespace lowbit {

std::unique_ptr<LinearMethod> make_linear(const SchemeSpec& spec, const LinearTensors& tensors, LinearShape shape,
                                          const CpuFeatures& cpu);

}  // namespace lowbit
