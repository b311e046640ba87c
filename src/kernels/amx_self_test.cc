#include "kernels/amx_self_test.h"

#include <fmt/format.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/int_gemm_amx.h"
#include "kernels/cpu/int_gemm_vnni.h"
#include "kernels/float_gemm.h"
#include "kernels/packed_weights.h"
#include "kernels/quant_gemm.h"

namespace lowbit {

namespace {

// Largest |a − b| relative to max |b|.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, mag = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    d = std::max(d, double(std::fabs(a[i] - b[i])));
    mag = std::max(mag, double(std::fabs(b[i])));
  }
  return d / mag;
}

// int8 and int4 (group 64, zero points) through int_gemm_amx vs int_gemm_vnni: the integer
// sums are exact in both, so only the fp32 epilogue's rounding order may differ (≤ ~1e-6).
std::string check_int(int bits, int64_t group) {
  const int64_t m = 37, n = 40, k = 200;  // row, column and K tails included
  std::mt19937 rng(bits * 100 + int(group));
  PackedCodes w(bits, n, k);
  std::vector<uint8_t> row(static_cast<size_t>(k));
  const int lo = bits == 8 ? -128 : -8, hi = bits == 8 ? 127 : 7;
  for (int64_t r = 0; r < n; ++r) {
    for (auto& c : row) c = uint8_t(std::uniform_int_distribution<int>(lo, hi)(rng)) & (bits == 8 ? 0xFF : 0xF);
    w.set_row(r, row.data());
  }
  const int64_t kp = w.k_pad(), groups = group ? kp / group : 1;
  std::vector<int8_t> xq(size_t(m * kp), 0);
  std::vector<int32_t> sums(size_t(m * groups), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int8_t v = int8_t(std::uniform_int_distribution<int>(-127, 127)(rng));
      xq[size_t(i * kp + j)] = v;
      sums[size_t(i * groups + (group ? j / group : 0))] += v;
    }
  std::vector<float> rs(static_cast<size_t>(m)), cs(static_cast<size_t>(w.n_pad()), 0.f);
  for (auto& v : rs) v = std::uniform_real_distribution<float>(0.5f, 2.f)(rng);
  for (int64_t j = 0; j < n; ++j) cs[size_t(j)] = std::uniform_real_distribution<float>(1e-3f, 1e-2f)(rng);
  TiledParams gs(n, groups), gz(n, groups);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t g = 0; g < groups; ++g) {
      gs.set(j, g, std::uniform_real_distribution<float>(0.5f, 1.5f)(rng));
      gz.set(j, g, float(std::uniform_int_distribution<int>(-3, 3)(rng)));
    }
  IntGemmArgs a;
  a.xq = xq.data();
  a.ldxq = kp;
  a.m = m;
  a.w = &w;
  a.group = group;
  a.group_scale = group ? &gs : nullptr;
  a.group_zero = group ? &gz : nullptr;
  a.row_group_sum = sums.data();
  a.row_scale = rs.data();
  a.col_scale = cs.data();
  a.ldy = n;
  std::vector<float> want(size_t(m * n)), got(size_t(m * n));
  a.y = want.data();
  int_gemm_vnni(a, 0, w.n_pad() / kTileN);
  a.y = got.data();
  int_gemm_amx(a, 0, w.n_pad() / kTileN);
  const double d = rel_diff(got, want);
  return d <= 1e-5 ? "" : fmt::format("int_gemm_amx (int{} group {}) differs from VNNI by {:.3g}", bits, group, d);
}

// BF16 weights × BF16 activations: both kernels form the same exact products, only the fp32
// summation order differs (K = 96: ≤ ~96·2^-24 relative to Σ|x·w|, far below 1e-4 of max|y|
// for these positive-mean data).
std::string check_bf16() {
  const int64_t m = 33, n = 40, k = 96;
  std::mt19937 rng(7);
  std::vector<float> x(size_t(m * k));
  std::vector<uint16_t> w(size_t(n * k));
  for (auto& v : x) v = std::uniform_real_distribution<float>(0.f, 1.f)(rng);
  for (auto& v : w) v = uint16_t(0x3F80 + std::uniform_int_distribution<int>(0, 127)(rng));  // [1, 2)
  std::vector<float> want(size_t(m * n)), got(size_t(m * n));
  FloatGemmArgs a{x.data(), k, w.data(), k, want.data(), n, m, k, 0, n};
  gemm_bf16_bf16_avx512bf16(a);
  a.y = got.data();
  gemm_bf16_bf16_amx(a);
  const double d = rel_diff(got, want);
  return d <= 1e-4 ? "" : fmt::format("gemm_bf16_bf16_amx differs from vdpbf16ps by {:.3g}", d);
}

AmxSelfTest run() {
  AmxSelfTest t;
  const CpuFeatures& cpu = cpu_features();
  if (cpu.max_isa() < Isa::Amx) {
    t.detail = "not run (no AMX)";
    return t;
  }
  t.ran = true;
  std::string bad;
  for (const std::string& e : {check_int(8, 0), check_int(4, 64), check_bf16()})
    if (!e.empty()) bad += (bad.empty() ? "" : "; ") + e;
  t.passed = bad.empty();
  t.detail = t.passed ? "AMX-INT8 and AMX-BF16 GEMMs agree with the AVX-512 kernels" : bad;
  return t;
}

}  // namespace

const AmxSelfTest& amx_self_test() {
  static const AmxSelfTest t = run();
  return t;
}

bool amx_verified() { return amx_self_test().passed; }

}  // namespace lowbit
