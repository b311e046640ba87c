// Suite "gdn" (lower case so `ctest -R gdn` selects it with python_gdn_oracle).
// Every Gated DeltaNet backend this CPU runs (gdn_kernel_sets: AVX-512, AVX2, portable, as the
// LOWBIT_MAX_ISA cap allows) against the double-precision oracle (reference/gdn_ref.cc), in
// both forms (fused recurrence and chunked), plus the properties the model relies on: chunked
// == recurrent, a ragged batch == each sequence alone (and any thread count), the conv window
// carried across calls, and extreme decays.
//
// Tolerances.
//   Conv: per element |y − ref| ≤ 2·(γ_Kc·Σ_j|w_j x_j| + 8ε·|ref|): the fp32 Kc-term sum
//   (γ_n = nε/(1−nε), ε = 2^-24) through silu (slope ≤ 1.1), plus the exp polynomial and
//   division of silu (a few ulps); the 2 is headroom. The window is copied: exact.
//   Delta rule: per v-head, max|Δ| ≤ τ·scale over the final state (scale = max|S_ref|) and
//   over all output rows (scale = max|o_ref|), τ = 8·ε·sqrt(dk·(T + 1)). Why that form: each
//   token adds rounding of relative size ~dk·ε to a state column (the dk-term dot u = Sᵀk and
//   the rank-1 update), the update map e^g(I − βkkᵀ) is non-expansive (‖k̂‖ = 1, β ∈ (0,1),
//   e^g ≤ 1) so earlier errors are never amplified, and independent roundings add like a random
//   walk: ~ε·sqrt(dk·T). The worst case (linear in T·dk) is ~30–100× larger and never observed;
//   GDN_VERBOSE=1 prints the fraction of τ each case uses (≤ ~20 % here). The Sensitivity
//   test shows τ is tight enough to catch a systematic 1 % error in the decay or β.
#include "kernels/gdn.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gdn_kernels.h"
#include "kernels/reference/gdn_ref.h"

namespace lowbit {
namespace {

constexpr double kEps = 0x1p-24;

GdnShape make_shape(int64_t hk, int64_t hv, int64_t dk, int64_t dv, int64_t kc = 4) {
  GdnShape s;
  s.num_k_heads = hk;
  s.num_v_heads = hv;
  s.k_dim = dk;
  s.v_dim = dv;
  s.conv_kernel = kc;
  return s;
}

struct Weights {
  std::vector<float> conv, a_log, dt_bias;
  GdnWeights view() const { return {conv.data(), a_log.data(), dt_bias.data()}; }
};

Weights make_weights(const GdnShape& s, std::mt19937& rng, float a_log_center = 0.0f) {
  std::normal_distribution<float> n01(0, 1);
  std::uniform_real_distribution<float> u(-1, 1);
  Weights w;
  w.conv.resize(size_t(s.conv_dim() * s.conv_kernel));
  for (auto& x : w.conv) x = 0.5f * n01(rng);
  for (int64_t j = 0; j < s.num_v_heads; ++j) {
    w.a_log.push_back(a_log_center + u(rng));
    w.dt_bias.push_back(u(rng));
  }
  return w;
}

// One sequence's buffers. For the delta rule, conv_out is filled directly (random post-conv
// rows); for the conv, conv_in and the window. conv_in, a/b and out rows are padded (strides
// larger than the rows) so a kernel that assumes packed rows fails.
struct Seq {
  int64_t n = 0;
  int64_t in_stride = 0, ab_stride = 0, out_stride = 0;
  std::vector<float> conv_in, conv_out, window, a, b, state, out;
  GdnSequence view(const GdnShape& s) {
    GdnSequence q;
    q.n_tokens = n;
    q.conv_in = conv_in.data();
    q.conv_in_stride = in_stride;
    q.conv_out = conv_out.data();
    q.conv_state = window.data();
    q.a = a.data();
    q.b = b.data();
    q.ab_stride = ab_stride;
    q.state = state.data();
    q.out = out.data();
    q.out_stride = out_stride;
    return q;
  }
};

// a_shift moves the raw a (softplus argument) to test decay extremes.
Seq make_seq(const GdnShape& s, int64_t n, std::mt19937& rng, float a_shift = 0.0f) {
  std::normal_distribution<float> n01(0, 1);
  Seq q;
  q.n = n;
  const int64_t cd = s.conv_dim();
  q.in_stride = cd + 3;
  q.ab_stride = s.num_v_heads + 2;
  q.out_stride = s.value_dim() + 5;
  q.conv_in.resize(size_t(n * q.in_stride));
  for (auto& x : q.conv_in) x = n01(rng);
  q.conv_out.resize(size_t(n * cd));
  for (auto& x : q.conv_out) x = n01(rng);
  q.window.resize(size_t(s.conv_state_floats()));
  for (auto& x : q.window) x = n01(rng);
  for (int64_t i = 0; i < n * q.ab_stride; ++i) {
    q.a.push_back(a_shift + 2.0f * n01(rng));
    q.b.push_back(2.0f * n01(rng));
  }
  q.state.resize(size_t(s.state_floats()));
  for (auto& x : q.state) x = 0.5f * n01(rng);
  q.out.assign(size_t(n * q.out_stride), NAN);
  return q;
}

std::vector<GdnSequence> views(const GdnShape& s, std::vector<Seq>& seqs) {
  std::vector<GdnSequence> v;
  for (Seq& q : seqs) v.push_back(q.view(s));
  return v;
}

std::string label(const GdnKernels& k, const GdnShape& s, int64_t n, const char* what) {
  return std::string(k.name) + " " + what + " Hk " + std::to_string(s.num_k_heads) + " Hv " +
         std::to_string(s.num_v_heads) + " dk " + std::to_string(s.k_dim) + " dv " + std::to_string(s.v_dim) + " T " +
         std::to_string(n);
}

// Fraction of τ used (≤ 1 passes) by got vs ref, per v-head, state and outputs; fails the test
// with `what` otherwise.
double check_delta(const GdnShape& s, const Seq& got, const Seq& ref, const std::string& what) {
  const int64_t dk = s.k_dim, dv = s.v_dim, hv = s.num_v_heads;
  const double tau = 8 * kEps * std::sqrt(double(dk) * double(got.n + 1));
  double worst = 0;
  for (int64_t j = 0; j < hv; ++j) {
    double scale = 1e-30, err = 0;
    for (int64_t i = 0; i < dk * dv; ++i) {
      const size_t at = size_t(j * dk * dv + i);
      scale = std::max(scale, std::fabs(double(ref.state[at])));
      err = std::max(err, std::fabs(double(got.state[at]) - ref.state[at]));
      if (!std::isfinite(got.state[at])) err = INFINITY;
    }
    const double ws = err / (tau * scale);
    EXPECT_LE(ws, 1.0) << what << " state of v-head " << j << ": max err " << err << " scale " << scale;
    double oscale = 1e-30, oerr = 0;
    for (int64_t t = 0; t < got.n; ++t)
      for (int64_t e = 0; e < dv; ++e) {
        const size_t at = size_t(t * got.out_stride + j * dv + e);
        oscale = std::max(oscale, std::fabs(double(ref.out[at])));
        oerr = std::max(oerr, std::fabs(double(got.out[at]) - ref.out[at]));
        if (!std::isfinite(got.out[at])) oerr = INFINITY;
      }
    const double wo = oerr / (tau * oscale);
    EXPECT_LE(wo, 1.0) << what << " output of v-head " << j << ": max err " << oerr << " scale " << oscale;
    worst = std::max({worst, ws, wo});
  }
  for (int64_t t = 0; t < got.n; ++t)  // the padding after each output row is never written
    for (int64_t e = s.value_dim(); e < got.out_stride; ++e)
      EXPECT_TRUE(std::isnan(got.out[size_t(t * got.out_stride + e)])) << what << " wrote past row " << t;
  if (std::getenv("GDN_VERBOSE")) std::printf("%s: %.3g of tolerance\n", what.c_str(), worst);
  return worst;
}

void expect_bitwise(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], 4) != 0 && ++bad == 1)
      ADD_FAILURE() << what << ": element " << i << " " << a[i] << " vs " << b[i];
  EXPECT_EQ(bad, 0u) << what;
}

const int64_t kLengths[] = {1, 5, 63, 64, 65, 150, 300};

struct ShapeCase {
  int64_t hk, hv, dk, dv;
};
// dv = 160: three 64-column state panels, the last one partial.
const ShapeCase kShapes[] = {{1, 1, 16, 24}, {1, 3, 16, 24},  {2, 6, 16, 24},
                             {3, 3, 24, 16}, {1, 2, 32, 160}, {1, 2, 128, 128}};

// Reference once, then every backend in both forms; also chunked vs recurrent directly.
void compare_delta(const GdnShape& s, const Weights& w, const Seq& input, ThreadPool& pool) {
  Seq ref = input;
  std::vector<Seq> refs{ref};
  {
    auto v = views(s, refs);
    gdn_delta_rule_ref(s, w.view(), v);
  }
  ref = refs[0];
  for (const GdnKernels* k : gdn_kernel_sets(cpu_features())) {
    std::vector<Seq> rec{input}, chk{input};
    auto vr = views(s, rec), vc = views(s, chk);
    run_gdn_delta_rule(*k, s, w.view(), vr, pool, GdnMode::kRecurrent);
    run_gdn_delta_rule(*k, s, w.view(), vc, pool, GdnMode::kChunked);
    check_delta(s, rec[0], ref, label(*k, s, input.n, "recurrent"));
    check_delta(s, chk[0], ref, label(*k, s, input.n, "chunked"));
    check_delta(s, chk[0], rec[0], label(*k, s, input.n, "chunked vs recurrent"));
  }
}

TEST(gdn, DeltaRuleMatchesReference) {
  ThreadPool pool(2);
  std::mt19937 rng(7);
  for (const ShapeCase& c : kShapes) {
    const GdnShape s = make_shape(c.hk, c.hv, c.dk, c.dv);
    const Weights w = make_weights(s, rng);
    for (int64_t n : kLengths) {
      if (c.dk == 128 && n == 63) continue;  // the large shape at the chunk edges and long only
      compare_delta(s, w, make_seq(s, n, rng), pool);
    }
  }
}

// Zero initial state (a fresh sequence) at the 80B head sizes.
TEST(gdn, FreshState) {
  ThreadPool pool(2);
  std::mt19937 rng(8);
  const GdnShape s = make_shape(2, 4, 128, 128);
  const Weights w = make_weights(s, rng);
  Seq q = make_seq(s, 100, rng);
  std::fill(q.state.begin(), q.state.end(), 0.0f);
  compare_delta(s, w, q, pool);
}

// A_log large: g very negative, the state is forgotten at every token (e^g underflows to 0).
// a very negative: softplus → 0, g → 0, no decay at all (the state only moves by the delta rule).
// And one heads-mixed case: per-token a spread over ±40.
TEST(gdn, ExtremeDecays) {
  ThreadPool pool(2);
  std::mt19937 rng(9);
  const GdnShape s = make_shape(1, 3, 16, 24);
  for (int64_t n : {int64_t(5), int64_t(130)}) {
    compare_delta(s, make_weights(s, rng, 6.0f), make_seq(s, n, rng, 30.0f), pool);   // g ≈ −400·30
    compare_delta(s, make_weights(s, rng, 0.0f), make_seq(s, n, rng, -60.0f), pool);  // g ≈ −1e-26
    Seq mixed = make_seq(s, n, rng);
    std::uniform_real_distribution<float> wide(-40, 40);
    for (auto& a : mixed.a) a = wide(rng);
    compare_delta(s, make_weights(s, rng, 1.0f), mixed, pool);
  }
}

// The tolerance must catch real mistakes: β or the decay off by ≤ 1 % (a systematic error such
// as a wrong softplus threshold or eps) makes the check fail by a wide margin.
TEST(gdn, Sensitivity) {
  ThreadPool pool(2);
  std::mt19937 rng(10);
  const GdnShape s = make_shape(1, 2, 128, 128);
  const Weights w = make_weights(s, rng);
  const Seq input = make_seq(s, 150, rng);
  for (int which = 0; which < 2; ++which) {
    std::vector<Seq> ref{input};
    // β = σ(b): +0.04 on every b changes β by ≤ 1 %; +0.01 on every a moves g by ≤ 1 %.
    for (float& x : which == 0 ? ref[0].b : ref[0].a) x += which == 0 ? 0.04f : 0.01f;
    auto vr = views(s, ref);
    gdn_delta_rule_ref(s, w.view(), vr);
    std::vector<Seq> got{input};
    auto vg = views(s, got);
    run_gdn_delta_rule(*gdn_kernel_sets(cpu_features()).front(), s, w.view(), vg, pool, GdnMode::kAuto);
    // Recompute the fraction of τ without failing this test.
    const int64_t dk = s.k_dim, dv = s.v_dim;
    const double tau = 8 * kEps * std::sqrt(double(dk) * double(input.n + 1));
    double worst = 0;
    for (int64_t t = 0; t < input.n; ++t) {
      double scale = 1e-30, err = 0;
      for (int64_t e = 0; e < dv; ++e) {
        const size_t at = size_t(t * input.out_stride + e);
        scale = std::max(scale, double(std::fabs(ref[0].out[at])));
        err = std::max(err, double(std::fabs(got[0].out[at] - ref[0].out[at])));
      }
      worst = std::max(worst, err / (tau * scale));
    }
    EXPECT_GT(worst, 3.0) << (which == 0 ? "β" : "decay") << " perturbation would go unnoticed";
    if (std::getenv("GDN_VERBOSE")) std::printf("%s +1 %%: %.3g × tolerance\n", which == 0 ? "β" : "decay", worst);
  }
}

// A ragged batch (decode tokens and prefill chunks, in either form) gives each sequence exactly
// what it gets alone, at any thread count.
TEST(gdn, RaggedBatchEqualsAlone) {
  ThreadPool pool1(1), pool3(3);
  std::mt19937 rng(11);
  const GdnShape s = make_shape(2, 6, 16, 24);
  const Weights w = make_weights(s, rng);
  std::vector<Seq> batch;
  for (int64_t n : {1, 70, 5, 1, 130, 64, 2}) batch.push_back(make_seq(s, n, rng));
  for (const GdnKernels* k : gdn_kernel_sets(cpu_features()))
    for (GdnMode mode : {GdnMode::kAuto, GdnMode::kRecurrent, GdnMode::kChunked}) {
      std::vector<Seq> together = batch;
      auto vt = views(s, together);
      run_gdn_conv(*k, s, w.view(), vt, pool3);
      run_gdn_delta_rule(*k, s, w.view(), vt, pool3, mode);
      for (size_t i = 0; i < batch.size(); ++i) {
        std::vector<Seq> alone{batch[i]};
        auto va = views(s, alone);
        run_gdn_conv(*k, s, w.view(), va, pool1);
        run_gdn_delta_rule(*k, s, w.view(), va, pool1, mode);
        const std::string what =
            std::string(k->name) + " mode " + std::to_string(int(mode)) + " sequence " + std::to_string(i);
        expect_bitwise(together[i].conv_out, alone[0].conv_out, what + " conv_out");
        expect_bitwise(together[i].window, alone[0].window, what + " window");
        expect_bitwise(together[i].state, alone[0].state, what + " state");
        expect_bitwise(together[i].out, alone[0].out, what + " out");
      }
    }
}

// kAuto runs exactly one of the two forms.
TEST(gdn, AutoPicksAForm) {
  ThreadPool pool(2);
  std::mt19937 rng(12);
  const GdnShape s = make_shape(1, 2, 16, 24);
  const Weights w = make_weights(s, rng);
  const GdnKernels& k = *gdn_kernel_sets(cpu_features()).front();
  for (int64_t n : {1, 2, 16, 63, 64, 65, 200}) {
    const Seq input = make_seq(s, n, rng);
    std::vector<Seq> a{input}, r{input}, c{input};
    auto va = views(s, a), vr = views(s, r), vc = views(s, c);
    run_gdn_delta_rule(k, s, w.view(), va, pool, GdnMode::kAuto);
    run_gdn_delta_rule(k, s, w.view(), vr, pool, GdnMode::kRecurrent);
    run_gdn_delta_rule(k, s, w.view(), vc, pool, GdnMode::kChunked);
    // Bitwise (the padding between rows is NaN).
    const size_t bytes = a[0].out.size() * sizeof(float);
    const bool same_r = std::memcmp(a[0].out.data(), r[0].out.data(), bytes) == 0;
    const bool same_c = std::memcmp(a[0].out.data(), c[0].out.data(), bytes) == 0;
    EXPECT_TRUE(same_r || same_c) << "T " << n;
  }
}

// Conv against the oracle, every backend, several kernel sizes and lengths (T < Kc − 1 too).
TEST(gdn, ConvMatchesReference) {
  ThreadPool pool(2);
  std::mt19937 rng(13);
  for (int64_t kc : {4, 2, 1, 5})
    for (const ShapeCase& c : {ShapeCase{2, 6, 16, 24}, ShapeCase{4, 8, 128, 128}}) {
      const GdnShape s = make_shape(c.hk, c.hv, c.dk, c.dv, kc);
      const Weights w = make_weights(s, rng);
      std::vector<Seq> input;
      for (int64_t n : {1, 2, 3, 40}) input.push_back(make_seq(s, n, rng));
      std::vector<Seq> ref = input;
      auto vr = views(s, ref);
      gdn_conv_ref(s, w.view(), vr);
      for (const GdnKernels* k : gdn_kernel_sets(cpu_features())) {
        std::vector<Seq> got = input;
        auto vg = views(s, got);
        run_gdn_conv(*k, s, w.view(), vg, pool);
        const int64_t cd = s.conv_dim(), hist = kc - 1;
        for (size_t i = 0; i < input.size(); ++i) {
          const std::string what = label(*k, s, input[i].n, "conv") + " Kc " + std::to_string(kc);
          expect_bitwise(got[i].window, ref[i].window, what + " window");
          for (int64_t t = 0; t < input[i].n; ++t)
            for (int64_t ch = 0; ch < cd; ++ch) {
              double mag = 0;
              for (int64_t j = 0; j < kc; ++j) {
                const int64_t src = t - hist + j;
                const float x = src < 0 ? input[i].window[size_t((hist + src) * cd + ch)]
                                        : input[i].conv_in[size_t(src * input[i].in_stride + ch)];
                mag += std::fabs(double(w.conv[size_t(ch * kc + j)]) * x);
              }
              const double r = ref[i].conv_out[size_t(t * cd + ch)], g = got[i].conv_out[size_t(t * cd + ch)];
              const double tol =
                  2 * (double(kc) * kEps / (1 - double(kc) * kEps) * 1.1 * mag + 8 * kEps * std::fabs(r));
              ASSERT_LE(std::fabs(g - r), tol) << what << " token " << t << " channel " << ch;
            }
        }
      }
    }
}

// The window carried across calls: T tokens in pieces (including pieces shorter than Kc − 1)
// give bitwise the outputs and window of one call.
TEST(gdn, ConvWindowContinuity) {
  ThreadPool pool(2);
  std::mt19937 rng(14);
  const GdnShape s = make_shape(2, 4, 16, 24);
  const Weights w = make_weights(s, rng);
  const int64_t cd = s.conv_dim();
  const Seq all = make_seq(s, 20, rng);
  for (const GdnKernels* k : gdn_kernel_sets(cpu_features())) {
    std::vector<Seq> once{all};
    auto vo = views(s, once);
    run_gdn_conv(*k, s, w.view(), vo, pool);
    std::vector<float> window = all.window, out;
    for (int64_t piece : {1, 1, 2, 5, 1, 7, 3}) {
      const int64_t t0 = int64_t(out.size()) / cd;
      GdnSequence q;
      q.n_tokens = piece;
      q.conv_in = all.conv_in.data() + t0 * all.in_stride;
      q.conv_in_stride = all.in_stride;
      std::vector<float> y(size_t(piece * cd));
      q.conv_out = y.data();
      q.conv_state = window.data();
      run_gdn_conv(*k, s, w.view(), std::span<const GdnSequence>(&q, 1), pool);
      out.insert(out.end(), y.begin(), y.end());
    }
    expect_bitwise(out, once[0].conv_out, std::string(k->name) + " pieces: outputs");
    expect_bitwise(window, once[0].window, std::string(k->name) + " pieces: window");
  }
}

TEST(gdn, RejectsBadShapes) {
  ThreadPool pool(1);
  std::mt19937 rng(15);
  const GdnShape good = make_shape(2, 4, 16, 24);
  const Weights w = make_weights(good, rng);
  std::vector<Seq> seqs{make_seq(good, 3, rng)};
  auto v = views(good, seqs);
  EXPECT_THROW(gdn_delta_rule(make_shape(3, 4, 16, 24), w.view(), v, pool), Error);
  EXPECT_THROW(gdn_conv(make_shape(2, 4, 16, 24, 0), w.view(), v, pool), Error);
  v[0].ab_stride = 1;
  EXPECT_THROW(gdn_delta_rule(good, w.view(), v, pool), Error);
}

}  // namespace
}  // namespace lowbit
