#include "core/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace lowbit {

std::string TensorView::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace lowbit
