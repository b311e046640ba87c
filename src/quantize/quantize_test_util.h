// Helpers shared by the quantize/ unit tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace lowbit::quantize::test_util {

// count normal(0, std) floats from a fixed seed.
inline std::vector<float> randn(int64_t count, uint32_t seed, float std = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, std);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = d(gen);
  return v;
}

}  // namespace lowbit::quantize::test_util
