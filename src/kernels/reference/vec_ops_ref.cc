#include "kernels/vec_ops.h"

namespace lowbit {

namespace {
float dot_ref(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
void axpy_ref(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
void scale_ref(float a, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}
}  // namespace

const VecOps kVecOpsRef = {"scalar", dot_ref, axpy_ref, scale_ref};

}  // namespace lowbit
