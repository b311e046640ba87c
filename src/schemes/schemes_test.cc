// Every quantized scheme, through make_linear, against the scalar reference GEMM of its math
// (kernels/reference/quant_gemm_ref.h) fed the canonical codes the checkpoint encodes: the
// scheme must decode the storage, repack, quantize activations and compute the same thing.
// Each case runs on every kernel path this CPU has (AMX, AVX-512 VNNI, AVX-512 tiles, AVX2,
// scalar), 1 and 3 threads, decode and prefill row counts, and shapes that leave partial
// tiles (N % 16 != 0) and padded K; W4A16 under both activation policies (expect_w4a16).
// Tolerance: 2e-5 × max|y_ref|. Activations are quantized by the same reference quantizer on
// both sides, so codes are identical; integer sums are exact on both sides; what differs is
// fp32 accumulation of group/block partial sums (the references sum in double): ~K·2^-24
// relative in the worst case, ~1e-6 for these K. Any decoding or layout bug is O(1).
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/int4_packing.h"
#include "core/quant_types.h"
#include "core/runtime_options.h"
#include "core/thread_pool.h"
#include "kernels/quant_gemm.h"
#include "kernels/reference/quant_gemm_ref.h"
#include "kernels/reference/quantize_ref.h"
#include "schemes/make_linear.h"

namespace lowbit {
namespace {

// Owns the bytes behind a LinearTensors.
struct Layer {
  std::vector<std::vector<uint8_t>> store;
  LinearTensors t;
  template <class T>
  TensorView view(const std::string& name, DType d, std::vector<int64_t> shape, const std::vector<T>& v) {
    store.emplace_back(v.size() * sizeof(T));
    std::memcpy(store.back().data(), v.data(), store.back().size());
    return TensorView{t.prefix + "." + name, d, std::move(shape), store.back().data()};
  }
  template <class T>
  void weight(DType d, std::vector<int64_t> shape, const std::vector<T>& v) { t.weight = view("weight", d, shape, v); }
  template <class T>
  void role(const std::string& r, DType d, std::vector<int64_t> shape, const std::vector<T>& v) {
    t.extra[r] = view(r, d, std::move(shape), v);
  }
};

std::vector<float> randn(int64_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<int8_t> random_codes(int64_t count, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(static_cast<size_t>(count));
  for (auto& x : v) x = int8_t(d(rng));
  return v;
}

// Activations with an outlier and an all-zero token.
std::vector<float> activations(int64_t m, int64_t k, uint32_t seed) {
  std::vector<float> x = randn(m * k, seed);
  x[0] = 12.0f;
  if (m > 1)
    for (int64_t i = 0; i < k; ++i) x[size_t(k + i)] = 0;
  return x;
}

// The CPU as each kernel path sees it: AMX; AVX-512 with VNNI (Zen4); AVX-512 without VNNI
// (the compiler-vectorised tiles); AVX2; scalar. Paths this CPU lacks are skipped.
struct CpuPath {
  const char* name;
  Isa isa;
  bool vnni;
};
constexpr CpuPath kCpuPaths[] = {{"amx", Isa::Amx, true},
                                 {"avx512+vnni", Isa::Avx512, true},
                                 {"avx512", Isa::Avx512, false},
                                 {"avx2", Isa::Avx2, false},
                                 {"scalar", Isa::Scalar, false}};

bool capped(const CpuPath& path, CpuFeatures& c) {
  c = cpu_features();
  if (int(path.isa) > int(c.max_isa()) || (path.vnni && !c.vnni())) return false;
  if (path.isa < Isa::Amx) c.amx_tile = c.amx_int8 = c.amx_bf16 = c.amx_permitted = false;
  if (!path.vnni) c.avx512_vnni = false;
  if (path.isa < Isa::Avx512) c.avx512f = c.avx512bw = c.avx512vl = c.avx512dq = false;
  if (path.isa < Isa::Avx2) c.avx2 = false;
  return c.max_isa() == path.isa;
}

// A row's output must not depend on how many rows share the call: the engine batches a
// request's tokens with others' in ever-changing groups, and greedy decoding must not change
// with them. So `y` (all m rows in one call) must equal, bit for bit, the rows computed in
// calls of 1, 2 and 3 rows. AMX is exempt: its tiles sum in another order than the vector
// kernels that take the short calls (integer schemes stay exact even there, but the float
// ones do not), and the engine's invariance tests run on the vector kernels.
void expect_rows_independent(const LinearMethod& lin, const std::vector<float>& x, int64_t m, int64_t n, int64_t k,
                             const std::vector<float>& y, int64_t ldy, ThreadPool& pool, const char* path) {
  for (int64_t rows : {1, 2, 3}) {
    std::vector<float> part(size_t(m * ldy), -7.0f);
    for (int64_t r0 = 0; r0 < m; r0 += rows)
      lin.apply(x.data() + r0 * k, k, std::min(rows, m - r0), part.data() + r0 * ldy, ldy, pool);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        ASSERT_EQ(part[size_t(i * ldy + j)], y[size_t(i * ldy + j)])
            << lin.describe() << " on " << path << ": row " << i << " of " << m << " differs when computed in calls of "
            << rows << " rows, at column " << j;
  }
}

// Runs the layer with every kernel set and thread count, comparing with `ref` [m, n].
void expect_scheme(const SchemeSpec& spec, const Layer& layer, int64_t m, int64_t n, int64_t k,
                   const std::vector<float>& x, const std::vector<float>& ref) {
  float ymax = 0;
  for (float v : ref) ymax = std::max(ymax, std::fabs(v));
  const float tol = 2e-5f * ymax + 1e-30f;
  for (const CpuPath& path : kCpuPaths) {
    CpuFeatures cpu;
    if (!capped(path, cpu)) continue;
    auto lin = make_linear(spec, layer.t, {k, n}, cpu);
    for (int threads : {1, 3}) {
      ThreadPool pool(threads);
      const int64_t ldy = n + 3;  // a row stride wider than N
      std::vector<float> y(size_t(m * ldy), -7.0f);
      lin->apply(x.data(), k, m, y.data(), ldy, pool);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
          ASSERT_NEAR(y[size_t(i * ldy + j)], ref[size_t(i * n + j)], tol)
              << lin->describe() << " on " << path.name << " threads " << threads << " at [" << i << ", " << j << "]";
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = n; j < ldy; ++j) ASSERT_EQ(y[size_t(i * ldy + j)], -7.0f) << "wrote past N";
      if (path.isa != Isa::Amx) expect_rows_independent(*lin, x, m, n, k, y, ldy, pool, path.name);
    }
  }
}

// W4A16 under each activation policy (runtime_options().w4a16_activations, read at load):
// "float" against gemm_w4a16_ref (ref_float), "bf16" against it on BF16-rounded x, "int8" against gemm_w4a16_int8act_ref, which in
// turn must stay within the activation rounding bound of ref_float: |x − s_x·xq| ≤ s_x/2 per
// element (x/s_x's own fp32 rounding adds < 2^-17·s_x), so
//   |y_int8 − y_float| ≤ 0.5001·s_x·Σ_k |w[n, k]| + 2^-20·Σ_k |x·w|,
// the last term covering both references' fp32 roundings (w, output). x goes to the scheme;
// x_ref, codes wq (canonical: signed, or AWQ's unsigned) and zero are in group order.
void expect_w4a16(const SchemeSpec& spec, const Layer& layer, int64_t m, int64_t n, int64_t k,
                  const std::vector<float>& x, const std::vector<float>& x_ref, const std::vector<int8_t>& wq,
                  const int8_t* zero, const std::vector<float>& scale, int64_t group,
                  const std::vector<float>& ref_float) {
  struct Restore {
    std::string saved = runtime_options().w4a16_activations;
    ~Restore() { runtime_options().w4a16_activations = saved; }
  } restore;
  runtime_options().w4a16_activations = "float";
  expect_scheme(spec, layer, m, n, k, x, ref_float);
  // "bf16": the same reference on BF16-rounded activations, at the float bound (products of
  // BF16 values and int4 codes are exact; only fp32 accumulation differs). Unrounded
  // activations miss it by ~2^-9 of |x·w| per term.
  {
    std::vector<float> xb(x_ref.size()), ref_bf16(size_t(m * n));
    for (size_t i = 0; i < xb.size(); ++i) xb[i] = bf16_to_f32(f32_to_bf16(x_ref[i]));
    gemm_w4a16_ref({m, n, k}, xb.data(), wq.data(), zero, scale.data(), group, ref_bf16.data());
    runtime_options().w4a16_activations = "bf16";
    expect_scheme(spec, layer, m, n, k, x, ref_bf16);
  }
  std::vector<float> ref(size_t(m * n));
  gemm_w4a16_int8act_ref({m, n, k}, x_ref.data(), wq.data(), zero, scale.data(), group, ref.data());
  const int64_t groups = (k + group - 1) / group;
  for (int64_t i = 0; i < m; ++i) {
    float amax = 0;
    for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(x_ref[size_t(i * k + c)]));
    const double sx = amax / 127.0f;
    for (int64_t j = 0; j < n; ++j) {
      double sum_w = 0, sum_xw = 0;
      for (int64_t c = 0; c < k; ++c) {
        const int64_t g = j * groups + c / group;
        const double w = (double(wq[size_t(j * k + c)]) - (zero ? zero[g] : 0)) * scale[size_t(g)];
        sum_w += std::fabs(w);
        sum_xw += std::fabs(w * x_ref[size_t(i * k + c)]);
      }
      ASSERT_NEAR(ref[size_t(i * n + j)], ref_float[size_t(i * n + j)],
                  0.5001 * sx * sum_w + std::ldexp(sum_xw, -20) + 1e-30)
          << "int8 activations outside their rounding bound at [" << i << ", " << j << "]";
    }
  }
  runtime_options().w4a16_activations = "int8";
  expect_scheme(spec, layer, m, n, k, x, ref);
}

SchemeSpec spec_of(SchemeKind kind, int w_bits, int a_bits, WeightEncoding enc = WeightEncoding::Native) {
  SchemeSpec s;
  s.kind = kind;
  s.weight.bits = w_bits;
  s.encoding = enc;
  s.origin = "test";
  if (a_bits) s.activation = QuantArgs{a_bits, NumKind::Int, Granularity::Token, 0, 0, true, true};
  return s;
}

constexpr int64_t kM = 5, kN = 37, kK = 96;
// Row counts for the integer schemes: decode (the GEMV kernels) and prefill (AMX from 16 rows,
// VNNI's blocked path from 9).
constexpr int64_t kRowCounts[] = {kM, 19};

TEST(Schemes, W8A8StaticFoldedMsModelSlim) {
  for (int64_t m : kRowCounts) {
    SCOPED_TRACE(m);
    for (DType deq_dtype : {DType::F32, DType::I64}) {
      Layer L;
      L.t.prefix = "layer";
      const auto wq = random_codes(kN * kK, -127, 127, 1);
      L.weight(DType::I8, {kN, kK}, wq);
      const float s = 0.05f, off = -3.0f;
      const auto qb32 = random_codes(kN, -100, 100, 2);
      std::vector<int32_t> qb(qb32.begin(), qb32.end());
      std::vector<float> deq = randn(kN, 3, 1e-3f);
      for (auto& d : deq) d = std::fabs(d) + 1e-4f;
      L.role("quant_bias", DType::I32, {kN}, qb);
      L.role("input_scale", DType::F32, {1}, std::vector<float>{s});
      L.role("input_zero", DType::F32, {1}, std::vector<float>{off});
      if (deq_dtype == DType::F32) {
        L.role("deq_scale", DType::F32, {kN}, deq);
      } else {
        std::vector<int64_t> bits(kN);
        for (int64_t i = 0; i < kN; ++i) {
          uint32_t b;
          std::memcpy(&b, &deq[size_t(i)], 4);
          bits[size_t(i)] = int64_t(b);
        }
        L.role("deq_scale", DType::I64, {kN}, bits);
      }
      const auto x = activations(m, kK, 4);
      std::vector<float> ref(m * kN);
      gemm_w8a8_static_ref({m, kN, kK}, x.data(), wq.data(), s, off, qb.data(), deq.data(), ref.data());
      SchemeSpec spec = spec_of(SchemeKind::W8A8Static, 8, 8);
      expect_scheme(spec, L, m, kN, kK, x, ref);
    }
  }
}

TEST(Schemes, W8A8StaticUnfoldedCompressedTensors) {
  for (int64_t m : kRowCounts) {
    SCOPED_TRACE(m);
    for (bool asym : {false, true}) {
      Layer L;
      L.t.prefix = "layer";
      const auto wq = random_codes(kN * kK, -127, 127, 5);
      L.weight(DType::I8, {kN, kK}, wq);
      std::vector<float> ws = randn(kN, 6, 1e-2f);
      for (auto& v : ws) v = std::fabs(v) + 1e-3f;
      const float s = 0.04f, zp = asym ? 7.0f : 0.0f;
      L.role("weight_scale", DType::F32, {kN, 1}, ws);
      L.role("input_scale", DType::F32, {1}, std::vector<float>{s});
      if (asym) L.role("input_zero", DType::I8, {1}, std::vector<int8_t>{7});
      std::vector<float> bias = randn(kN, 7);
      L.t.bias = L.view("bias", DType::F32, {kN}, bias);
      const auto x = activations(m, kK, 8);
      // compressed-tensors: xq = clamp(rne(x/s + zp)), y = Σ (xq − zp)·wq · s · s_w + bias.
      std::vector<float> ref(m * kN);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < kN; ++j) {
          double acc = 0;
          for (int64_t t = 0; t < kK; ++t) {
            const float q = round_half_even(clampf(x[size_t(i * kK + t)] / s + zp, -128, 127));
            acc += (double(q) - zp) * wq[size_t(j * kK + t)];
          }
          ref[size_t(i * kN + j)] = float(acc * s * ws[size_t(j)] + bias[size_t(j)]);
        }
      SchemeSpec spec = spec_of(SchemeKind::W8A8StaticUnfolded, 8, 8);
      spec.activation->dynamic = false;
      spec.activation->symmetric = !asym;
      expect_scheme(spec, L, m, kN, kK, x, ref);
    }
  }
}

TEST(Schemes, W8A8DynamicAndW4A4Dynamic) {
  for (int64_t m : kRowCounts) {
    SCOPED_TRACE(m);
    for (int bits : {8, 4}) {
      for (bool per_tensor_scale : {false, true}) {
        Layer L;
        L.t.prefix = "layer";
        const int qmax = bits == 8 ? 127 : 7;
        const auto wq = random_codes(kN * kK, -qmax - 1, qmax, 9);
        L.weight(DType::I8, {kN, kK}, wq);
        std::vector<float> ws = randn(per_tensor_scale ? 1 : kN, 10, 1e-2f);
        for (auto& v : ws) v = std::fabs(v) + 1e-3f;
        L.role("weight_scale", DType::F32, per_tensor_scale ? std::vector<int64_t>{1} : std::vector<int64_t>{kN, 1}, ws);
        L.role("weight_zero", DType::F32, {kN, 1}, std::vector<float>(kN, 0.0f));
        std::vector<float> wfull(kN);
        for (int64_t j = 0; j < kN; ++j) wfull[size_t(j)] = ws[per_tensor_scale ? 0 : size_t(j)];
        const auto x = activations(m, kK, 11);
        std::vector<float> ref(m * kN);
        gemm_dynamic_int_ref({m, kN, kK}, x.data(), wq.data(), wfull.data(), bits, bits, ref.data());
        SchemeSpec spec = bits == 8 ? spec_of(SchemeKind::W8A8Dynamic, 8, 8)
                                    : spec_of(SchemeKind::W4A4Dynamic, 4, 4, WeightEncoding::Int4InInt8);
        expect_scheme(spec, L, m, kN, kK, x, ref);
      }
    }
  }
}

TEST(Schemes, W4A8DynamicPerChannelAndPerGroupRowPairs) {
  for (int64_t m : kRowCounts) {
    SCOPED_TRACE(m);
    for (bool grouped : {false, true}) {
      Layer L;
      L.t.prefix = "layer";
      const int64_t n = 38, group = 32, g = kK / group;  // row pairs need even N
      const auto wq = random_codes(n * kK, -8, 7, 12);
      const auto packed = pack_int4_row_pairs(wq.data(), n, kK);
      L.weight(DType::I8, {n / 2, kK}, packed);
      std::vector<float> ws = randn(n, 13, 1e-2f), second = randn(n * g, 14, 1.0f);
      for (auto& v : ws) v = std::fabs(v) + 1e-3f;
      L.role("weight_scale", DType::F32, {n, 1}, ws);
      L.role("weight_zero", DType::F32, {n, 1}, std::vector<float>(n, 0.0f));
      SchemeSpec spec = spec_of(SchemeKind::W4A8Dynamic, 4, 8, WeightEncoding::Int4PackedRowPairs);
      if (grouped) {
        L.role("weight_scale_second", DType::F32, {n, g}, second);
        L.role("weight_zero_second", DType::F32, {n, g}, std::vector<float>(n * g, 0.0f));
        spec.weight.granularity = Granularity::Group;
        spec.weight.group_size = group;
      }
      const auto x = activations(m, kK, 15);
      std::vector<float> ref(m * n);
      gemm_w4a8_dynamic_ref({m, n, kK}, x.data(), wq.data(), ws.data(), grouped ? second.data() : nullptr, group,
                            ref.data());
      expect_scheme(spec, L, m, n, kK, x, ref);
    }
  }
}

// W4A16 as compressed-tensors (signed, ±zero points) and AWQ (unsigned, zeros) store it.
TEST(Schemes, W4A16PackQuantizedAndAwq) {
  const int64_t n = 40, k = 100, group = 32, g = 4;  // ragged last group (ct allows K % g)
  for (int variant = 0; variant < 4; ++variant) {
    const bool awq = variant == 3, asym = variant >= 2, channel = variant == 1;
    const int64_t kk = awq ? 128 : k, gg = channel ? 1 : (awq ? 4 : g), grp = channel ? 0 : group;
    Layer L;
    L.t.prefix = "layer";
    const auto wq = awq ? random_codes(n * kk, 0, 15, 16) : random_codes(n * kk, -8, 7, 16);
    std::vector<float> s = randn(n * gg, 17, 1e-2f);
    std::vector<int8_t> z = asym ? (awq ? random_codes(n * gg, 0, 15, 18) : random_codes(n * gg, -8, 7, 18))
                                 : std::vector<int8_t>();
    SchemeSpec spec;
    spec.kind = SchemeKind::W4A16;
    spec.origin = "test";
    spec.weight = QuantArgs{4, NumKind::Int, channel ? Granularity::Channel : Granularity::Group, grp, 0, !asym, false};
    if (awq) {
      spec.encoding = WeightEncoding::Int4AwqGemm;
      std::vector<uint8_t> u(wq.begin(), wq.end()), uz(z.begin(), z.end());
      L.weight(DType::I32, {kk, n / 8}, pack_int4_awq_gemm(u.data(), n, kk));
      std::vector<uint16_t> st(size_t(n * gg));  // transposed [G, N] fp16
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < gg; ++j) {
          st[size_t(j * n + r)] = f32_to_f16(s[size_t(r * gg + j)]);
          s[size_t(r * gg + j)] = f16_to_f32(st[size_t(j * n + r)]);
        }
      L.role("weight_scale", DType::F16, {gg, n}, st);
      L.role("weight_zero", DType::I32, {gg, n / 8}, pack_awq_zeros(uz.data(), n, gg));
    } else {
      spec.encoding = WeightEncoding::Int4PackedInt32K;
      L.weight(DType::I32, {n, (kk + 7) / 8}, pack_int4_int32_k(wq.data(), n, kk));
      L.role("weight_scale", DType::F32, {n, gg}, s);
      if (asym) L.role("weight_zero", DType::I32, {(n + 7) / 8, gg}, pack_int4_zero_points_n(z.data(), n, gg));
    }
    for (int64_t m : kRowCounts) {
      const auto x = activations(m, kk, 19);
      std::vector<float> ref(size_t(m * n));
      gemm_w4a16_ref({m, n, kk}, x.data(), wq.data(), asym ? z.data() : nullptr, s.data(), channel ? kk : group,
                     ref.data());
      SCOPED_TRACE("variant " + std::to_string(variant) + " m " + std::to_string(m));
      expect_w4a16(spec, L, m, n, kk, x, x, wq, asym ? z.data() : nullptr, s, channel ? kk : group, ref);
    }
  }
}

TEST(Schemes, W4A16ActorderGroupIndex) {
  const int64_t n = 24, k = 64, group = 16, g = 4;
  Layer L;
  L.t.prefix = "layer";
  const auto wq = random_codes(n * k, -8, 7, 20);
  const std::vector<float> s = randn(n * g, 21, 1e-2f);
  std::vector<int32_t> g_idx(k);
  std::vector<int32_t> order(k);
  for (int64_t i = 0; i < k; ++i) order[size_t(i)] = int32_t(i);
  std::shuffle(order.begin(), order.end(), std::mt19937(22));
  for (int64_t p = 0; p < k; ++p) g_idx[size_t(order[size_t(p)])] = int32_t(p / group);
  L.weight(DType::I32, {n, k / 8}, pack_int4_int32_k(wq.data(), n, k));
  L.role("weight_scale", DType::F32, {n, g}, s);
  L.role("weight_g_idx", DType::I32, {k}, g_idx);
  SchemeSpec spec;
  spec.kind = SchemeKind::W4A16;
  spec.origin = "test";
  spec.encoding = WeightEncoding::Int4PackedInt32K;
  spec.weight = QuantArgs{4, NumKind::Int, Granularity::Group, group, 0, true, false};
  spec.has_g_idx = true;
  // Group order for the int8-activation reference: column order[p] of x and W at p.
  std::vector<int8_t> wq_grouped(wq.size());
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) wq_grouped[size_t(j * k + p)] = wq[size_t(j * k + order[size_t(p)])];
  for (int64_t m : kRowCounts) {
    const auto x = activations(m, k, 23);
    std::vector<float> ref(size_t(m * n)), x_grouped(x.size());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p) x_grouped[size_t(i * k + p)] = x[size_t(i * k + order[size_t(p)])];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t t = 0; t < k; ++t)
          acc += double(x[size_t(i * k + t)]) * (float(wq[size_t(j * k + t)]) * s[size_t(j * g + g_idx[size_t(t)])]);
        ref[size_t(i * n + j)] = float(acc);
      }
    SCOPED_TRACE(m);
    expect_w4a16(spec, L, m, n, k, x, x_grouped, wq_grouped, nullptr, s, group, ref);
  }
  // A g_idx whose groups are not of group_size columns is refused, naming the tensor.
  g_idx[0] = (g_idx[0] + 1) % int32_t(g);
  L.role("weight_g_idx", DType::I32, {k}, g_idx);
  try {
    make_linear(spec, L.t, {k, n}, cpu_features());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer.weight_g_idx"), std::string::npos) << e.what();
  }
}

TEST(Schemes, Mxfp8AndMxfp4) {
  const int64_t k = 128;
  for (int variant = 0; variant < 3; ++variant) {  // MXFP8, W4A8_MXFP, W4A4_MXFP4
    const bool w4 = variant > 0, a4 = variant == 2;
    Layer L;
    L.t.prefix = "layer";
    const auto wf = randn(kN * k, 24);
    std::vector<uint8_t> codes(size_t(kN * k)), scales(size_t(kN * k / 32));
    quantize_mx(wf.data(), kN, k, w4 ? MxElem::E2M1 : MxElem::E4M3, w4 ? MxScaleRule::MsModelSlimFp4 : MxScaleRule::MsModelSlimFp8,
                codes.data(), scales.data());
    if (w4)
      L.weight(DType::U8, {kN, k / 2}, pack_fp4_k(codes.data(), kN, k));
    else
      L.weight(DType::F8_E4M3, {kN, k}, codes);
    L.role("weight_scale", DType::U8, {kN, k / 32}, scales);
    SchemeSpec spec;
    spec.kind = w4 ? SchemeKind::Mxfp4 : SchemeKind::Mxfp8;
    spec.origin = "test";
    spec.encoding = w4 ? WeightEncoding::Fp4PackedK : WeightEncoding::Native;
    spec.weight = QuantArgs{w4 ? 4 : 8, w4 ? NumKind::FloatE2M1 : NumKind::FloatE4M3, Granularity::Block, 32};
    spec.activation = QuantArgs{a4 ? 4 : 8, a4 ? NumKind::FloatE2M1 : NumKind::FloatE4M3, Granularity::Block, 32};
    SCOPED_TRACE(variant);
    for (int64_t m : kRowCounts) {  // decode tiles, and the fp32 path's widened panels from 16 rows
      const auto x = activations(m, k, 25);
      std::vector<float> ref(size_t(m * kN));
      if (w4)
        gemm_mxfp4_ref({m, kN, k}, x.data(), codes.data(), scales.data(), a4, ref.data());
      else
        gemm_mxfp8_ref({m, kN, k}, x.data(), codes.data(), scales.data(), ref.data());
      expect_scheme(spec, L, m, kN, k, x, ref);
    }
    // An E8M0 scale of 0xFF (NaN) is a load error naming the tensor.
    scales[5] = 0xFF;
    L.role("weight_scale", DType::U8, {kN, k / 32}, scales);
    try {
      make_linear(spec, L.t, {k, kN}, cpu_features());
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("layer.weight_scale"), std::string::npos) << e.what();
    }
  }
}

// FP8 at m rows (kRowCounts: decode tiles, and the fp32 path's widened panels from 16 rows).
void fp8_block_and_per_channel(int64_t m) {
  SCOPED_TRACE(m);
  const int64_t n = 40, k = 256, b = 128;
  const auto wf = randn(n * k, 26);
  const auto x = activations(m, k, 27);
  {  // Block 128×128 weights, per-token-group activations: the reference GEMM.
    Fp8WeightQuant q = quantize_weight_fp8(wf.data(), n, k, Fp8Granularity::Block, b);
    Layer L;
    L.t.prefix = "layer";
    L.weight(DType::F8_E4M3, {n, k}, q.q);
    L.role("weight_scale", DType::F32, {1, 2}, q.scale);
    SchemeSpec spec;
    spec.kind = SchemeKind::Fp8Block;
    spec.origin = "test";
    spec.weight = QuantArgs{8, NumKind::FloatE4M3, Granularity::Block, b, b};
    spec.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Group, b, 0, true, true};
    std::vector<float> ref(size_t(m * n));
    gemm_fp8_block_ref({m, n, k}, x.data(), q.q.data(), q.scale.data(), b, ref.data());
    expect_scheme(spec, L, m, n, k, x, ref);
  }
  // Per-channel weights: weight-only, per-token dynamic and per-tensor static activations.
  Fp8WeightQuant q = quantize_weight_fp8(wf.data(), n, k, Fp8Granularity::Channel);
  for (int act = 0; act < 3; ++act) {
    Layer L;
    L.t.prefix = "layer";
    L.weight(DType::F8_E4M3, {n, k}, q.q);
    L.role("weight_scale", DType::F32, {n, 1}, q.scale);
    SchemeSpec spec;
    spec.kind = SchemeKind::Fp8;
    spec.origin = "test";
    spec.weight = QuantArgs{8, NumKind::FloatE4M3, Granularity::Channel};
    const float in_scale = 0.03f;
    if (act == 1) spec.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Token, 0, 0, true, true};
    if (act == 2) {
      spec.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Tensor, 0, 0, true, false};
      L.role("input_scale", DType::F32, {1}, std::vector<float>{in_scale});
    }
    // Independent: decode everything to double; activations by the scheme's definition.
    std::vector<float> ref(size_t(m * n));
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x.data() + i * k;
      float amax = 0;
      for (int64_t t = 0; t < k; ++t) amax = std::max(amax, std::fabs(xi[t]));
      const float s = act == 1 ? amax / 448.0f : in_scale;
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t t = 0; t < k; ++t) {
          double xv = xi[t];
          if (act && s > 0) xv = double(fp8_e4m3_to_f32(f32_to_fp8_e4m3_rne(clampf(xi[t] / s, -448, 448)))) * s;
          if (act && s == 0) xv = 0;
          acc += xv * fp8_e4m3_to_f32(q.q[size_t(j * k + t)]);
        }
        ref[size_t(i * n + j)] = float(acc * q.scale[size_t(j)]);
      }
    }
    SCOPED_TRACE(act);
    expect_scheme(spec, L, m, n, k, x, ref);
  }
}

TEST(Schemes, Fp8BlockAndPerChannel) {
  for (int64_t m : kRowCounts) fp8_block_and_per_channel(m);
}

// Online quantization: a float weight under a quantized spec is quantized at load with the
// reference quantizer (per-channel QMax, OCP MX), bit for bit, then runs the same kernels.
TEST(Schemes, OnlineQuantizationMatchesReferenceQuantizer) {
  const int64_t n = kN, k = 128;
  const auto wf = randn(n * k, 28, 0.05f);
  std::vector<uint16_t> wbf(wf.size());
  std::vector<float> wr(wf.size());  // the bf16 values as fp32
  for (size_t i = 0; i < wf.size(); ++i) {
    wbf[i] = f32_to_bf16(wf[i]);
    wr[i] = bf16_to_f32(wbf[i]);
  }
  const auto x = activations(kM, k, 29);
  Layer L;
  L.t.prefix = "layer";
  L.weight(DType::BF16, {n, k}, wbf);
  {
    IntWeightQuant q = quantize_weight_sym(wr.data(), n, k, 8, 0, IntScaleRule::QMax);
    std::vector<float> ref(kM * n);
    gemm_w8a8_dynamic_ref({kM, n, k}, x.data(), q.q.data(), q.scale.data(), ref.data());
    expect_scheme(spec_of(SchemeKind::W8A8Dynamic, 8, 8), L, kM, n, k, x, ref);
  }
  {
    IntWeightQuant q = quantize_weight_sym(wr.data(), n, k, 4, 32, IntScaleRule::QMax);
    std::vector<float> ref(kM * n);
    gemm_w4a16_ref({kM, n, k}, x.data(), q.q.data(), nullptr, q.scale.data(), 32, ref.data());
    SchemeSpec spec;
    spec.kind = SchemeKind::W4A16;
    spec.origin = "online";
    spec.weight = QuantArgs{4, NumKind::Int, Granularity::Group, 32};
    expect_w4a16(spec, L, kM, n, k, x, x, q.q, nullptr, q.scale, 32, ref);
  }
  {
    std::vector<uint8_t> codes(size_t(n * k)), scales(size_t(n * k / 32));
    quantize_mx(wr.data(), n, k, MxElem::E2M1, MxScaleRule::Ocp, codes.data(), scales.data());
    std::vector<float> ref(kM * n);
    gemm_mxfp4_ref({kM, n, k}, x.data(), codes.data(), scales.data(), false, ref.data());
    SchemeSpec spec;
    spec.kind = SchemeKind::Mxfp4;
    spec.origin = "online";
    spec.weight = QuantArgs{4, NumKind::FloatE2M1, Granularity::Block, 32};
    spec.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Block, 32, 0, true, true};
    expect_scheme(spec, L, kM, n, k, x, ref);
  }
}

// Bad tensors are refused with the layer, the tensor and what was expected.
TEST(Schemes, BadTensorsNameLayerAndTensor) {
  auto expect_error = [](const SchemeSpec& spec, const Layer& L, int64_t n, int64_t k, const std::string& part) {
    try {
      make_linear(spec, L.t, {k, n}, cpu_features());
      ADD_FAILURE() << "expected an error containing " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  Layer L;
  L.t.prefix = "model.layers.0.mlp.up_proj";
  L.weight(DType::I8, {16, 64}, random_codes(16 * 64, -100, 100, 30));
  const SchemeSpec dyn = spec_of(SchemeKind::W8A8Dynamic, 8, 8);
  expect_error(dyn, L, 16, 64, "needs a 'weight_scale' tensor");
  L.role("weight_scale", DType::F32, {8, 1}, std::vector<float>(8, 1.0f));
  expect_error(dyn, L, 16, 64, "up_proj.weight_scale");
  L.role("weight_scale", DType::F32, {16, 1}, std::vector<float>(16, 1.0f));
  L.role("weight_zero", DType::F32, {16, 1}, std::vector<float>(16, 0.5f));
  expect_error(dyn, L, 16, 64, "asymmetric weights are not supported");
  L.t.extra.erase("weight_zero");
  expect_error(dyn, L, 16, 128, "shape [16, 64], expected [16, 128]");
  // int4 stored one per int8 must hold [-8, 7].
  expect_error(spec_of(SchemeKind::W4A4Dynamic, 4, 4, WeightEncoding::Int4InInt8), L, 16, 64, "is not int4");
  // MX needs K % 32 == 0.
  Layer M;
  M.t.prefix = "mx";
  M.weight(DType::F8_E4M3, {16, 48}, std::vector<uint8_t>(16 * 48, 0x38));
  SchemeSpec mx;
  mx.kind = SchemeKind::Mxfp8;
  mx.origin = "test";
  mx.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Block, 32, 0, true, true};
  expect_error(mx, M, 16, 48, "not a multiple of the MX block size 32");
  // Online quantization refuses a non-finite weight, naming the tensor and the row.
  for (uint16_t bad : {uint16_t(0x7FC0), uint16_t(0xFF80)}) {  // BF16 NaN, −inf
    Layer F;
    F.t.prefix = "model.layers.0.mlp.up_proj";
    std::vector<uint16_t> w(16 * 64, f32_to_bf16(0.25f));
    w[3 * 64 + 5] = bad;
    F.weight(DType::BF16, {16, 64}, w);
    SchemeSpec w4 = spec_of(SchemeKind::W4A16, 4, 0);
    w4.weight = QuantArgs{4, NumKind::Int, Granularity::Group, 32};
    SchemeSpec mx4;
    mx4.kind = SchemeKind::Mxfp4;
    mx4.origin = "online";
    mx4.weight = QuantArgs{4, NumKind::FloatE2M1, Granularity::Block, 32};
    mx4.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Block, 32, 0, true, true};
    for (const SchemeSpec& spec : {spec_of(SchemeKind::W8A8Dynamic, 8, 8), spec_of(SchemeKind::W4A8Dynamic, 4, 8), w4, mx4}) {
      expect_error(spec, F, 16, 64, "'model.layers.0.mlp.up_proj.weight'");
      expect_error(spec, F, 16, 64, "row 3 holds a NaN or an infinity");
    }
  }
}

}  // namespace
}  // namespace lowbit
