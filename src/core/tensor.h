// A typed, read-only view of a tensor stored elsewhere (usually an mmap'd checkpoint).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace lowbit {

struct TensorView {
  std::string name;            // checkpoint name, for error messages
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major, outermost first
  const void* data = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape.at(size_t(i)); }
  std::string shape_str() const;
};

// A float tensor (BF16, F16 or F32) widened to fp32: norms, biases, scales.
std::vector<float> tensor_to_f32(const TensorView& t);

}  // namespace lowbit
