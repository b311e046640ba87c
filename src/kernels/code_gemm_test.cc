// Every table-decoded GEMM (the code_gemm / code_gemm_large entries of every kernel set this
// CPU runs under its LOWBIT_MAX_ISA cap, plus the portable tiles) against the scalar scheme
// references of kernels/reference/quant_gemm_ref.h, fed the codes those references quantize
// to: MXFP8, MXFP4 with MXFP4 and MXFP8 activations, FP8 block and per-channel, W4A16 signed
// and unsigned with zero points. Shapes leave partial tiles (N = 37), K not a multiple of 64
// (MX) or an odd multiple of 8 (int4), a short last group, m from 0 to 64 across the GEMV row
// blocks and the large-m entries; tile sub-ranges must write only their own columns.
//
// Tolerances, per output, with T = Σ_k |x̂_k·ŵ_k| (the dequantized operands):
//  - Coded activations (MX, FP8): every product of two E4M3/E2M1 codes is exact in fp32 (or
//    int32), scales are powers of two (MX) or applied once per group; the kernels differ from
//    the double-accumulating references only by fp32 accumulation order and the rounding of
//    group partial sums and scale products: |Δ| ≤ (K + 8)·2^-24·T, plus 2^-120 for group
//    terms whose scale product 2^(ex+ew) falls below fp32's range (each < 2^-126).
//  - Fp32 activations (W4A16, FP8 weight-only): the reference rounds each dequantized weight
//    to fp32 once; the kernels use Σ x·q − z·Σ x per group in fp32 (|z| ≤ 15 adds at most
//    that factor to T): (K + 8)·2^-24·T·16.
//  - x_bf16_ok: each activation rounded to BF16 (relative 2^-9) adds 2^-8·T.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/quant_types.h"
#include "kernels/cpu/code_gemm_avx512.h"
#include "kernels/fp_act_quant.h"
#include "kernels/quant_gemm.h"
#include "kernels/quantize_rows.h"
#include "kernels/reference/quant_gemm_ref.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {
namespace {

struct CodeTables {
  float fp8[256], fp4[16], int4s[16], int4u[16];
  CodeTables() {
    for (int c = 0; c < 256; ++c) fp8[c] = fp8_e4m3_to_f32(uint8_t(c));
    for (int c = 0; c < 16; ++c) {
      fp4[c] = fp4_e2m1_to_f32(uint8_t(c));
      int4s[c] = float(c < 8 ? c : c - 16);
      int4u[c] = float(c);
    }
  }
};
const CodeTables kTables;

std::vector<float> randn(int64_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = d(rng);
  return v;
}

// Activations with an outlier, an all-zero row, and (optionally) rows of extreme magnitude.
std::vector<float> activations(int64_t m, int64_t k, uint32_t seed, bool extreme) {
  std::vector<float> x = randn(m * k, seed);
  if (m > 0) x[0] = 30.0f;
  if (m > 1)
    for (int64_t i = 0; i < k; ++i) x[size_t(k + i)] = 0;
  if (extreme)
    for (int64_t i = 2; i < m; ++i)
      for (int64_t c = 0; c < k; ++c) x[size_t(i * k + c)] *= std::ldexp(1.0f, (i % 3 == 0) ? -100 : (i % 3 == 1 ? -20 : 20));
  return x;
}

// A kernel entry under test, with its name.
struct Entry {
  std::string name;
  CodeGemmFn fn;
};

std::vector<Entry> entries() {
  std::vector<Entry> out;
  for (const QuantGemmKernels* k : quant_gemm_kernels(cpu_features())) {
    out.push_back({std::string(k->name) + ".code_gemm", k->code_gemm});
    if (k->code_gemm_large) out.push_back({std::string(k->name) + ".code_gemm_large", k->code_gemm_large});
  }
  return out;
}

// One problem: packed weights, arguments (x / xq filled per m), expected output and bound.
struct Problem {
  int64_t m = 0, n = 0, k = 0;
  PackedCodes w;
  TiledParams scale, zero;
  AlignedArray<uint8_t> e8m0;
  AlignedArray<float> bias;
  CodeGemmArgs args;
  std::vector<float> xf;            // fp32 activations [m, k_pad]
  std::vector<uint8_t> xq;          // codes [m, k_pad]
  std::vector<float> xs;            // [m, groups]
  std::vector<float> ref, tol;      // [m, n]
  std::vector<float> ref_alt;       // [m, n] or empty: a second result within tol is also right
};

// y within p.tol of p.ref, or of p.ref_alt when there is one.
::testing::AssertionResult near_ref(const Problem& p, size_t r, float y) {
  if (std::fabs(y - p.ref[r]) <= p.tol[r]) return ::testing::AssertionSuccess();
  if (!p.ref_alt.empty() && std::fabs(y - p.ref_alt[r]) <= p.tol[r]) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << y << " is not within " << p.tol[r] << " of " << p.ref[r]
                                       << (p.ref_alt.empty() ? "" : fmt::format(" or {}", p.ref_alt[r]));
}

// Runs `fn` on the whole problem and on a tile sub-range; checks values and untouched columns.
void check(const Problem& p, const Entry& e, const char* what) {
  const int64_t ldy = p.n + 5, tiles = p.w.n_pad() / kTileN;
  std::vector<float> y(size_t(std::max<int64_t>(p.m, 1) * ldy), -7.0f);
  CodeGemmArgs a = p.args;
  a.m = p.m;
  a.y = y.data();
  a.ldy = ldy;
  e.fn(a, 0, tiles);
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      const size_t r = size_t(i * p.n + j);
      ASSERT_TRUE(near_ref(p, r, y[size_t(i * ldy + j)]))
          << what << " via " << e.name << " m=" << p.m << " at [" << i << ", " << j << "]";
    }
    for (int64_t j = p.n; j < ldy; ++j) ASSERT_EQ(y[size_t(i * ldy + j)], -7.0f) << e.name << " wrote past N";
  }
  if (p.m == 0) {
    ASSERT_EQ(y[0], -7.0f) << e.name << " wrote with m = 0";
  }
  if (tiles >= 3) {  // only tile 1: columns 16..31
    std::fill(y.begin(), y.end(), -7.0f);
    e.fn(a, 1, 2);
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < ldy; ++j) {
        const float v = y[size_t(i * ldy + j)];
        if (j >= 16 && j < 32) {
          ASSERT_TRUE(near_ref(p, size_t(i * p.n + j), v)) << e.name << " sub-range";
        } else {
          ASSERT_EQ(v, -7.0f) << e.name << " sub-range wrote column " << j;
        }
      }
  }
}

void check_all(const Problem& p, const char* what) {
  check(p, {"portable", kQuantGemmPortable.code_gemm}, what);
  for (const Entry& e : entries()) check(p, e, what);
}

// Tolerance from per-output magnitude sums T[m, n].
void set_tolerance(Problem& p, const std::vector<double>& T, double factor, double rel_extra) {
  p.tol.resize(T.size());
  for (size_t i = 0; i < T.size(); ++i)
    p.tol[i] = float((double(p.k) + 8) * std::ldexp(1.0, -24) * factor * T[i] + rel_extra * T[i] + std::ldexp(1.0, -120));
}

// Fp32 activations x [m, k] into p.xf, rows of kp floats zero-padded past k.
void set_float_activations(Problem& p, const std::vector<float>& x, int64_t kp) {
  p.xf.assign(size_t(std::max<int64_t>(p.m, 1) * kp), 0.0f);
  for (int64_t i = 0; i < p.m; ++i) std::memcpy(p.xf.data() + i * kp, x.data() + i * p.k, size_t(p.k) * 4);
}

// p.ref = float(Σ_c t) accumulated in double, and the magnitude sums T = Σ_c |t| it returns,
// with t = term(x[i, c], j, c) the double product of an fp32 activation and a weight.
template <class Term>
std::vector<double> float_reference(Problem& p, const std::vector<float>& x, Term term) {
  p.ref.resize(size_t(p.m * p.n));
  std::vector<double> T(size_t(p.m * p.n));
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < p.k; ++c) {
        const double t = term(double(x[size_t(i * p.k + c)]), j, c);
        acc += t;
        T[size_t(i * p.n + j)] += std::fabs(t);
      }
      p.ref[size_t(i * p.n + j)] = float(acc);
    }
  return T;
}

constexpr int64_t kMs[] = {0, 1, 2, 3, 5, 8, 9, 16, 17, 33, 64};

// MX: weights E4M3 (fp4_w false) or E2M1 codes with E8M0 scales; activations MXFP8 or MXFP4.
void run_mx(bool fp4_w, bool fp4_a, bool extreme) {
  const int64_t n = 37, k = 96, blocks = k / 32;
  const auto wf = randn(n * k, 11, 0.05f);
  std::vector<uint8_t> wc(size_t(n * k)), ws(size_t(n * blocks));
  quantize_mx(wf.data(), n, k, fp4_w ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp, wc.data(), ws.data());
  if (extreme)  // scales at the ends of E8M0's range, and a zero block of weights
    for (int64_t r = 0; r < n; ++r) {
      ws[size_t(r * blocks)] = uint8_t(r % 3 == 0 ? 0 : r % 3 == 1 ? 1 : 200);
      if (r == 5)
        for (int64_t c = 32; c < 64; ++c) wc[size_t(r * k + c)] = 0;
    }
  for (int64_t m : kMs) {
    Problem p;
    p.m = m, p.n = n, p.k = k;
    p.w = PackedCodes(fp4_w ? 4 : 8, n, k);
    for (int64_t r = 0; r < n; ++r) p.w.set_row(r, wc.data() + r * k);
    p.e8m0 = AlignedArray<uint8_t>(size_t(p.w.n_pad() * blocks));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t b = 0; b < blocks; ++b) p.e8m0[size_t(((r / 16) * blocks + b) * 16 + r % 16)] = ws[size_t(r * blocks + b)];
    const auto x = activations(m, k, 12 + uint32_t(m), extreme);
    p.xq.resize(size_t(std::max<int64_t>(m, 1) * k));
    std::vector<uint8_t> xsu(size_t(std::max<int64_t>(m, 1) * blocks));
    if (m) quantize_mx(x.data(), m, k, fp4_a ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp, p.xq.data(), xsu.data());
    p.xs.resize(xsu.size());
    for (size_t i = 0; i < xsu.size(); ++i) p.xs[i] = e8m0_to_f32(xsu[i]);
    p.ref.resize(size_t(m * n));
    if (m) {
      if (fp4_w)
        gemm_mxfp4_ref({m, n, k}, x.data(), wc.data(), ws.data(), fp4_a, p.ref.data());
      else
        gemm_mxfp8_ref({m, n, k}, x.data(), wc.data(), ws.data(), p.ref.data());
    }
    const float* wl = fp4_w ? kTables.fp4 : kTables.fp8;
    const float* xl = fp4_a ? kTables.fp4 : kTables.fp8;
    std::vector<double> T(size_t(m * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < k; ++c)
          T[size_t(i * n + j)] += std::fabs(double(xl[p.xq[size_t(i * k + c)]]) * p.xs[size_t(i * blocks + c / 32)] *
                                            wl[wc[size_t(j * k + c)]] * std::ldexp(1.0, ws[size_t(j * blocks + c / 32)] - 127));
    set_tolerance(p, T, 1.0, 0.0);
    CodeGemmArgs& a = p.args;
    a.xq = p.xq.data();
    a.x_lut = xl;
    a.x_bits = fp4_a ? 4 : 8;
    a.ldx = k;
    a.x_scale = p.xs.data();
    a.ldxs = blocks;
    a.w = &p.w;
    a.lut = wl;
    a.group = 32;
    a.scale_e8m0 = p.e8m0.data();
    SCOPED_TRACE(::testing::Message() << "fp4_w " << fp4_w << " fp4_a " << fp4_a << " extreme " << extreme);
    check_all(p, "MX");
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(CodeGemm, Mxfp8) {
  run_mx(false, false, false);
  run_mx(false, false, true);
}
TEST(CodeGemm, Mxfp4WithMxfp4Activations) {
  run_mx(true, true, false);
  run_mx(true, true, true);
}
TEST(CodeGemm, Mxfp4WithMxfp8Activations) {
  run_mx(true, false, false);
  run_mx(true, false, true);
}

// FP8 block (b = 32 here, K = 104: a short last block) with per-token-group activations,
// and a bias.
TEST(CodeGemm, Fp8BlockCodedActivations) {
  const int64_t n = 37, k = 104, b = 32, kb = (k + b - 1) / b;
  const auto wf = randn(n * k, 21);
  Fp8WeightQuant q = quantize_weight_fp8(wf.data(), n, k, Fp8Granularity::Block, b);
  const auto bias = randn(n, 22);
  for (int64_t m : kMs) {
    Problem p;
    p.m = m, p.n = n, p.k = k;
    p.w = PackedCodes(8, n, k);
    for (int64_t r = 0; r < n; ++r) p.w.set_row(r, q.q.data() + r * k);
    p.scale = TiledParams(n, kb);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < kb; ++j) p.scale.set(r, j, q.scale[size_t((r / b) * kb + j)]);
    p.bias = padded_row_vector(n);
    for (int64_t r = 0; r < n; ++r) p.bias[size_t(r)] = bias[size_t(r)];
    const auto x = activations(m, k, 23 + uint32_t(m), false);
    const int64_t kp = p.w.k_pad();
    std::vector<uint8_t> xq(size_t(std::max<int64_t>(m, 1) * k));
    p.xs.resize(size_t(std::max<int64_t>(m, 1) * kb));
    if (m) quantize_act_fp8_groups(x.data(), m, k, b, xq.data(), p.xs.data());
    p.xq.assign(size_t(std::max<int64_t>(m, 1) * kp), 0);
    for (int64_t i = 0; i < m; ++i) std::memcpy(p.xq.data() + i * kp, xq.data() + i * k, size_t(k));
    p.ref.resize(size_t(m * n));
    if (m) gemm_fp8_block_ref({m, n, k}, x.data(), q.q.data(), q.scale.data(), b, p.ref.data());
    std::vector<double> T(size_t(m * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        p.ref[size_t(i * n + j)] += bias[size_t(j)];
        for (int64_t c = 0; c < k; ++c)
          T[size_t(i * n + j)] += std::fabs(double(kTables.fp8[xq[size_t(i * k + c)]]) * p.xs[size_t(i * kb + c / b)] *
                                            kTables.fp8[q.q[size_t(j * k + c)]] * q.scale[size_t((j / b) * kb + c / b)]);
        T[size_t(i * n + j)] += std::fabs(bias[size_t(j)]);
      }
    set_tolerance(p, T, 1.0, 0.0);
    CodeGemmArgs& a = p.args;
    a.xq = p.xq.data();
    a.x_lut = kTables.fp8;
    a.ldx = kp;
    a.x_scale = p.xs.data();
    a.ldxs = kb;
    a.w = &p.w;
    a.lut = kTables.fp8;
    a.group = b;
    a.scale = &p.scale;
    a.col_bias = p.bias.data();
    check_all(p, "FP8 block");
    if (HasFatalFailure()) return;
  }
}

// FP8 per channel: fp32 activations (weight-only), exact in fp32 or rounded to BF16.
TEST(CodeGemm, Fp8PerChannelFloatActivations) {
  const int64_t n = 37, k = 100;
  const auto wf = randn(n * k, 31);
  Fp8WeightQuant q = quantize_weight_fp8(wf.data(), n, k, Fp8Granularity::Channel);
  for (bool bf16 : {false, true})
    for (int64_t m : kMs) {
      Problem p;
      p.m = m, p.n = n, p.k = k;
      p.w = PackedCodes(8, n, k);
      for (int64_t r = 0; r < n; ++r) p.w.set_row(r, q.q.data() + r * k);
      const int64_t kp = p.w.k_pad();
      p.scale = TiledParams(n, 1);
      for (int64_t r = 0; r < n; ++r) p.scale.set(r, 0, q.scale[size_t(r)]);
      const auto x = activations(m, k, 33 + uint32_t(m), false);
      set_float_activations(p, x, kp);
      const std::vector<double> T = float_reference(p, x, [&](double xv, int64_t j, int64_t c) {
        return xv * kTables.fp8[q.q[size_t(j * k + c)]] * q.scale[size_t(j)];
      });
      set_tolerance(p, T, 1.0, bf16 ? std::ldexp(1.0, -8) : 0.0);
      CodeGemmArgs& a = p.args;
      a.x = p.xf.data();
      a.ldx = kp;
      a.x_bf16_ok = bf16;
      a.w = &p.w;
      a.lut = kTables.fp8;
      a.group = kp;
      a.scale = &p.scale;
      SCOPED_TRACE(bf16);
      check_all(p, "FP8 per channel");
      if (HasFatalFailure()) return;
    }
}

// W4A16: signed codes (pack-quantized, per group 24 over K = 88: a short last group) and
// unsigned AWQ codes with zero points (per channel), fp32 or BF16-rounded activations.
TEST(CodeGemm, W4A16FloatActivations) {
  const int64_t n = 37, k = 88;
  for (int variant = 0; variant < 4; ++variant)
    for (bool bf16 : {false, true}) {
      const bool awq = variant == 1 || variant == 2, symmetric = variant == 3;
      const int64_t group = variant == 2 ? k : 24, groups = (k + group - 1) / group;
      // Random codes, zero points and scales: signed codes with signed zero points
      // (compressed-tensors asymmetric), unsigned with unsigned ones (AWQ), or signed codes
      // without zero points (symmetric: the kernels' other activation preparation).
      std::mt19937 rng(41 + uint32_t(variant));
      IntWeightQuant q;
      q.q.resize(size_t(n * k));
      q.zero.resize(size_t(n * groups));
      q.scale = randn(n * groups, 42, 0.01f);
      for (auto& v : q.q) v = int8_t(int(rng() % 16) - (awq ? 0 : 8));
      for (auto& z : q.zero) z = symmetric ? 0 : int8_t(int(rng() % 16) - (awq ? 0 : 8));
      for (int64_t m : kMs) {
        Problem p;
        p.m = m, p.n = n, p.k = k;
        p.w = PackedCodes(4, n, k);
        std::vector<uint8_t> codes(static_cast<size_t>(k));
        for (int64_t r = 0; r < n; ++r) {
          for (int64_t c = 0; c < k; ++c) codes[size_t(c)] = uint8_t(q.q[size_t(r * k + c)]) & 0xF;
          p.w.set_row(r, codes.data());
        }
        const int64_t kp = p.w.k_pad();
        p.scale = TiledParams(q.scale.data(), n, groups);
        std::vector<float> zf(q.zero.begin(), q.zero.end());
        p.zero = TiledParams(zf.data(), n, groups);
        const auto x = activations(m, k, 43 + uint32_t(m), false);
        set_float_activations(p, x, kp);
        p.ref.resize(size_t(m * n));
        if (m) gemm_w4a16_ref({m, n, k}, x.data(), q.q.data(), q.zero.data(), q.scale.data(), group, p.ref.data());
        // x_bf16_ok lets a kernel round x to BF16 (those without AVX512-BF16 do not): its result
        // may instead be the reference on x rounded to nearest-even BF16 (core/dtype.h), at the
        // same fp32 bound, so a kernel that rounds otherwise (truncates, flushes) fails.
        if (bf16 && m) {
          std::vector<float> xr = x;
          for (float& v : xr) v = bf16_to_f32(f32_to_bf16(v));
          p.ref_alt.resize(size_t(m * n));
          gemm_w4a16_ref({m, n, k}, xr.data(), q.q.data(), q.zero.data(), q.scale.data(), group, p.ref_alt.data());
        }
        std::vector<double> T(size_t(m * n));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j)
            for (int64_t c = 0; c < k; ++c) {
              const size_t g = size_t(j * groups + c / group);
              T[size_t(i * n + j)] += std::fabs(double(x[size_t(i * k + c)]) * q.scale[g]) *
                                      (std::fabs(double(q.q[size_t(j * k + c)])) + std::fabs(double(q.zero[g])));
            }
        set_tolerance(p, T, 2.0, 0.0);
        CodeGemmArgs& a = p.args;
        a.x = p.xf.data();
        a.ldx = kp;
        a.x_bf16_ok = bf16;
        a.w = &p.w;
        a.lut = awq ? kTables.int4u : kTables.int4s;
        a.group = group;
        a.scale = &p.scale;
        a.zero = symmetric ? nullptr : &p.zero;
        SCOPED_TRACE(::testing::Message() << "variant " << variant << " bf16 " << bf16);
        check_all(p, "W4A16");
        if (HasFatalFailure()) return;
      }
    }
}

// A row's W4A16 result must not depend on how many rows share the call: prefill (from 16 rows:
// the fp32 or BF16 panels) and decode (register tiles) sum the same products in the same
// chains and order. Activations span 2^±12 so that fp32 sums round (with similar magnitudes,
// BF16 × int4 sums are often exact in any order and would hide a changed order).
TEST(CodeGemm, W4A16RowsDoNotDependOnTheirCall) {
  const int64_t n = 40, k = 264, m = 19, group = 64, groups = (k + group - 1) / group;
  std::mt19937 rng(7);
  PackedCodes w(4, n, k);
  std::vector<uint8_t> codes(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    for (auto& c : codes) c = uint8_t(rng() % 16);
    w.set_row(r, codes.data());
  }
  const std::vector<float> sc = randn(n * groups, 8, 0.01f);
  const TiledParams scale(sc.data(), n, groups);
  const int64_t kp = w.k_pad();
  std::vector<float> x(size_t(m * kp), 0.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < k; ++c)
      x[size_t(i * kp + c)] = std::ldexp(float(int(rng() % 2001) - 1000) / 997.0f, int(rng() % 25) - 12);
  for (const Entry& e : entries())
    for (bool bf16 : {false, true}) {
      CodeGemmArgs a;
      a.ldx = kp;
      a.x_bf16_ok = bf16;
      a.w = &w;
      a.lut = kTables.int4s;
      a.group = group;
      a.scale = &scale;
      const int64_t tiles = w.n_pad() / kTileN;
      std::vector<float> all(static_cast<size_t>(m * n)), one(static_cast<size_t>(n));
      a.x = x.data(), a.m = m, a.y = all.data(), a.ldy = n;
      e.fn(a, 0, tiles);
      for (int64_t i = 0; i < m; ++i) {
        a.x = x.data() + i * kp, a.m = 1, a.y = one.data();
        e.fn(a, 0, tiles);
        for (int64_t j = 0; j < n; ++j)
          ASSERT_EQ(one[size_t(j)], all[size_t(i * n + j)])
              << e.name << (bf16 ? " bf16" : " fp32") << ": row " << i << " alone differs from the " << m
              << "-row call at column " << j;
      }
    }
}

// Tables the fast kernels cannot decode exactly (not BF16-representable) fall back to the
// portable tiles and still match.
TEST(CodeGemm, InexactTableFallsBack) {
  const int64_t n = 20, k = 64, m = 3;
  float lut[16];
  for (int i = 0; i < 16; ++i) lut[i] = 0.1f * float(i) - 0.7f;
  Problem p;
  p.m = m, p.n = n, p.k = k;
  p.w = PackedCodes(4, n, k);
  std::mt19937 rng(5);
  std::vector<uint8_t> wc(size_t(n * k));
  for (auto& c : wc) c = uint8_t(rng() & 0xF);
  for (int64_t r = 0; r < n; ++r) p.w.set_row(r, wc.data() + r * k);
  p.scale = TiledParams(n, 1);
  for (int64_t r = 0; r < n; ++r) p.scale.set(r, 0, 0.5f + float(r));
  const auto x = activations(m, k, 7, false);
  p.xf = x;
  const std::vector<double> T = float_reference(p, x, [&](double xv, int64_t j, int64_t c) {
    return xv * double(lut[wc[size_t(j * k + c)]] * (0.5f + float(j)));
  });
  set_tolerance(p, T, 2.0, 0.0);
  p.args.x = p.xf.data();
  p.args.ldx = k;
  p.args.w = &p.w;
  p.args.lut = lut;
  p.args.group = k;
  p.args.scale = &p.scale;
  check_all(p, "inexact table");
}

// The fast activation quantizers are bit-identical to the references: every E4M3/E2M1
// encoding on special values (zeros, subnormal grid points and midpoints, ties, the
// saturation edge, infinities, NaN) and 2^20 random bit patterns; whole rows with outliers,
// zero blocks and extreme magnitudes.
TEST(FpActQuant, EncodersMatchReference) {
  std::vector<float> v = {0.0f, -0.0f, 448.0f, 449.0f, 464.0f, 465.0f, 480.0f, 1e9f, -1e9f, INFINITY, -INFINITY,
                          NAN, -NAN, 6.0f, 5.0f, 7.0f, 0.25f, 0.75f, 2.5f, -2.5f, 1.25f, 1.75f, 3.5f, 5.5f};
  for (int i = -12; i <= 12; ++i)
    for (float f : {0.5f, 1.0f, 1.0625f, 1.125f, 1.1875f, 1.5f, 1.9375f})
      v.push_back(std::ldexp(f, i)), v.push_back(-std::ldexp(f, i));
  std::mt19937 rng(1);
  for (int i = 0; i < (1 << 20); ++i) {
    const uint32_t b = rng();
    float f;
    std::memcpy(&f, &b, 4);
    v.push_back(f);
    v.push_back(std::ldexp(float(rng() % 100000) / 1000.0f, int(rng() % 24) - 16));
  }
  for (float f : v) {
    ASSERT_EQ(encode_e4m3(f), f32_to_fp8_e4m3_rne(f)) << f;
    ASSERT_EQ(encode_e2m1(f), f32_to_fp4_e2m1_rne(f)) << f;
  }
  // Each row-quantizer set's own E4M3 encoder, through the static rule with s = 1 (x / 1 = x).
  std::vector<uint8_t> codes(v.size());
  for (const ActQuantKernels* kernels : act_quant_kernel_list(cpu_features())) {
    kernels->fp8_static(v.data(), int64_t(v.size()), 1.0f, codes.data());
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(codes[i], f32_to_fp8_e4m3_rne(v[i])) << kernels->name << " " << v[i];
  }
}

TEST(FpActQuant, RowsMatchReference) {
  const int64_t k = 320;
  auto x = randn(k, 3);
  for (int64_t i = 32; i < 64; ++i) x[size_t(i)] = 0;  // an all-zero block
  for (int64_t i = 64; i < 96; ++i) x[size_t(i)] *= 1e-30f;
  for (int64_t i = 96; i < 128; ++i) x[size_t(i)] *= 1e30f;
  for (int64_t i = 128; i < 160; ++i) x[size_t(i)] *= 1e-41f;  // subnormal inputs
  x[200] = 1000.0f;
  for (bool fp4 : {false, true}) {
    std::vector<uint8_t> c(static_cast<size_t>(k)), cr(static_cast<size_t>(k)), ur(static_cast<size_t>(k / 32));
    std::vector<float> s(static_cast<size_t>(k / 32));
    quantize_mx_row(x.data(), k, fp4, c.data(), s.data());
    quantize_mx(x.data(), 1, k, fp4 ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp, cr.data(), ur.data());
    EXPECT_EQ(c, cr) << fp4;
    for (int64_t b = 0; b < k / 32; ++b) EXPECT_EQ(s[size_t(b)], e8m0_to_f32(ur[size_t(b)])) << b;
  }
  // FP8 per group and static, through every row-quantizer set this CPU runs (groups of 100 and
  // the static row of K - 3 end in partial vectors).
  for (const ActQuantKernels* kernels : act_quant_kernel_list(cpu_features())) {
    SCOPED_TRACE(kernels->name);
    for (int64_t group : {int64_t(128), int64_t(100), k}) {
      const int64_t groups = (k + group - 1) / group;
      std::vector<uint8_t> c(static_cast<size_t>(k)), cr(static_cast<size_t>(k));
      std::vector<float> s(static_cast<size_t>(groups)), sr(static_cast<size_t>(groups));
      kernels->fp8_groups(x.data(), k, group, c.data(), s.data());
      quantize_act_fp8_groups(x.data(), 1, k, group, cr.data(), sr.data());
      EXPECT_EQ(c, cr) << group;
      EXPECT_EQ(s, sr) << group;
    }
    // Exact E4M3 ties after a true division by s = 3, 5, ..., 99 (group amax 448·s): x·(1/s)
    // would land an ulp off some of them and round the other way.
    std::vector<float> ties;
    for (int sc = 3; sc < 100; sc += 2) {
      ties.push_back(448.0f * float(sc));
      for (float t : {1.0625f, 1.1875f, 1.3125f, 1.4375f, 1.5625f, 1.6875f, 1.8125f, 1.9375f})
        for (int e : {-3, 0, 4}) ties.push_back(std::ldexp(t, e) * float(sc) * (e ? 1.0f : -1.0f));
    }
    const int64_t tk = int64_t(ties.size());
    std::vector<uint8_t> tc(ties.size()), tr(ties.size());
    std::vector<float> ts(size_t(tk / 25)), tsr(size_t(tk / 25));
    kernels->fp8_groups(ties.data(), tk, 25, tc.data(), ts.data());
    quantize_act_fp8_groups(ties.data(), 1, tk, 25, tr.data(), tsr.data());
    EXPECT_EQ(tc, tr);
    EXPECT_EQ(ts, tsr);
    std::vector<uint8_t> c(static_cast<size_t>(k));
    kernels->fp8_static(x.data(), k - 3, 0.03f, c.data());
    for (int64_t i = 0; i < k - 3; ++i)
      ASSERT_EQ(c[size_t(i)], f32_to_fp8_e4m3_rne(clampf(x[size_t(i)] / 0.03f, -kFp8E4M3Max, kFp8E4M3Max))) << i;
  }
}

// Not a test: a rough single-thread timing on a Qwen3-1.7B MLP shape (N 6144, K 2048) for
// decode (GB/s of weight codes + scales read) and prefill (GFLOP/s). Run by hand with
// --gtest_also_run_disabled_tests; figures on a shared machine are noisy.
TEST(CodeGemm, DISABLED_QuickTiming) {
  const int64_t n = 6144, k = 2048, blocks = k / 32;
  std::mt19937 rng(9);
  for (int variant = 0; variant < 4; ++variant) {  // MXFP4 (int8), W4A8_MXFP, MXFP8, FP8 weight-only
    const bool four = variant < 2;
    PackedCodes w(four ? 4 : 8, n, k);
    std::vector<uint8_t> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      for (auto& c : row) c = uint8_t(rng() & (four ? 0xF : 0x7E));
      w.set_row(r, row.data());
    }
    AlignedArray<uint8_t> e8m0(size_t(w.n_pad() * blocks));
    for (size_t i = 0; i < e8m0.size(); ++i) e8m0[i] = uint8_t(120 + rng() % 8);
    TiledParams scale(n, 1);
    for (int64_t r = 0; r < n; ++r) scale.set(r, 0, 0.01f);
    for (int64_t m : {int64_t(1), int64_t(4), int64_t(512)}) {
      const auto x = randn(m * k, 3);
      std::vector<uint8_t> xq(size_t(m * k));
      std::vector<float> xs(size_t(m * blocks));
      for (int64_t i = 0; i < m; ++i) quantize_mx_row(x.data() + i * k, k, variant == 0, xq.data() + i * k, xs.data() + i * blocks);
      std::vector<float> y(size_t(m * n));
      CodeGemmArgs a;
      if (variant == 3) {
        a.x = x.data();
        a.group = k;
        a.scale = &scale;
      } else {
        a.xq = xq.data();
        a.x_lut = variant == 0 ? kTables.fp4 : kTables.fp8;
        a.x_bits = variant == 0 ? 4 : 8;
        a.x_scale = xs.data();
        a.ldxs = blocks;
        a.group = 32;
        a.scale_e8m0 = e8m0.data();
      }
      a.ldx = k;
      a.m = m;
      a.w = &w;
      a.lut = four ? kTables.fp4 : kTables.fp8;
      a.y = y.data();
      a.ldy = n;
      const int reps = m >= 512 ? 1 : 20;
      auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) code_gemm_avx512(a, 0, w.n_pad() / 16);
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
      const double bytes = double(w.bytes()) + (variant == 3 ? 0.0 : double(e8m0.size()));
      std::printf("variant %d m %3ld: %.3f ms, %.1f GB/s, %.1f GFLOP/s\n", variant, long(m), sec * 1e3, bytes / sec / 1e9,
                  2.0 * double(m) * double(n) * double(k) / sec / 1e9);
    }
  }
}

}  // namespace
}  // namespace lowbit
