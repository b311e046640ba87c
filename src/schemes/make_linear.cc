#include "schemes/make_linear.h"

#include "core/error.h"
#include "schemes/float_linear.h"

namespace lowbit {

std::unique_ptr<LinearMethod> make_linear(const SchemeSpec& spec, const LinearTensors& tensors, LinearShape shape,
                                          const CpuFeatures& cpu) {
  switch (spec.kind) {
    case SchemeKind::Float: return std::make_unique<FloatLinear>(tensors, shape, cpu);
    default: break;
  }
  fail("{}: scheme {} (from {}) is not implemented yet", tensors.prefix, scheme_kind_name(spec.kind), spec.origin);
}

}  // namespace lowbit
