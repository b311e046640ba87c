// The integer GEMMs of every kernel set this CPU runs (quant_gemm_kernels(cpu_features()):
// AMX, VNNI, AVX-512 tiles, portable, each entry for the rows it serves) and the VNNI kernel
// called directly, against a scalar oracle written here from the IntGemmArgs contract
// (quant_gemm.h: exact int64 group sums Σ xq·(w − z), scales applied in double); plus the
// activation quantizers (kernels/quantize_rows.h) against the reference quantizers.
//
// Tolerances. Exact cases (no scales, unit group scales): every output is an integer sum
// below 2^24 (asserted), which fp32 holds exactly, so every kernel must match bit for bit;
// this is where the integer dot products are checked. Scaled cases: a kernel performs per
// output at most G + 6 fp32 roundings (G groups: int→float, a zero-point correction done in
// float by some kernels (two), · group scale, + into the running sum per group, then · row
// scale, · column scale, + bias), each ≤ 2^-24 relative to a value bounded by
// mag = |rs·cs|·Σ_g (|Σ xq·w| + |z_g·S_g|)·|gs_g| + |bias|, so |y − oracle| ≤ (G + 8)·2^-24·mag
// (first order; the rest is below 2^-40·mag here). A wrong code, lane, group or row is O(mag).
// Quantizers: bit-identical codes and scales, exact sums.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/int_gemm_vnni.h"
#include "kernels/int_gemm_test_problem.h"
#include "kernels/quant_gemm.h"
#include "kernels/quantize_rows.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {
namespace {

struct Problem {
  int bits = 8;          // weight codes
  bool act4 = false;     // activations in [-8, 7] (W4A4), else int8
  int64_t m = 1, n = 37, k = 100, group = 0;
  bool zero = false, int_bias = false, bias = false, scales = false, extreme = false;
  bool sums = true;      // pass row_group_sum (the VNNI kernel computes it when null)
  int big_zero = 0;      // zero points drawn from [-big_zero, big_zero] instead of the code range
  uint32_t seed = 1;
};

// The problem's operands (int_gemm_test_problem.h), drawn in this test's order and ranges.
struct Data : int_gemm_test::Operands {
  Problem p;

  // Rows of xq carry 12 junk bytes past k_pad that no kernel may read.
  explicit Data(const Problem& pr) : Operands(pr.bits, pr.m, pr.n, pr.k, pr.group, 12), p(pr) {
    std::mt19937 rng(p.seed);
    const int wmax = p.bits == 8 ? 127 : 7, xmax = p.act4 ? 7 : 127;
    std::uniform_int_distribution<int> wd = code_dist();
    std::uniform_real_distribution<float> ud(0.5f, 2.0f);
    auto sign = [&] { return rng() % 2 ? 1.0f : -1.0f; };
    draw_codes(rng);
    if (p.n > 2)  // extreme rows: all minimum, all maximum codes
      for (int64_t j = 0; j < p.k; ++j) codes[size_t(j)] = int8_t(-wmax - 1), codes[size_t(p.k + j)] = int8_t(wmax);
    pack_codes();
    draw_activations(rng, std::uniform_int_distribution<int>(-xmax - 1, xmax), int8_t(0x5A));
    if (p.m > 1) std::fill_n(xq.begin() + ldxq, p.k, int8_t(0));                 // a zero row
    if (p.m > 2) std::fill_n(xq.begin() + 2 * ldxq, p.k, int8_t(-xmax - 1));    // all at the minimum
    sum_row_groups();
    pass_gs = p.group && p.scales;
    pass_gz = p.zero;
    pass_rgs = p.sums;
    pass_cib = p.int_bias && !p.group;
    pass_scales = p.scales;
    pass_bias = p.bias;
    const float e = p.extreme ? 1e-18f : 1.0f;
    if (p.group)
      for (int64_t r = 0; r < p.n; ++r)
        for (int64_t g = 0; g < groups; ++g) {
          const float v = p.scales ? sign() * ud(rng) * e : 1.0f;
          set_group_scale(r, g, v);
        }
    if (p.zero)
      for (int64_t r = 0; r < p.n; ++r)
        for (int64_t g = 0; g < groups; ++g)
          set_zero(r, g, p.big_zero ? std::uniform_int_distribution<int>(-p.big_zero, p.big_zero)(rng) : wd(rng));
    if (p.int_bias)
      for (int64_t r = 0; r < p.n; ++r) cib[size_t(r)] = int32_t(rng() % (1 << 20)) - (1 << 19);
    for (auto& v : rs) v = ud(rng) * (p.extreme ? 1e20f : 1.0f);
    for (int64_t r = 0; r < p.n; ++r) {
      cs[size_t(r)] = sign() * ud(rng) * (p.extreme ? 1e-6f : 1.0f);
      cb[size_t(r)] = sign() * ud(rng) * 100.0f;
    }
  }

  // The contract in double: value and the rounding-error magnitude bound of the header
  // comment (the zero-point correction counted as |z·Σ xq| beside |Σ xq·w|).
  void oracle(int64_t i, int64_t r, double& value, double& mag) const {
    double m_sum = 0;
    value = Operands::oracle(i, r, [&](int64_t, const int_gemm_test::GroupSums& s, double scale) {
      m_sum += (std::fabs(double(s.raw)) + std::fabs(double(s.zero) * double(s.xsum))) * std::fabs(scale);
    });
    if (pass_cib) m_sum += std::fabs(double(cib[size_t(r)]));
    mag = m_sum * std::fabs(outer_scale(i, r)) + std::fabs(bias(r));
  }
};

constexpr float kUnwritten = -7.25f;

// Runs fn over tiles split as the thread pool might (by default single tiles, a run of 3, the
// rest; or the given cut points, clamped to the tile count), checks every output against the
// oracle and that nothing past N (row stride ldy) is written.
void expect_kernel(const Data& d, IntGemmFn fn, const std::string& what, std::vector<int64_t> cuts = {0, 1, 4}) {
  const int64_t n = d.p.n, ldy = n + 5, tiles = d.w.n_pad() / kTileN;
  std::vector<float> y(size_t(std::max<int64_t>(d.p.m, 1) * ldy), kUnwritten);
  const IntGemmArgs a = d.args(y.data(), ldy);
  cuts.push_back(tiles);
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    const int64_t b = std::min(cuts[c], tiles), e = std::min(cuts[c + 1], tiles);
    if (b < e) fn(a, b, e);
  }
  const bool exact = !d.p.scales;
  const double tol_units = double(d.groups + 8) * std::ldexp(1.0, -24);
  for (int64_t i = 0; i < d.p.m; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      double v, mag;
      d.oracle(i, r, v, mag);
      const float got = y[size_t(i * ldy + r)];
      if (exact) {
        ASSERT_LT(mag, double(1 << 24)) << "exact case too large";
        ASSERT_EQ(got, float(v)) << what << " row " << i << " col " << r;
      } else {
        ASSERT_NEAR(got, v, tol_units * mag + 1e-30) << what << " row " << i << " col " << r;
      }
    }
    for (int64_t r = n; r < ldy; ++r) ASSERT_EQ(y[size_t(i * ldy + r)], kUnwritten) << what << " wrote past N";
  }
}

// Every int GEMM entry this CPU runs (for the rows it serves) and the VNNI kernel directly.
void expect_all(const Problem& p, const std::vector<int64_t>& cuts = {0, 1, 4}) {
  const Data d(p);
  const std::string tag = "bits " + std::to_string(p.bits) + (p.act4 ? " a4" : "") + " m " + std::to_string(p.m) +
                          " n " + std::to_string(p.n) + " k " + std::to_string(p.k) + " group " +
                          std::to_string(p.group) + (p.zero ? " zero" : "") + (p.scales ? " scaled" : "") +
                          (p.extreme ? " extreme" : "") + (p.sums ? "" : " no sums") +
                          (p.big_zero ? " big zero" : "");
  for (const QuantGemmKernels* k : quant_gemm_kernels(cpu_features())) {
    const bool large = k->int_gemm_large && p.m >= k->large_rows;
    if (!p.sums && large) continue;  // only the VNNI kernel promises to sum xq itself
    if (!p.sums && k->int_gemm != int_gemm_vnni) continue;
    expect_kernel(d, large ? k->int_gemm_large : k->int_gemm, std::string(k->name) + (large ? " large " : " ") + tag,
                  cuts);
  }
  if (cpu_features().vnni()) expect_kernel(d, int_gemm_vnni, "int_gemm_vnni " + tag, cuts);
}

// A set running int_gemm_vnni is offered exactly where VNNI runs (LOWBIT_MAX_ISA=avx2 or a CPU
// without it leaves it out), ahead of the compiler-vectorised AVX-512 tiles.
TEST(IntGemmVnni, RegisteredWhereVnniRuns) {
  const auto sets = quant_gemm_kernels(cpu_features());
  const auto vnni = std::find_if(sets.begin(), sets.end(), [](auto* k) { return k->int_gemm == int_gemm_vnni; });
  EXPECT_EQ(vnni != sets.end(), cpu_features().vnni()) << cpu_features().describe();
  const auto tiled = std::find(sets.begin(), sets.end(), &kQuantGemmAvx512);
  if (vnni != sets.end()) {
    EXPECT_LT(vnni, tiled);
  }
}

// Exact integer sums: every shape, code width, group, zero point and row count.
TEST(IntGemmVnni, ExactIntegerSums) {
  for (int bits : {8, 4})
    for (int64_t group : {0, 32, 128})
      for (bool zero : {false, true})
        for (int64_t m : {0, 1, 2, 3, 5, 8, 9, 16, 33}) {
          Problem p;
          p.bits = bits;
          p.group = group;
          p.zero = zero;
          p.m = m;
          p.n = m % 2 ? 37 : 100;  // odd N, and enough tiles for T = 4 blocks plus a tail
          p.k = bits == 8 ? 100 : 260;  // K not a multiple of 64 (nor of the group)
          p.int_bias = !group;
          p.seed = uint32_t(7 + m + bits + group);
          expect_all(p);
        }
}

// W4A4 activations and long K: several prefill K blocks, still exact below 2^24.
TEST(IntGemmVnni, ExactLongKAndNibbleActivations) {
  for (int bits : {8, 4})
    for (int64_t group : {0, 32, 128})
      for (int64_t m : {1, 7, 33}) {
        Problem p;
        p.bits = bits;
        p.act4 = true;
        p.group = group;
        p.zero = bits == 4;
        p.m = m;
        p.n = 70;
        p.k = 1800;
        p.seed = uint32_t(100 + m + bits + group);
        expect_all(p);
      }
}

// Scales, biases and extreme scale magnitudes: the fp32 bound above.
TEST(IntGemmVnni, ScaledWithinFp32Bound) {
  for (int bits : {8, 4})
    for (int64_t group : {0, 32, 128})
      for (bool extreme : {false, true})
        for (int64_t m : {1, 3, 8, 9, 33}) {
          Problem p;
          p.bits = bits;
          p.group = group;
          p.zero = bits == 4 && group != 0;
          p.m = m;
          p.n = 53;
          p.k = 1000;
          p.scales = true;
          p.bias = true;
          p.int_bias = group == 0;
          p.extreme = extreme;
          p.seed = uint32_t(200 + m + bits + group + extreme);
          expect_all(p);
        }
}

// Prefill blocking (m > 8): the VNNI kernel decodes a block of 4 tiles once (in its first
// block of 4 or 6 rows) and runs every further block of 6 rows over it, tails of fewer rows and
// tiles, and groups flushed to fp32 inside the K loop. Every m from 9 to 64, both code widths,
// groups 0/32/128 with and without zero points, K not a multiple of the group, N of 7 and 13
// tiles, tile ranges that start and end inside tile blocks (3, 2, 4, 4 tiles). Exact sums.
TEST(IntGemmVnni, PrefillBlockingExact) {
  for (int64_t m = 9; m <= 64; ++m) {
    Problem p;
    p.m = m;
    p.bits = m % 2 ? 8 : 4;
    p.group = (m / 2) % 3 == 0 ? 0 : (m / 2) % 3 == 1 ? 32 : 128;
    p.zero = (m / 6) % 2 == 1;
    p.n = m % 4 < 2 ? 100 : 200;
    p.k = 136 + 40 * (m % 5);  // 136..296: K % 32 = 8, never a multiple of the group
    p.int_bias = p.group == 0;
    p.seed = uint32_t(400 + m);
    expect_all(p, {0, 3, 5, 9});
    if (HasFatalFailure()) return;
  }
}

// Many row blocks and long K (several thousand K steps, 16+ groups): m = 100 and 512 with
// K = 2048 and 2056 (W4A4-range activations keep the sums exact in fp32).
TEST(IntGemmVnni, PrefillLongExact) {
  for (int64_t m : {100, 512})
    for (int bits : {8, 4})
      for (int64_t group : {0, 128}) {
        Problem p;
        p.m = m;
        p.bits = bits;
        p.act4 = true;
        p.group = group;
        p.zero = bits == 4 && group;
        p.n = 70;
        p.k = group ? 2056 : 2048;
        p.seed = uint32_t(500 + m + bits + group);
        expect_all(p);
        if (HasFatalFailure()) return;
      }
}

// Zero points that do not fit the VNNI kernel's unsigned weight bytes (|z| up to 200 with int4
// codes, any with int8) are subtracted as z·S instead: exact too.
TEST(IntGemmVnni, PrefillLargeZeroPoints) {
  for (int bits : {4, 8})
    for (int64_t group : {0, 32})
      expect_all({.bits = bits, .m = 20, .n = 90, .k = 264, .group = group, .zero = true, .big_zero = 200,
                  .seed = uint32_t(600 + bits + group)});
}

// Scaled prefill over many row blocks: the fp32 bound.
TEST(IntGemmVnni, PrefillScaled) {
  for (int bits : {8, 4})
    for (int64_t group : {0, 128})
      expect_all({.bits = bits, .m = 100, .n = 53, .k = 1000, .group = group, .zero = bits == 4 && group,
                  .int_bias = group == 0, .bias = true, .scales = true, .seed = uint32_t(700 + bits + group)});
}

TEST(IntGemmVnni, SumsComputedWhenAbsent) {
  for (int bits : {8, 4})
    for (int64_t group : {0, 32})
      for (int64_t m : {1, 5, 12}) {
        Problem p;
        p.bits = bits;
        p.group = group;
        p.zero = true;
        p.sums = false;
        p.m = m;
        p.k = 200;
        p.seed = uint32_t(300 + m);
        expect_all(p);
      }
}

// ---- Activation quantizers.

std::vector<float> test_rows(int64_t m, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(size_t(m * k));
  for (auto& v : x) v = nd(rng);
  for (int64_t i = 0; i < m; ++i) {
    float* r = x.data() + i * k;
    switch (i % 6) {
      case 1: std::fill(r, r + k, 0.0f); break;                       // zero row: s = 0
      case 2: for (int64_t j = 0; j < k; ++j) r[j] *= 1e30f; break;    // huge
      case 3: for (int64_t j = 0; j < k; ++j) r[j] *= 1e-40f; break;   // subnormal
      case 4:  // exact ties: amax 127 → s = 1, so x.5 rounds half to even
        for (int64_t j = 0; j < k; ++j) r[j] = float(int64_t(j % 9) - 4) + 0.5f;
        r[0] = -127.0f;
        if (k > 1) r[1] = -0.0f;
        break;
      case 5: {  // near ties under a scale that is not a power of two: x/s within ulps of k + 0.5
        const float s = 37.3f / 127.0f;
        r[0] = 37.3f;
        for (int64_t j = 1; j < k; ++j) {
          const float t = (float(j % 17) - 8.0f + 0.5f) * s;
          r[j] = std::nextafter(t, j % 3 == 0 ? -1e9f : j % 3 == 1 ? 1e9f : t);
        }
        break;
      }
      default: r[0] = 40.0f; break;  // an outlier
    }
  }
  return x;
}

void expect_rows(const ActQuantRows& r, const std::vector<int8_t>& want, int64_t group, const std::string& what) {
  for (int64_t i = 0; i < r.m; ++i) {
    for (int64_t j = 0; j < r.k; ++j)
      ASSERT_EQ(r.q[i * r.ldq + j], want[size_t(i * r.k + j)]) << what << " row " << i << " k " << j;
    for (int64_t j = r.k; j < r.ldq; ++j) ASSERT_EQ(r.q[i * r.ldq + j], 0) << what << " padding";
    const int64_t g_len = group ? group : r.ldq, groups = act_groups(r.ldq, group);
    for (int64_t g = 0; g < groups; ++g) {
      int32_t s = 0;
      for (int64_t j = g * g_len; j < std::min(r.ldq, (g + 1) * g_len); ++j) s += r.q[i * r.ldq + j];
      ASSERT_EQ(r.group_sum[i * groups + g], s) << what << " sum row " << i << " group " << g;
    }
  }
}

TEST(ActQuant, PerTokenSymBitIdentical) {
  for (const ActQuantKernels* kern : act_quant_kernel_list(cpu_features()))
    for (int bits : {8, 4})
      for (int64_t k : {1, 15, 16, 17, 100, 259})
        for (int64_t group : {0, 8, 32, 128}) {
          const int64_t m = 12, ldq = round_up(k, 8) + (group ? 0 : 8), ldx = k + 3;
          const std::vector<float> xs = test_rows(m, k, uint32_t(k + bits));
          std::vector<float> x(size_t(m * ldx), std::numeric_limits<float>::quiet_NaN());  // junk past K
          for (int64_t i = 0; i < m; ++i) std::copy(xs.begin() + i * k, xs.begin() + (i + 1) * k, x.begin() + i * ldx);
          std::vector<int8_t> want(size_t(m * k)), q(size_t(m * ldq), 99);
          std::vector<float> want_s(static_cast<size_t>(m)), s(static_cast<size_t>(m));
          quantize_act_per_token_sym(xs.data(), m, k, bits, want.data(), want_s.data());
          std::vector<int32_t> sums(size_t(m * act_groups(ldq, group)), -1);
          ActQuantRows r{x.data(), ldx, m, k, q.data(), ldq, group, sums.data()};
          kern->per_token_sym(r, bits, s.data());
          const std::string what = std::string(kern->name) + " bits " + std::to_string(bits) + " k " +
                                   std::to_string(k) + " group " + std::to_string(group);
          for (int64_t i = 0; i < m; ++i)
            ASSERT_EQ(std::memcmp(&s[size_t(i)], &want_s[size_t(i)], 4), 0) << what << " scale " << i;
          expect_rows(r, want, group, what);
        }
}

TEST(ActQuant, StaticInt8BitIdentical) {
  for (const ActQuantKernels* kern : act_quant_kernel_list(cpu_features()))
    for (StaticActRule rule : {StaticActRule::MulOffset, StaticActRule::DivZero})
      for (int64_t k : {1, 17, 100, 259}) {
        const int64_t m = 6, ldq = round_up(k, 4) + 4;
        const float scale = 0.0173f, zero = rule == StaticActRule::MulOffset ? -3.0f : 5.0f;
        std::vector<float> x = test_rows(m, k, uint32_t(k));
        for (int64_t j = 0; j < k; ++j) {  // the last row near ties: x/s + zero within ulps of q + 0.5
          const float t = (float(j % 40) - 20.0f + 0.5f - zero) * scale;
          x[size_t((m - 1) * k + j)] = std::nextafter(t, j % 3 == 0 ? -1e9f : j % 3 == 1 ? 1e9f : t);
        }
        std::vector<int8_t> want(size_t(m * k)), q(size_t(m * ldq), 99);
        if (rule == StaticActRule::MulOffset) {
          quantize_act_static_asym(x.data(), m * k, scale, zero, want.data());
        } else {
          for (size_t j = 0; j < want.size(); ++j)
            want[j] = int8_t(std::nearbyint(std::clamp(x[j] / scale + zero, -128.0f, 127.0f)));
        }
        std::vector<int32_t> sums(size_t(m), -1);
        ActQuantRows r{x.data(), k, m, k, q.data(), ldq, 0, sums.data()};
        kern->static_int8(r, scale, zero, rule);
        expect_rows(r, want, 0, std::string(kern->name) + (rule == StaticActRule::MulOffset ? " msmodelslim" : " ct") +
                                    " k " + std::to_string(k));
      }
}

}  // namespace
}  // namespace lowbit
