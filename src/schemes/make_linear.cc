#include "schemes/make_linear.h"

#include "core/error.h"
#include "schemes/float_linear.h"
#include "schemes/fp8_linear.h"
#include "schemes/int_dynamic_linear.h"
#include "schemes/mx_linear.h"
#include "schemes/w4a16_linear.h"
#include "schemes/w8a8_static_linear.h"

namespace lowbit {

std::unique_ptr<LinearMethod> make_linear(const SchemeSpec& spec, const LinearTensors& tensors, LinearShape shape,
                                          const CpuFeatures& cpu) {
  switch (spec.kind) {
    case SchemeKind::Float: return std::make_unique<FloatLinear>(tensors, shape, cpu);
    case SchemeKind::W8A8Static:
    case SchemeKind::W8A8StaticUnfolded: return std::make_unique<W8A8StaticLinear>(spec, tensors, shape, cpu);
    case SchemeKind::W8A8Dynamic:
    case SchemeKind::W4A4Dynamic:
    case SchemeKind::W4A8Dynamic: return std::make_unique<IntDynamicLinear>(spec, tensors, shape, cpu);
    case SchemeKind::W4A16: return std::make_unique<W4A16Linear>(spec, tensors, shape, cpu);
    case SchemeKind::Mxfp8:
    case SchemeKind::Mxfp4: return std::make_unique<MxLinear>(spec, tensors, shape, cpu);
    case SchemeKind::Fp8:
    case SchemeKind::Fp8Block: return std::make_unique<Fp8Linear>(spec, tensors, shape, cpu);
  }
  fail("{}: unknown scheme kind {} (from {})", tensors.prefix, int(spec.kind), spec.origin);
}

}  // namespace lowbit
