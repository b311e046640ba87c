#include "models/rope.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lowbit {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = 4096;
  return c;
}

TEST(Rope, DefaultFrequenciesAndRotation) {
  ModelConfig c = small_config();
  auto f = rope_frequencies(c);
  ASSERT_EQ(f.inv_freq.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(f.inv_freq[size_t(i)], 1.0f / std::pow(10000.0f, 2.0f * i / 8));
  RopeTable table(c, 16);
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float y[8];
  std::copy(x, x + 8, y);
  table.apply(y, 0);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(y[i], x[i]);  // position 0 is the identity
  table.apply(y, 5);
  // Rotation of each (i, i+4) pair by angle 5·inv_freq[i].
  for (int i = 0; i < 4; ++i) {
    const float a = 5 * f.inv_freq[size_t(i)];
    EXPECT_NEAR(y[i], x[i] * std::cos(a) - x[i + 4] * std::sin(a), 1e-5);
    EXPECT_NEAR(y[i + 4], x[i + 4] * std::cos(a) + x[i] * std::sin(a), 1e-5);
  }
}

TEST(Rope, LinearScalingDividesFrequencies) {
  ModelConfig c = small_config();
  c.rope_scaling.type = "linear";
  c.rope_scaling.factor = 4.0;
  auto scaled = rope_frequencies(c);
  auto plain = rope_frequencies(small_config());
  for (size_t i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(scaled.inv_freq[i], plain.inv_freq[i] / 4);
}

TEST(Rope, YarnAttentionFactor) {
  ModelConfig c = small_config();
  c.rope_scaling.type = "yarn";
  c.rope_scaling.factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 1024;
  auto f = rope_frequencies(c);
  EXPECT_NEAR(f.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-6);
  // Highest frequency is extrapolated (unchanged), lowest interpolated (divided by factor).
  auto plain = rope_frequencies(small_config());
  EXPECT_FLOAT_EQ(f.inv_freq[0], plain.inv_freq[0]);
  EXPECT_FLOAT_EQ(f.inv_freq[3], plain.inv_freq[3] / 4);
}

TEST(Rope, UnknownTypeIsAnError) {
  ModelConfig c = small_config();
  c.rope_scaling.type = "dynamic";
  EXPECT_THROW(rope_frequencies(c), std::exception);
}

}  // namespace
}  // namespace lowbit
