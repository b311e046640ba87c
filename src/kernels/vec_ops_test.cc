#include "kernels/vec_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/cpu_features.h"

namespace lowbit {
namespace {

std::vector<const VecOps*> host_ops() {
  std::vector<const VecOps*> ops = {&kVecOpsRef};
  if (cpu_features().max_isa() >= Isa::Avx2) ops.push_back(&kVecOpsAvx2);
  if (cpu_features().max_isa() >= Isa::Avx512) ops.push_back(&kVecOpsAvx512);
  return ops;
}

TEST(VecOps, MatchReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0, 1);
  for (int64_t n : {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 128, 1000}) {
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    for (auto& v : a) v = d(rng);
    for (auto& v : b) v = d(rng);
    double abs_sum = 0;
    for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(double(a[size_t(i)]) * b[size_t(i)]);
    const double gamma = n * std::ldexp(1.0, -24) / (1 - n * std::ldexp(1.0, -24));
    const float want = kVecOpsRef.dot(a.data(), b.data(), n);
    for (const VecOps* ops : host_ops()) {
      EXPECT_LE(std::fabs(ops->dot(a.data(), b.data(), n) - want), 2 * gamma * abs_sum + 1e-30) << ops->isa << n;
      std::vector<float> y = b, y_ref = b;
      ops->axpy(0.37f, a.data(), y.data(), n);
      kVecOpsRef.axpy(0.37f, a.data(), y_ref.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[size_t(i)], y_ref[size_t(i)], 1e-6f * (1 + std::fabs(y_ref[size_t(i)])));
      ops->scale(-2.0f, y.data(), n);
      kVecOpsRef.scale(-2.0f, y_ref.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[size_t(i)], y_ref[size_t(i)], 2e-6f * (1 + std::fabs(y_ref[size_t(i)])));
    }
  }
}

}  // namespace
}  // namespace lowbit
