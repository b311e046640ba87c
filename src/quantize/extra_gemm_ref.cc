#include "quantize/extra_gemm_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant_types.h"

namespace lowbit::quantize {

void gemm_float_ref(const float* x, int64_t m, const float* w, int64_t n, int64_t k, float* y) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t t = 0; t < k; ++t) acc += double(x[i * k + t]) * double(w[j * k + t]);
      y[i * n + j] = float(acc);
    }
}

void gemm_w8a8_static_unfolded_ref(const float* x, int64_t m, const int8_t* wq, const float* w_scale, int64_t n,
                                   int64_t k, float input_scale, int input_zero, float* y) {
  if (!(input_scale > 0.0f)) fail("static int8 activations: input_scale must be positive, got {}", input_scale);
  std::vector<int32_t> xq(static_cast<size_t>(k));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < k; ++t) {
      const float v = round_half_even(x[i * k + t] / input_scale) + float(input_zero);
      xq[size_t(t)] = int32_t(clampf(v, -128.0f, 127.0f)) - input_zero;
    }
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int64_t t = 0; t < k; ++t) acc += int64_t(xq[size_t(t)]) * wq[j * k + t];
      y[i * n + j] = float(double(acc) * input_scale * w_scale[j]);
    }
  }
}

void gemm_fp8_ref(const float* x, int64_t m, const uint8_t* wq, const float* w_scale, bool per_channel, int64_t n,
                  int64_t k, float input_scale, float* y) {
  std::vector<uint8_t> xq(static_cast<size_t>(k));
  std::vector<float> wf(size_t(n * k));
  for (int64_t t = 0; t < n * k; ++t) wf[size_t(t)] = fp8_e4m3_to_f32(wq[t]);
  for (int64_t i = 0; i < m; ++i) {
    float s = input_scale;
    if (s == 0.0f) {  // dynamic per token
      float amax = 0;
      for (int64_t t = 0; t < k; ++t) amax = std::max(amax, std::fabs(x[i * k + t]));
      s = amax / kFp8E4M3Max;
    }
    for (int64_t t = 0; t < k; ++t) xq[size_t(t)] = s == 0.0f ? 0 : f32_to_fp8_e4m3_rne(x[i * k + t] / s);
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t t = 0; t < k; ++t) acc += double(fp8_e4m3_to_f32(xq[size_t(t)])) * wf[size_t(j * k + t)];
      y[i * n + j] = float(acc * s * (per_channel ? w_scale[j] : w_scale[0]));
    }
  }
}

CtActQParams ct_static_act_qparams(float min_val, float max_val, bool fp8, bool symmetric, ComputeDType compute) {
  auto c = [compute](float v) { return round_to_compute(v, compute); };
  const float lo = std::min(c(min_val), 0.0f), hi = std::max(c(max_val), 0.0f);
  const float eps = compute == ComputeDType::BF16  ? 0.0078125f
                    : compute == ComputeDType::F16 ? 0.0009765625f
                                                   : std::numeric_limits<float>::epsilon();
  CtActQParams p;
  if (fp8) {
    if (!symmetric) fail("FP8 activations are symmetric only");
    p.scale = c(std::max(-lo, hi) / kFp8E4M3Max);
  } else if (symmetric) {
    p.scale = c(std::max(-lo, hi) / 127.5f);
  } else {
    p.scale = c(c(hi - lo) / 255.0f);
    if (p.scale != 0.0f) p.zero = int(std::nearbyint(clampf(c(-128.0f - c(lo / p.scale)), -128.0f, 127.0f)));
  }
  if (p.scale == 0.0f) p.scale = eps;
  return p;
}

}  // namespace lowbit::quantize
