// The AMX-INT8 GEMM (kernels/cpu/int_gemm_amx.h) against a scalar oracle written here from
// the IntGemmArgs contract (quant_gemm.h: exact int64 sums Σ xq·(w − z) per group, scales
// applied in double) and against the portable tiles (kQuantGemmPortable.int_gemm), which
// define the contract.
//
// Tolerances. Without scales (unit group scales) every output is an integer sum below 2^24
// (asserted), which fp32 holds exactly: the kernel must match bit for bit, zero points
// included (they are integers and enter the int32 sum). With scales, the kernel performs per
// output at most 2G + 4 fp32 roundings (G = number of groups: int→float, · group scale and
// + into the running sum per group, then · row scale, · column scale, + bias), each a
// relative error ≤ 2^-24 of a value bounded by mag = |rs·cs|·Σ_g |S_g·gs_g| + |bias|, so
// |y − oracle| ≤ (2G + 8)·2^-24·mag (first order; second-order terms are below 2^-40·mag
// for G ≤ 100). The portable tiles obey the same bound, so kernel − portable ≤ twice it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/int_gemm_amx.h"
#include "kernels/int_gemm_test_problem.h"
#include "kernels/quant_gemm.h"

namespace lowbit {
namespace {

bool have_amx() { return cpu_features().max_isa() >= Isa::Amx; }
#define SKIP_WITHOUT_AMX() \
  if (!have_amx()) GTEST_SKIP() << "needs AMX (max_isa " << isa_name(cpu_features().max_isa()) << ")"

// The kernel on the tile unit where AMX runs, and always (given AVX-512) on the scalar tile
// model, so the blocking, tails and epilogues are checked on machines without AMX too.
struct Kernel {
  const char* name;
  IntGemmFn fn;
};
std::vector<Kernel> kernels_here() {
  std::vector<Kernel> out;
  if (have_amx()) out.push_back({"amx", int_gemm_amx});
  if (cpu_features().max_isa() >= Isa::Avx512) out.push_back({"amx_emulated", int_gemm_amx_emulated});
  return out;
}
#define SKIP_WITHOUT_KERNELS()  \
  if (kernels_here().empty()) \
  GTEST_SKIP() << "needs AVX-512 (tile model) or AMX; max_isa " << isa_name(cpu_features().max_isa())

struct Problem {
  int bits = 8;
  int64_t m = 16, n = 40, k = 64, group = 0;
  bool zero = false, int_bias = false, bias = false, scales = false, extreme = false;
  uint32_t seed = 1;
};

// The problem's operands (int_gemm_test_problem.h), drawn in this test's order and ranges.
struct Data : int_gemm_test::Operands {
  Problem p;

  // Odd m: a row stride past k_pad whose gap holds junk the kernel must not use; even m:
  // rows end exactly at the buffer's end (an over-read shows under ASan).
  explicit Data(const Problem& pr) : Operands(pr.bits, pr.m, pr.n, pr.k, pr.group, pr.m % 2 ? 12 : 0), p(pr) {
    std::mt19937 rng(p.seed);
    draw_codes(rng);
    draw_activations(rng, std::uniform_int_distribution<int>(p.bits == 8 ? -128 : -7, p.bits == 8 ? 127 : 7), 99);
    if (p.extreme) {
      // Row 0 and column 0 at the code limits over the first min(K, 900) k, so their
      // product sums stay below 2^24 (exact in fp32) however K grows.
      const int8_t wmin = p.bits == 8 ? -128 : -8, xmin = p.bits == 8 ? -128 : -7;
      for (int64_t k = 0; k < std::min<int64_t>(p.k, 900); ++k) {
        codes[size_t(k)] = wmin;
        xq[size_t(k)] = xmin;
      }
      for (int64_t k = 0; k < p.k; ++k) xq[size_t(std::min<int64_t>(1, p.m - 1) * ldxq + k)] = 0;  // a zero row
    }
    pack_codes();
    sum_row_groups();
    pass_gs = p.group != 0;
    pass_gz = pass_rgs = p.zero;
    pass_cib = p.int_bias;
    pass_scales = p.scales;
    pass_bias = p.bias;
    std::uniform_real_distribution<float> u(0.5f, 2.0f);
    if (p.group)
      for (int64_t r = 0; r < p.n; ++r)
        for (int64_t g = 0; g < groups; ++g) set_group_scale(r, g, p.scales ? u(rng) * (g % 2 ? -1.0f : 1.0f) : 1.0f);
    if (p.zero) {
      std::uniform_int_distribution<int> zd(-8, 8);
      for (int64_t r = 0; r < p.n; ++r)
        for (int64_t g = 0; g < groups; ++g) set_zero(r, g, zd(rng));
    }
    if (p.int_bias) {
      std::uniform_int_distribution<int> bd(-100000, 100000);
      for (int64_t r = 0; r < p.n; ++r) cib[size_t(r)] = bd(rng);
    }
    const float rscale = p.extreme ? 1e-20f : 1.0f, cscale = p.extreme ? 3e19f : 1.0f;
    if (p.scales) {
      for (int64_t i = 0; i < p.m; ++i) rs[size_t(i)] = u(rng) * rscale;
      for (int64_t r = 0; r < p.n; ++r) cs[size_t(r)] = u(rng) * cscale;
    }
    if (p.bias) {
      std::normal_distribution<float> bd(0.0f, 1000.0f);
      for (int64_t r = 0; r < p.n; ++r) cb[size_t(r)] = bd(rng);
    }
  }

  // The contract in double, and the bound from the header comment, for output (i, r): the
  // integer bias joins group 0's sum, and each group's sum must stay an exact fp32 integer.
  void oracle(int64_t i, int64_t r, double& y, double& tol) const {
    double mag = 0;
    y = Operands::oracle(i, r, [&](int64_t g, const int_gemm_test::GroupSums& sums, double scale) {
      const int64_t s = sums.part + (g == 0 && p.int_bias ? cib[size_t(r)] : 0);
      EXPECT_LT(std::llabs(s), int64_t(1) << 24) << "test case leaves fp32's exact integers";
      mag += std::fabs(double(s)) * std::fabs(scale);
    });
    tol = double(2 * groups + 8) * std::ldexp(1.0, -24) * (mag * std::fabs(outer_scale(i, r)) + std::fabs(bias(r)));
  }
};

constexpr float kSentinel = -7.25e33f;

// Runs fn over tiles [t0, t1) into a fresh y (ldy = n + 3, sentinel-filled).
std::vector<float> run(const Data& d, IntGemmFn fn, int64_t t0, int64_t t1, int64_t* ldy_out = nullptr) {
  const int64_t ldy = d.p.n + 3;
  std::vector<float> y(size_t(std::max<int64_t>(d.p.m, 1) * ldy), kSentinel);
  fn(d.args(y.data(), ldy), t0, t1);
  if (ldy_out) *ldy_out = ldy;
  return y;
}

std::string describe(const Problem& p) {
  return "bits=" + std::to_string(p.bits) + " m=" + std::to_string(p.m) + " n=" + std::to_string(p.n) +
         " k=" + std::to_string(p.k) + " group=" + std::to_string(p.group) + (p.zero ? " zero" : "") +
         (p.int_bias ? " int_bias" : "") + (p.bias ? " bias" : "") + (p.scales ? " scales" : "") +
         (p.extreme ? " extreme" : "");
}

// Checks each kernel over all tiles, and over [1, tiles) plus [0, 1) in two calls, against
// the oracle (exactly without scales and biases) and the portable tiles.
void check(const Problem& p) {
  SCOPED_TRACE(describe(p));
  const Data d(p);
  const int64_t tiles = d.w.n_pad() / kTileN;
  const std::vector<float> portable = run(d, kQuantGemmPortable.int_gemm, 0, tiles);
  for (const Kernel& kernel : kernels_here()) {
    SCOPED_TRACE(kernel.name);
    int64_t ldy = 0;
    const std::vector<float> y = run(d, kernel.fn, 0, tiles, &ldy);
    std::vector<float> split(y.size(), kSentinel);
    kernel.fn(d.args(split.data(), ldy), 1, tiles);
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t c = 0; c < p.n; ++c)
        ASSERT_EQ(split[size_t(i * ldy + c)] == kSentinel, c < kTileN) << "tiles [1, end) wrote outside its columns";
    kernel.fn(d.args(split.data(), ldy), 0, 1);
    const bool exact = !p.scales && !p.bias;
    for (int64_t i = 0; i < p.m; ++i) {
      for (int64_t r = 0; r < p.n; ++r) {
        double o = 0, tol = 0;
        d.oracle(i, r, o, tol);
        const float v = y[size_t(i * ldy + r)];
        if (exact)
          ASSERT_EQ(v, float(o)) << "integer sum m=" << i << " n=" << r;
        else
          ASSERT_NEAR(v, o, tol) << "m=" << i << " n=" << r;
        ASSERT_EQ(split[size_t(i * ldy + r)], v) << "split tile range m=" << i << " n=" << r;
        ASSERT_NEAR(v, portable[size_t(i * ldy + r)], 2 * tol) << "vs portable m=" << i << " n=" << r;
      }
      for (int64_t c = p.n; c < ldy; ++c) ASSERT_EQ(y[size_t(i * ldy + c)], kSentinel) << "wrote past n";
    }
  }
}

TEST(IntGemmAmx, IntegerSumsExact) {
  SKIP_WITHOUT_KERNELS();
  for (int bits : {8, 4})
    for (int64_t group : {0, 32, 64, 128})
      for (int64_t m : {16, 17, 31, 33, 64, 100})
        for (int64_t k : {64, 72, 136, 2048 + 8}) {
          Problem p;
          p.bits = bits, p.m = m, p.k = k, p.group = group, p.n = 40 + (m % 3);
          p.int_bias = group == 0 && m % 2 == 1;
          p.extreme = m == 17 || m == 64;
          p.seed = uint32_t(bits * 1000 + group * 10 + m + k);
          check(p);
          if (HasFatalFailure()) return;
        }
}

TEST(IntGemmAmx, ScalesBiasesAndZeroPoints) {
  SKIP_WITHOUT_KERNELS();
  for (int bits : {8, 4})
    for (int64_t group : {0, 32, 64, 128})
      for (int64_t k : {72, 136, 2048 + 8})
        for (bool zero : {false, true})
          for (bool extreme : {false, true}) {
            Problem p;
            p.bits = bits, p.m = 33, p.n = 51, p.k = k, p.group = group;
            p.zero = zero, p.int_bias = group == 0, p.bias = true, p.scales = true, p.extreme = extreme;
            p.seed = uint32_t(7 + bits + group + k + zero);
            check(p);
            if (HasFatalFailure()) return;
          }
}

TEST(IntGemmAmx, ZeroPointsWithoutScalesAndOtherGroups) {
  SKIP_WITHOUT_KERNELS();
  // Zero points alone, and group sizes that are not powers of two (K blocks of gcd(g, 64)).
  for (int bits : {8, 4})
    for (int64_t group : {0, 8, 32, 96, 192}) {
      Problem p;
      p.bits = bits, p.m = 31, p.n = 17, p.k = 200, p.group = group, p.zero = true;
      check(p);
      if (HasFatalFailure()) return;
      // Without row_group_sum the kernel sums xq itself.
      const Data d(p);
      const int64_t tiles = d.w.n_pad() / kTileN;
      const std::vector<float> want = run(d, kQuantGemmPortable.int_gemm, 0, tiles);
      for (const Kernel& kernel : kernels_here()) {
        std::vector<float> y(want.size(), kSentinel);
        IntGemmArgs a = d.args(y.data(), p.n + 3);
        a.row_group_sum = nullptr;
        kernel.fn(a, 0, tiles);
        EXPECT_EQ(y, want) << kernel.name << " group " << group;
      }
    }
}

TEST(IntGemmAmx, RowChunks) {
  SKIP_WITHOUT_KERNELS();
  // K = 8200 keeps only 96 rows of x per L2 chunk: 100 rows take two chunks (the int4
  // weights are widened again for the second).
  for (int bits : {8, 4})
    for (int64_t group : {0, 128}) {
      Problem p;
      p.bits = bits, p.m = 100, p.n = 33, p.k = 8200, p.group = group, p.zero = group != 0;
      check(p);
      if (HasFatalFailure()) return;
    }
}

TEST(IntGemmAmx, FewRowsAndNoRows) {
  SKIP_WITHOUT_KERNELS();
  // The registry sends only m >= large_rows here, but the kernel is correct for any m.
  for (int64_t m : {1, 2, 5, 8, 15})
    for (int bits : {8, 4}) {
      Problem p;
      p.bits = bits, p.m = m, p.n = 23, p.k = 136, p.group = bits == 4 ? 32 : 0, p.scales = true, p.bias = true;
      check(p);
      if (HasFatalFailure()) return;
    }
  Problem p;
  p.m = 0;
  const Data d(p);
  std::vector<float> y(4, kSentinel);
  for (const Kernel& kernel : kernels_here()) kernel.fn(d.args(y.data(), 1), 0, 3);
  EXPECT_EQ(y[0], kSentinel);
}

TEST(IntGemmAmx, RegistryPicksAmxFirst) {
  SKIP_WITHOUT_AMX();
  const QuantGemmKernels& k = pick_quant_gemm(cpu_features());
  EXPECT_STREQ(k.name, "amx");
  EXPECT_EQ(k.int_gemm_large, &int_gemm_amx);
  EXPECT_GE(k.large_rows, 1);
  // The small-m entry of the AMX set must agree with the portable tiles too.
  Problem p;
  p.m = 3, p.k = 136, p.group = 0;
  const Data d(p);
  const int64_t tiles = d.w.n_pad() / kTileN;
  EXPECT_EQ(run(d, k.int_gemm, 0, tiles), run(d, kQuantGemmPortable.int_gemm, 0, tiles));
}

// LOWBIT_AMX_TIMING=1: one noisy single-thread timing of 512×2048×6144 and the m at which
// AMX overtakes the small-m kernel. Not a benchmark (see kernel_bench); prints only.
TEST(IntGemmAmx, QuickTiming) {
  SKIP_WITHOUT_AMX();
  if (!std::getenv("LOWBIT_AMX_TIMING")) GTEST_SKIP() << "set LOWBIT_AMX_TIMING=1 to print a timing";
  auto seconds = [](auto&& fn, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      const auto t = std::chrono::steady_clock::now();
      fn();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
    }
    return best;
  };
  for (int bits : {8, 4})
    for (int64_t group : {0, 128, 32}) {
      if (bits == 8 && group) continue;
      Problem p;
      p.bits = bits, p.m = 512, p.n = 6144, p.k = 2048, p.group = group, p.scales = true;
      const Data d(p);
      std::vector<float> y(size_t(p.m * p.n));
      const int64_t tiles = d.w.n_pad() / kTileN;
      const double s = seconds([&] { int_gemm_amx(d.args(y.data(), p.n), 0, tiles); }, 5);
      std::printf("amx %d-bit group %3ld 512x2048x6144: %.2f ms, %.0f GMAC/s\n", bits, long(group), s * 1e3,
                  double(p.m * p.n * p.k) / s * 1e-9);
    }
  for (int64_t m : {1, 2, 4, 8, 12, 16, 24, 32, 48, 64}) {
    Problem p;
    p.m = m, p.n = 2048, p.k = 2048, p.scales = true;
    const Data d(p);
    std::vector<float> y(size_t(p.m * p.n));
    const int64_t tiles = d.w.n_pad() / kTileN;
    const IntGemmFn small = pick_quant_gemm(cpu_features()).int_gemm;
    const double sa = seconds([&] { int_gemm_amx(d.args(y.data(), p.n), 0, tiles); }, 5);
    const double ss = seconds([&] { small(d.args(y.data(), p.n), 0, tiles); }, 5);
    std::printf("m=%3ld 2048x2048 int8: amx %.3f ms, small-m %.3f ms\n", long(m), sa * 1e3, ss * 1e3);
  }
}

}  // namespace
}  // namespace lowbit
