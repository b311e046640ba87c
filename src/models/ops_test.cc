#include "models/ops.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lowbit {
namespace {

TEST(Ops, RmsNorm) {
  const float x[4] = {1, -2, 3, -4}, w[4] = {1, 1, 2, 0.5f};
  float y[4];
  rms_norm(x, w, 0.0f, y, 4);
  const float inv = 1.0f / std::sqrt((1 + 4 + 9 + 16) / 4.0f);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(y[i], w[i] * x[i] * inv);
}

TEST(Ops, SiluMulAndSoftmax) {
  float g[3] = {0, 1, -30};
  const float u[3] = {5, 2, 1};
  silu_mul(g, u, 3);
  EXPECT_FLOAT_EQ(g[0], 0);
  EXPECT_FLOAT_EQ(g[1], 2.0f / (1 + std::exp(-1.0f)));
  EXPECT_NEAR(g[2], 0, 1e-10);
  float s[3] = {1000, 1000, -INFINITY};  // large values must not overflow
  softmax_inplace(s, 3);
  EXPECT_FLOAT_EQ(s[0], 0.5f);
  EXPECT_FLOAT_EQ(s[2], 0.0f);
}

}  // namespace
}  // namespace lowbit
