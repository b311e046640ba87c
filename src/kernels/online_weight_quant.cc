#include "kernels/online_weight_quant.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/quant_types.h"
#include "kernels/quantize_rows.h"

namespace lowbit {

namespace {

// Largest |x| of [b, e) in std::max's order, and whether every value is finite.
inline float amax_of(const float* x, int64_t n, bool& finite) {
  float amax = 0.0f;
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) {
    const float f = std::fabs(x[i]);
    ok &= f <= std::numeric_limits<float>::max();  // false for inf and NaN
    amax = amax < f ? f : amax;
  }
  finite = ok;
  return amax;
}

}  // namespace

bool quantize_row_int_sym(const float* x, int64_t k, int bits, int64_t group, uint8_t* codes, float* scales) {
  const float qmax = float((1 << (bits - 1)) - 1), qmin = -qmax - 1;
  const int mask = bits == 8 ? 0xFF : 0x0F;
  // After the clamp |v| ≤ 128, so v + 1.5·2^23 lies in a binade whose ulp is 1: the add rounds
  // to the nearest integer, ties to even (the constant is even), exactly as nearbyint, and the
  // subtraction is exact.
  constexpr float kRound = 12582912.0f;
  const int64_t gs = group > 0 ? group : k;
  for (int64_t g = 0, b = 0; b < k; ++g, b += gs) {
    const int64_t n = std::min(k, b + gs) - b;
    bool finite;
    const float amax = amax_of(x + b, n, finite);
    if (!finite) return false;
    const float s = std::max(amax / qmax, std::numeric_limits<float>::epsilon());
    scales[g] = s;
    const float* xg = x + b;
    uint8_t* cg = codes + b;
    for (int64_t i = 0; i < n; ++i) {
      const float v = clampf(xg[i] / s, qmin, qmax);
      cg[i] = uint8_t(int((v + kRound) - kRound) & mask);
    }
  }
  return true;
}

bool quantize_row_mx_ocp(const float* x, int64_t k, bool fp4, uint8_t* codes, uint8_t* scales) {
  return act_quant_kernels().mx_row(x, k, fp4, codes, scales);
}

}  // namespace lowbit
