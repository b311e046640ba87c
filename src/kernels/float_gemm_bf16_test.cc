// BF16-activation float GEMM kernels (AMX-BF16, vdpbf16ps, the rounding wrappers over the
// fp32 kernels, the scalar reference) against an oracle that rounds each activation to BF16
// with f32_to_bf16 (torch's rule) and accumulates the products in double.
//
// Tolerance: a product of two BF16 values is exact in fp32 (8-bit significands), so every
// kernel sums the same K exact products, in some order, in fp32. Any summation order of K
// terms is within γ_K·Σ|p| of the exact sum (γ_K = K·u/(1−K·u), u = 2^-24; Higham, Accuracy
// and Stability, §4.2), and the double oracle adds under 2^-50·Σ|p|. So |got − oracle| ≤
// (γ_K + 2^-50)·Σ|x_bf16·w|. An activation rounded the wrong way moves one product by up to
// 2^-8 relative, a wrong row, column or k index by O(1): far outside the bound.
// (The hardware BF16 dot products treat denormal inputs as zero and flush denormal results;
// no value here is that small, so the bound holds as stated.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/float_gemm.h"

namespace lowbit {

// float_gemm_amx.cc built with emulated tile instructions (cpu/float_gemm_amx_emulated.cc):
// the AMX kernel's packing, tails and stores, on hosts without AMX. Needs AVX512-BF16 (rows
// below the AMX threshold go to the vdpbf16ps kernel) and AVX-512 for its packing.
void gemm_bf16_bf16_amx_emulated(const FloatGemmArgs&);

namespace {

const FloatGemmKernel kAmxEmulated = {"gemm_bf16_bf16_amx_emulated", Isa::Avx512, DType::BF16,
                                      gemm_bf16_bf16_amx_emulated, FloatAct::BF16};

CpuFeatures capped(Isa isa) {
  CpuFeatures c = cpu_features();
  if (isa < Isa::Amx) c.amx_tile = c.amx_int8 = c.amx_bf16 = c.amx_permitted = false;
  if (isa < Isa::Avx512) c.avx512f = c.avx512bw = c.avx512vl = c.avx512dq = c.avx512_bf16 = c.avx512_vnni = false;
  if (isa < Isa::Avx2) c.avx2 = false;
  return c;
}

// The caps this machine can run, fastest first.
std::vector<Isa> reachable_caps() {
  std::vector<Isa> out;
  for (Isa i : {Isa::Amx, Isa::Avx512, Isa::Avx2, Isa::Scalar})
    if (int(i) <= int(cpu_features().max_isa())) out.push_back(i);
  return out;
}

// Every BF16-activation kernel some cap selects or lists, each once, reference last; the
// emulated AMX kernel first where it can run.
std::vector<const FloatGemmKernel*> all_bf16_kernels() {
  std::vector<const FloatGemmKernel*> out;
  if (cpu_features().bf16()) out.push_back(&kAmxEmulated);
  std::set<std::string> seen;
  for (Isa cap : reachable_caps())
    for (const FloatGemmKernel* k : float_gemm_kernels(DType::BF16, FloatAct::BF16, capped(cap)))
      if (seen.insert(k->name).second) out.push_back(k);
  return out;
}

struct Problem {
  int64_t m, n, k, ldx, ldw, ldy;
  std::vector<float> x;
  std::vector<uint8_t> wbytes;  // one byte of offset: the kernels must take unaligned weights
  std::vector<double> oracle;   // [m][n]
  std::vector<double> bound;    // [m][n] allowed |error|

  const void* w() const { return wbytes.data() + 1; }
  float wf(int64_t n, int64_t k) const {
    uint16_t h;
    std::memcpy(&h, wbytes.data() + 1 + 2 * (n * ldw + k), 2);
    return bf16_to_f32(h);
  }
};

Problem make_problem(int64_t m, int64_t n, int64_t k, std::mt19937& rng, float xscale = 1.0f, float wscale = 1.0f) {
  Problem p{m, n, k, k + 3, k + 1, n + 2, {}, {}, {}, {}};
  std::normal_distribution<float> dist(0.0f, 1.0f);
  p.x.resize(size_t(std::max<int64_t>(m, 1) * p.ldx));
  for (size_t i = 0; i < p.x.size(); ++i) {
    float v = dist(rng) * xscale;
    if (i % 13 == 3) v = 0.0f;
    if (i % 101 == 7) v *= 50.0f;  // outliers
    p.x[i] = v;
  }
  if (m > 2)  // an all-zero row
    for (int64_t i = 0; i < k; ++i) p.x[size_t(2 * p.ldx + i)] = 0.0f;
  p.wbytes.resize(size_t(n * p.ldw) * 2 + 1);
  for (int64_t i = 0; i < n * p.ldw; ++i) {
    float v = dist(rng) * wscale;
    if (i % 97 == 5) v = 0.0f;
    if (i % 211 == 7) v *= 300.0f;
    const uint16_t h = f32_to_bf16(v);
    std::memcpy(p.wbytes.data() + 1 + 2 * i, &h, 2);
  }
  const double u = std::ldexp(1.0, -24), gamma = double(k) * u / (1 - double(k) * u) + std::ldexp(1.0, -50);
  p.oracle.assign(size_t(m * n), 0.0);
  p.bound.assign(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0, abs_sum = 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        const double prod = double(bf16_to_f32(f32_to_bf16(p.x[size_t(i * p.ldx + kk)]))) * p.wf(j, kk);
        sum += prod;
        abs_sum += std::fabs(prod);
      }
      p.oracle[size_t(i * n + j)] = sum;
      p.bound[size_t(i * n + j)] = gamma * abs_sum;
    }
  return p;
}

constexpr float kUnwritten = -7.25f;

// Runs `kern` over the column ranges split at `cuts` (as the thread pool would) and checks
// every written value against the oracle and every other one for kUnwritten.
void check(const FloatGemmKernel& kern, const Problem& p, std::vector<int64_t> cuts, const std::string& what) {
  std::vector<float> y(size_t(std::max<int64_t>(p.m, 1) * p.ldy), kUnwritten);
  for (size_t c = 0; c + 1 < cuts.size(); ++c)
    kern.run({p.x.data(), p.ldx, p.w(), p.ldw, y.data(), p.ldy, p.m, p.k, cuts[c], cuts[c + 1]});
  const int64_t n0 = cuts.front(), n1 = cuts.back();
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.ldy; ++j) {
      const float got = y[size_t(i * p.ldy + j)];
      if (j < n0 || j >= n1) {
        ASSERT_EQ(got, kUnwritten) << kern.name << " wrote outside its columns: m=" << i << " n=" << j << " " << what;
        continue;
      }
      const double want = p.oracle[size_t(i * p.n + j)];
      ASSERT_LE(std::fabs(got - want), p.bound[size_t(i * p.n + j)])
          << kern.name << " m=" << i << " n=" << j << " got " << got << " want " << want << " " << what;
    }
}

std::string shape(const Problem& p) {
  return std::to_string(p.m) + "x" + std::to_string(p.n) + "x" + std::to_string(p.k);
}

TEST(FloatGemmBf16, EveryKernelMatchesRoundedOracle) {
  std::mt19937 rng(7);
  const auto kernels = all_bf16_kernels();
  ASSERT_FALSE(kernels.empty());
  ASSERT_STREQ(kernels.back()->name, "gemm_bf16_bf16_ref");
  for (int64_t k : {1, 31, 32, 33, 100, 2048}) {
    for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 33, 64}) {
      // 37 columns: one AMX strip pair plus a 5-row strip, 9 8-row GEMV tiles + 5.
      const Problem p = make_problem(m, 37, k, rng);
      for (const FloatGemmKernel* kern : kernels) {
        check(*kern, p, {0, 37}, shape(p) + " whole");
        check(*kern, p, {0, 16, 32, 37}, shape(p) + " thread-pool split");
        check(*kern, p, {5, 22, 34}, shape(p) + " odd subranges");
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(FloatGemmBf16, LargeAndExtremeScales) {
  std::mt19937 rng(11);
  struct Case {
    int64_t m, n, k;
    float xs, ws;
  };
  const Case cases[] = {{64, 100, 2048, 1.0f, 1.0f}, {128, 48, 96, 1.0f, 1.0f},   {130, 33, 1030, 1.0f, 1.0f},
                        {9, 70, 4100, 1.0f, 1.0f},   {40, 19, 77, 1e15f, 1e15f}, {24, 21, 65, 1e-14f, 1e-14f}};
  for (const FloatGemmKernel* kern : all_bf16_kernels()) {
    for (const Case& c : cases) {
      const Problem p = make_problem(c.m, c.n, c.k, rng, c.xs, c.ws);
      check(*kern, p, {0, c.n / 2 / 16 * 16, c.n}, shape(p));
      if (HasFatalFailure()) return;
    }
  }
}

TEST(FloatGemmBf16, ZeroRowsWriteNothing) {
  std::mt19937 rng(3);
  const Problem p = make_problem(0, 20, 40, rng);
  for (const FloatGemmKernel* kern : all_bf16_kernels()) {
    std::vector<float> y(8, kUnwritten);
    kern->run({p.x.data(), p.ldx, p.w(), p.ldw, y.data(), p.ldy, 0, p.k, 0, p.n});
    for (float v : y) EXPECT_EQ(v, kUnwritten) << kern->name;
  }
}

// K = 1 and power-of-two weights: every result is one exact product, so it must equal
// bf16(x)·w bit for bit. x sits on rounding ties (to even: down and up), just off them, at
// the largest finite values, and NaN / ±Inf, in 17 rows so the AMX path runs too.
TEST(FloatGemmBf16, RoundsActivationsLikeTorch) {
  const float tie_down = 1.0f + std::ldexp(1.0f, -8);      // halfway 1 ↔ 1+2^-7: to even (1)
  const float tie_up = 1.0f + 3 * std::ldexp(1.0f, -8);    // halfway 1+2^-7 ↔ 1+2^-6: to even (up)
  const float above = std::nextafter(tie_down, 2.0f);      // just above a tie: up
  const float big = std::numeric_limits<float>::max();     // rounds to +Inf in BF16
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> xs = {tie_down, tie_up, above, -tie_down, -tie_up, big, -big, inf, -inf, nan,
                                 0.0f, -0.0f, 3.0f, 1e-3f, -65504.5f, 7.0e37f, 0.1f};
  const int64_t m = int64_t(xs.size()), n = 19, ldw = 1;
  std::vector<uint16_t> w(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) w[size_t(j)] = f32_to_bf16(std::ldexp(j % 2 ? -1.0f : 1.0f, int(j % 5) - 2));
  for (const FloatGemmKernel* kern : all_bf16_kernels()) {
    std::vector<float> y(size_t(m * n), kUnwritten);
    kern->run({xs.data(), 1, w.data(), ldw, y.data(), n, m, 1, 0, n});
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const float want = bf16_to_f32(f32_to_bf16(xs[size_t(i)])) * bf16_to_f32(w[size_t(j)]);
        const float got = y[size_t(i * n + j)];
        if (std::isnan(want))
          EXPECT_TRUE(std::isnan(got)) << kern->name << " x=" << xs[size_t(i)];
        else
          EXPECT_EQ(got, want) << kern->name << " x=" << xs[size_t(i)] << " w=" << bf16_to_f32(w[size_t(j)]);
      }
  }
}

TEST(FloatGemmBf16, SelectionPerCap) {
  for (Isa cap : reachable_caps()) {
    const CpuFeatures c = capped(cap);
    const std::string picked = pick_float_gemm(DType::BF16, FloatAct::BF16, c).name;
    std::string want = "gemm_bf16_bf16_ref";
    if (cap == Isa::Amx) want = "gemm_bf16_bf16_amx";
    else if (cap == Isa::Avx512) want = c.bf16() ? "gemm_bf16_bf16_avx512bf16" : "gemm_bf16_bf16_avx512";
    else if (cap == Isa::Avx2) want = "gemm_bf16_bf16_avx2";
    EXPECT_EQ(picked, want) << isa_name(cap);
    // The fp32-activation tables are what they were: no BF16-activation kernel in them.
    for (DType t : {DType::BF16, DType::F16, DType::F32})
      for (const FloatGemmKernel* k : float_gemm_kernels(t, c)) EXPECT_EQ(k->act, FloatAct::F32) << k->name;
  }
  // BF16 activations exist for BF16 weights only.
  EXPECT_TRUE(float_gemm_kernels(DType::F16, FloatAct::BF16, cpu_features()).empty());
  EXPECT_THROW(pick_float_gemm(DType::F32, FloatAct::BF16, cpu_features()), std::exception);
}

// The two hardware paths on their own, so a machine without them says so instead of passing
// silently through the list above.
// Rows on both sides of the AMX threshold (4/5), odd tile counts, and a K long enough for
// two K chunks at 200 rows (13 activation tiles → 80 k tiles per chunk, then 49 + a tail).
void amx_around_threshold(const FloatGemmKernel& amx) {
  std::mt19937 rng(5);
  for (int64_t m : {4, 5, 8, 15, 16, 31, 32, 48, 200})
    for (int64_t k : {32, 45, 512}) {
      const Problem p = make_problem(m, 67, k, rng);
      check(amx, p, {0, 32, 48, 67}, shape(p));
      if (::testing::Test::HasFatalFailure()) return;
    }
  const Problem p = make_problem(200, 40, 4100, rng);
  check(amx, p, {0, 16, 40}, shape(p) + " two K chunks");
}

TEST(FloatGemmBf16, AmxKernelAroundItsThreshold) {
  if (cpu_features().max_isa() < Isa::Amx)
    GTEST_SKIP() << "no AMX-BF16 here (max_isa=" << isa_name(cpu_features().max_isa())
                 << "); EmulatedAmxKernelAroundItsThreshold checks its logic";
  const FloatGemmKernel& amx = pick_float_gemm(DType::BF16, FloatAct::BF16, cpu_features());
  ASSERT_STREQ(amx.name, "gemm_bf16_bf16_amx");
  amx_around_threshold(amx);
}

TEST(FloatGemmBf16, EmulatedAmxKernelAroundItsThreshold) {
  if (!cpu_features().bf16()) GTEST_SKIP() << "no AVX512-BF16 here (" << cpu_features().describe() << ")";
  amx_around_threshold(kAmxEmulated);
}

TEST(FloatGemmBf16, VdpbfKernelDecodeShapes) {
  if (!cpu_features().bf16()) GTEST_SKIP() << "no AVX512-BF16 here (" << cpu_features().describe() << ")";
  const FloatGemmKernel* kern = nullptr;
  for (const FloatGemmKernel* k : all_bf16_kernels())
    if (std::string(k->name) == "gemm_bf16_bf16_avx512bf16") kern = k;
  ASSERT_NE(kern, nullptr);
  std::mt19937 rng(9);
  // lm_head-like: many columns, K = 2048 and 6144 (down_proj), 1-8 rows.
  for (int64_t k : {2048, 6144})
    for (int64_t m : {1, 2, 3, 8}) {
      const Problem p = make_problem(m, 203, k, rng);
      check(*kern, p, {0, 96, 203}, shape(p));
      if (HasFatalFailure()) return;
    }
}

}  // namespace
}  // namespace lowbit
