#include "core/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace lowbit {

std::string TensorView::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::vector<float> tensor_to_f32(const TensorView& t) {
  std::vector<float> out(size_t(t.numel()));
  convert_to_f32(t.dtype, t.data, out.data(), out.size());
  return out;
}

}  // namespace lowbit
