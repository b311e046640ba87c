#include "kernels/reference/quant_gemm_ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant_types.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {

namespace {

constexpr int64_t kMaxIntK = int64_t(1) << 16;  // see the overflow bound in the header

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check_dims(const QuantGemmDims& d, const char* who) {
  if (d.m < 0 || d.n <= 0 || d.k <= 0) fail("{}: bad dims m={} n={} k={}", who, d.m, d.n, d.k);
}
void check_int_k(const QuantGemmDims& d, const char* who) {
  if (d.k > kMaxIntK) fail("{}: K = {} exceeds {} (int32 accumulator bound)", who, d.k, kMaxIntK);
}
void check_codes(const int8_t* q, int64_t count, int bits, const char* who) {
  const int lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
  for (int64_t i = 0; i < count; ++i)
    if (q[i] < lo || q[i] > hi) fail("{}: weight code {} at {} is not int{}", who, q[i], i, bits);
}

int32_t dot_i8(const int8_t* a, const int8_t* b, int64_t k) {
  int32_t acc = 0;
  for (int64_t i = 0; i < k; ++i) acc += int32_t(a[i]) * int32_t(b[i]);
  return acc;
}

// Decoded MX operand: element values (exact in float) and block exponents.
struct MxOperand {
  std::vector<float> v;
  std::vector<int> e;
};

MxOperand decode_mx(const uint8_t* codes, const uint8_t* scales, int64_t rows, int64_t k, bool fp4,
                    const char* what) {
  const int64_t blocks = k / kMxBlock;
  MxOperand r;
  r.v.resize(size_t(rows * k));
  r.e.resize(size_t(rows * blocks));
  for (int64_t i = 0; i < rows * k; ++i)
    r.v[size_t(i)] = fp4 ? fp4_e2m1_to_f32(codes[i]) : fp8_e4m3_to_f32(codes[i]);
  for (int64_t i = 0; i < rows * blocks; ++i)
    r.e[size_t(i)] = e8m0_exponent_checked(scales[i], what);
  return r;
}

void gemm_mx(const QuantGemmDims& d, const float* x, const uint8_t* w_codes,
             const uint8_t* w_scales, bool w_fp4, bool act_fp4, float* y) {
  check_dims(d, "MX GEMM");
  if (d.k % kMxBlock != 0) fail("MX GEMM needs K % 32 == 0, got K = {}", d.k);
  const int64_t blocks = d.k / kMxBlock;
  const MxOperand w = decode_mx(w_codes, w_scales, d.n, d.k, w_fp4, "MX weight_scale");
  std::vector<uint8_t> xc(size_t(d.m * d.k)), xs(size_t(d.m * blocks));
  const MxElem ae = act_fp4 ? MxElem::E2M1 : MxElem::E4M3;
  quantize_mx(x, d.m, d.k, ae, MxScaleRule::Ocp, xc.data(), xs.data());
  const MxOperand a = decode_mx(xc.data(), xs.data(), d.m, d.k, act_fp4, "MX activation scale");
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      double acc = 0;
      for (int64_t b = 0; b < blocks; ++b) {
        // fp8×fp8 products span < 2^36 in magnitude ratio, so this sum is exact in double.
        double blk = 0;
        const float* av = &a.v[size_t(i * d.k + b * kMxBlock)];
        const float* wv = &w.v[size_t(j * d.k + b * kMxBlock)];
        for (int64_t t = 0; t < kMxBlock; ++t) blk += double(av[t]) * double(wv[t]);
        acc += std::ldexp(blk, a.e[size_t(i * blocks + b)] + w.e[size_t(j * blocks + b)]);
      }
      y[i * d.n + j] = float(acc);
    }
}

}  // namespace

void gemm_w8a8_static_ref(const QuantGemmDims& d, const float* x, const int8_t* wq,
                          float input_scale, float input_offset, const int32_t* quant_bias,
                          const float* deq_scale, float* y) {
  check_dims(d, "W8A8 static GEMM");
  check_int_k(d, "W8A8 static GEMM");
  for (int64_t j = 0; j < d.n; ++j)
    if (quant_bias[j] >= (1 << 30) || quant_bias[j] <= -(1 << 30))
      fail("W8A8 static GEMM: |quant_bias[{}]| = {} too large for int32 accumulation", j,
           quant_bias[j]);
  std::vector<int8_t> xq(size_t(d.m * d.k));
  quantize_act_static_asym(x, d.m * d.k, input_scale, input_offset, xq.data());
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      const int32_t acc = dot_i8(&xq[size_t(i * d.k)], wq + j * d.k, d.k) + quant_bias[j];
      y[i * d.n + j] = float(acc) * deq_scale[j];
    }
}

void gemm_dynamic_int_ref(const QuantGemmDims& d, const float* x, const int8_t* wq,
                          const float* w_scale, int w_bits, int act_bits, float* y) {
  check_dims(d, "dynamic int GEMM");
  check_int_k(d, "dynamic int GEMM");
  check_codes(wq, d.n * d.k, w_bits, "dynamic int GEMM");
  std::vector<int8_t> xq(size_t(d.m * d.k));
  std::vector<float> sx(size_t(d.m));
  quantize_act_per_token_sym(x, d.m, d.k, act_bits, xq.data(), sx.data());
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      const int32_t acc = dot_i8(&xq[size_t(i * d.k)], wq + j * d.k, d.k);
      y[i * d.n + j] = float(acc) * sx[size_t(i)] * w_scale[j];
    }
}

void gemm_w4a8_dynamic_ref(const QuantGemmDims& d, const float* x, const int8_t* wq,
                           const float* w_scale, const float* scale_second, int64_t group,
                           float* y) {
  if (scale_second == nullptr) {
    gemm_dynamic_int_ref(d, x, wq, w_scale, 4, 8, y);
    return;
  }
  check_dims(d, "W4A8 GEMM");
  check_int_k(d, "W4A8 GEMM");
  check_codes(wq, d.n * d.k, 4, "W4A8 GEMM");
  if (group <= 0) fail("W4A8 GEMM: group size must be positive, got {}", group);
  const int64_t groups = ceil_div(d.k, group);
  std::vector<int8_t> xq(size_t(d.m * d.k));
  std::vector<float> sx(size_t(d.m));
  quantize_act_per_token_sym(x, d.m, d.k, 8, xq.data(), sx.data());
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      double acc = 0;
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t b = g * group, len = std::min(d.k, b + group) - b;
        const int32_t part = dot_i8(&xq[size_t(i * d.k + b)], wq + j * d.k + b, len);
        acc += double(part) * double(scale_second[j * groups + g]);
      }
      y[i * d.n + j] = float(acc * double(w_scale[j]) * double(sx[size_t(i)]));
    }
}

void gemm_w4a16_ref(const QuantGemmDims& d, const float* x, const int8_t* wq, const int8_t* zero,
                    const float* scale, int64_t group, float* y) {
  check_dims(d, "W4A16 GEMM");
  if (group <= 0) fail("W4A16 GEMM: group size must be positive, got {}", group);
  const int64_t groups = ceil_div(d.k, group);
  std::vector<float> w(size_t(d.k));
  for (int64_t j = 0; j < d.n; ++j) {
    for (int64_t c = 0; c < d.k; ++c) {
      const int64_t g = j * groups + c / group;
      const float z = zero ? float(zero[g]) : 0.0f;
      w[size_t(c)] = (float(wq[j * d.k + c]) - z) * scale[g];
    }
    for (int64_t i = 0; i < d.m; ++i) {
      double acc = 0;
      for (int64_t c = 0; c < d.k; ++c) acc += double(x[i * d.k + c]) * double(w[size_t(c)]);
      y[i * d.n + j] = float(acc);
    }
  }
}

void gemm_w4a16_int8act_ref(const QuantGemmDims& d, const float* x, const int8_t* wq, const int8_t* zero,
                            const float* scale, int64_t group, float* y) {
  check_dims(d, "W4A16 int8-activation GEMM");
  check_int_k(d, "W4A16 int8-activation GEMM");
  if (group <= 0) fail("W4A16 int8-activation GEMM: group size must be positive, got {}", group);
  const int64_t groups = ceil_div(d.k, group);
  std::vector<int8_t> xq(size_t(d.m * d.k));
  std::vector<float> sx(size_t(d.m));
  quantize_act_per_token_sym(x, d.m, d.k, 8, xq.data(), sx.data());
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      double acc = 0;
      for (int64_t g = 0; g < groups; ++g) {
        const int32_t z = zero ? zero[j * groups + g] : 0;
        int32_t part = 0;
        for (int64_t c = g * group; c < std::min(d.k, (g + 1) * group); ++c)
          part += int32_t(xq[size_t(i * d.k + c)]) * (int32_t(wq[j * d.k + c]) - z);
        acc += double(part) * double(scale[j * groups + g]);
      }
      y[i * d.n + j] = float(acc * double(sx[size_t(i)]));
    }
}

void gemm_mxfp8_ref(const QuantGemmDims& d, const float* x, const uint8_t* w_fp8,
                    const uint8_t* w_scales, float* y) {
  gemm_mx(d, x, w_fp8, w_scales, /*w_fp4=*/false, /*act_fp4=*/false, y);
}

void gemm_mxfp4_ref(const QuantGemmDims& d, const float* x, const uint8_t* w_fp4,
                    const uint8_t* w_scales, bool act_fp4, float* y) {
  gemm_mx(d, x, w_fp4, w_scales, /*w_fp4=*/true, act_fp4, y);
}

void gemm_fp8_block_ref(const QuantGemmDims& d, const float* x, const uint8_t* w_fp8,
                        const float* w_scale_inv, int64_t block, float* y) {
  check_dims(d, "FP8 block GEMM");
  if (block <= 0) fail("FP8 block GEMM: block size must be positive, got {}", block);
  const int64_t kb = ceil_div(d.k, block);
  std::vector<uint8_t> xq(size_t(d.m * d.k));
  std::vector<float> sx(size_t(d.m * kb));
  quantize_act_fp8_groups(x, d.m, d.k, block, xq.data(), sx.data());
  std::vector<float> xv(xq.size()), wv(size_t(d.n * d.k));
  for (size_t i = 0; i < xq.size(); ++i) xv[i] = fp8_e4m3_to_f32(xq[i]);
  for (size_t i = 0; i < wv.size(); ++i) wv[i] = fp8_e4m3_to_f32(w_fp8[i]);
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      double acc = 0;
      for (int64_t b = 0; b < kb; ++b) {
        double blk = 0;
        const int64_t c0 = b * block, c1 = std::min(d.k, c0 + block);
        for (int64_t c = c0; c < c1; ++c)
          blk += double(xv[size_t(i * d.k + c)]) * double(wv[size_t(j * d.k + c)]);
        acc += blk * double(sx[size_t(i * kb + b)]) * double(w_scale_inv[(j / block) * kb + b]);
      }
      y[i * d.n + j] = float(acc);
    }
}

}  // namespace lowbit
