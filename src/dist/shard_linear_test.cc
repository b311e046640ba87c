// Tensor-parallel sharding of one linear layer (dist/shard_linear.h), for every scheme and
// encoding the repo loads: the full layer and each shard are built with make_linear and run on
// the same activations (decode and prefill row counts), for 2-way, 3-way and uneven splits
// (boundaries at units 1 and 3 of 4) along both axes.
//  - Output splits: the shards' outputs, concatenated, are bit-identical to the full output.
//    Every output row is computed from the same codes and scales by the same per-row
//    arithmetic; the kernels vectorise across K or across the 16 rows of a tile with the same
//    operation order in every lane, so where a row sits in its tile does not change its value.
//  - Input splits: Σ shards = full within 2e-5 · max Σ_r |y_r| (fp32 accumulation order: each
//    shard sums its own columns and the all-reduce adds the partials), plus, where a rule
//    quantizes over the shard's columns instead of all of K, its rounding bound
//    (input_extra_tolerance).
//  - Refusals name the tensor; a FLOAT Input-split weight outlives its source.
#include "dist/shard_linear.h"

#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <span>

#include "core/cpu_features.h"
#include "core/int4_packing.h"
#include "core/runtime_options.h"
#include "core/thread_pool.h"
#include "io/test_util.h"
#include "kernels/reference/quantize_ref.h"
#include "schemes/make_linear.h"

namespace lowbit::dist {
namespace {

using lowbit::testing::expect_error;

constexpr const char* kPrefix = "model.layers.0.mlp.down_proj";

// A layer's tensors and the bytes behind them: put("weight" | "bias" | any other role, ...).
struct Layer {
  std::vector<std::vector<uint8_t>> bytes;
  LinearTensors t;
  Layer() { t.prefix = kPrefix; }
  template <class T>
  void put(const std::string& role, DType d, std::vector<int64_t> shape, const std::vector<T>& v) {
    auto& b = bytes.emplace_back(v.size() * sizeof(T));
    std::memcpy(b.data(), v.data(), b.size());
    const TensorView view{t.prefix + "." + role, d, std::move(shape), b.data()};
    if (role == "weight") t.weight = view;
    else if (role == "bias") t.bias = view;
    else t.extra[role] = view;
  }
};

std::vector<float> randn(int64_t count, uint32_t seed, float scale = 1.0f, bool positive = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = positive ? std::fabs(d(rng)) + scale / 8 : d(rng);
  return v;
}

// Integer codes and scales as the writers make them (kernels/reference/quantize_ref.h).
IntWeightQuant int_weights(int64_t n, int64_t k, int bits, int64_t group, uint32_t seed) {
  const std::vector<float> w = randn(n * k, seed);
  return quantize_weight_sym(w.data(), n, k, bits, group, IntScaleRule::QMax);
}

// How an Input split's activations (or weights) are quantized differently from the full layer.
enum class Act { Exact, IntToken, Fp8Token };

struct Case {
  std::string name;
  SchemeSpec spec;
  Layer L;
  int64_t n = 0, k = 0;
  Act act = Act::Exact;
  int act_qmax = 0;     // IntToken: 127 or 7
  int weight_qmax = 0;  // online per-channel weights, requantized over each shard's columns
};
using CasePtr = std::unique_ptr<Case>;

CasePtr make_case(std::string name, SchemeKind kind, int64_t n, int64_t k, WeightEncoding enc = WeightEncoding::Native) {
  auto c = std::make_unique<Case>();
  c->name = std::move(name);
  c->spec.kind = kind;
  c->spec.encoding = enc;
  c->spec.origin = "test";
  c->n = n;
  c->k = k;
  return c;
}
// W4A16 under runtime_options().w4a16_activations == "int8" quantizes activations per token.
void int8_w4a16_activations(Case& c) {
  if (runtime_options().w4a16_activations != "int8") return;
  c.act = Act::IntToken;
  c.act_qmax = 127;
}
QuantArgs token_act(int bits) { return QuantArgs{bits, NumKind::Int, Granularity::Token, 0, 0, true, true}; }

// Activations with an outlier and an all-zero token.
std::vector<float> activations(int64_t m, int64_t k, uint32_t seed) {
  std::vector<float> x = randn(m * k, seed);
  x[0] = 12.0f;
  for (int64_t i = 0; i < k; ++i) x[size_t(k + i)] = 0;
  return x;
}

// y [m, N] for x's rows (ldx apart, in_features() each; default: packed rows).
std::vector<float> run(const LinearMethod& lin, const std::vector<float>& x, int64_t m, const float* x0 = nullptr,
                       int64_t ldx = 0) {
  ThreadPool pool(2);
  std::vector<float> y(size_t(m * lin.out_features()), -7.0f);
  lin.apply(x0 ? x0 : x.data(), ldx ? ldx : lin.in_features(), m, y.data(), lin.out_features(), pool);
  return y;
}

// The full layer's effective weights W[j, c] = y(e_c)[j] − y(0)[j]: a one-hot row quantizes
// exactly under the per-token and per-block dynamic rules (amax 1 → the largest code), so this
// reads back the dequantized weights of any encoding, to fp32 rounding, far below the bounds.
std::vector<float> effective_weights(const LinearMethod& lin, int64_t n, int64_t k) {
  std::vector<float> x(size_t((k + 1) * k), 0.0f);
  for (int64_t c = 0; c < k; ++c) x[size_t(c * k + c)] = 1.0f;
  const std::vector<float> y = run(lin, x, k + 1);
  std::vector<float> w(size_t(n * k));
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < n; ++j) w[size_t(j * k + c)] = y[size_t(c * n + j)] - y[size_t(k * n + j)];
  return w;
}

// Beyond fp32 reordering, an Input split may round differently where a scale is computed from
// the shard's columns. Per-token int activations: shard r uses s_r = max|x_r|/qmax ≤ s (the full
// row's), so |x − x̂| ≤ s/2 on both sides and |Σ_r y_r − y| ≤ s·Σ_c |W[j, c]|. FP8 E4M3 per token:
// |x − x̂| ≤ 2^-4|x| + s·2^-10 (3 mantissa bits; subnormal step 2^-9·s), both sides:
// Σ_c (2^-3|x_c| + 2^-9·s)|W[j, c]|. Online per-channel weights requantized per shard
// (s_w,r ≤ s_w = max|W_j|/qmax_w): + s_w·Σ|x| + K·s·s_w/2 (the cross term).
double input_extra_tolerance(const Case& c, const std::vector<float>& x, const std::vector<float>& w, int64_t i,
                             int64_t j) {
  double amax = 0, sum_x = 0, sum_w = 0, wmax = 0, fp8 = 0;
  for (int64_t t = 0; t < c.k; ++t) amax = std::max(amax, double(std::fabs(x[size_t(i * c.k + t)])));
  for (int64_t t = 0; t < c.k; ++t) {
    const double xv = std::fabs(x[size_t(i * c.k + t)]), wv = std::fabs(w[size_t(j * c.k + t)]);
    sum_x += xv;
    sum_w += wv;
    wmax = std::max(wmax, wv);
    fp8 += (xv / 8 + amax / 448 / 512) * wv;
  }
  const double sx = c.act == Act::IntToken ? amax / c.act_qmax : 0;
  double tol = c.act == Act::IntToken ? sx * sum_w : c.act == Act::Fp8Token ? fp8 : 0;
  if (c.weight_qmax) {
    const double sw = wmax / c.weight_qmax;
    tol += sw * sum_x + double(c.k) * sx * sw / 2;
  }
  return tol;
}

// Boundaries 0 < b < extent at the given fractions of the extent's units, plus 0 and extent.
std::vector<int64_t> boundaries(int64_t extent, int64_t unit, std::initializer_list<double> cuts) {
  const int64_t units = (extent + unit - 1) / unit;
  std::vector<int64_t> b = {0};
  for (double f : cuts) {
    const int64_t v = int64_t(f * double(units)) * unit;
    if (v > b.back() && v < extent) b.push_back(v);
  }
  b.push_back(extent);
  return b;
}
const std::initializer_list<double> kCuts[] = {{0.5}, {1.0 / 3, 2.0 / 3}, {0.25, 0.75}};

void expect_shards(const Case& c, ShardAxis axis, std::span<const std::initializer_list<double>> cut_sets = kCuts) {
  const CpuFeatures& cpu = cpu_features();
  const auto full = make_linear(c.spec, c.L.t, {c.k, c.n}, cpu);
  const std::vector<float> w = axis == ShardAxis::Input && (c.act != Act::Exact || c.weight_qmax)
                                   ? effective_weights(*full, c.n, c.k)
                                   : std::vector<float>();
  const int64_t extent = axis == ShardAxis::Output ? c.n : c.k, unit = shard_unit(c.spec, axis);
  for (int64_t m : {5, 19}) {
    const std::vector<float> x = activations(m, c.k, 40);
    const std::vector<float> y = run(*full, x, m);
    for (auto cuts : cut_sets) {
      const std::vector<int64_t> b = boundaries(extent, unit, cuts);
      ASSERT_GE(b.size(), 3u) << c.name << ": too few units to split";
      std::vector<float> sum(y.size(), 0.0f), abs_sum(y.size(), 0.0f);
      for (size_t s = 0; s + 1 < b.size(); ++s) {
        const ShardSplit split{axis, b[s], b[s + 1], {c.k, c.n}, s == 1};  // not rank 0 adds the bias
        SCOPED_TRACE(fmt::format("{} {} shard [{}, {}) m {}", c.name, axis == ShardAxis::Output ? "output" : "input",
                                 b[s], b[s + 1], m));
        const LinearTensors ts = shard_linear_tensors(c.spec, c.L.t, split);
        const LinearShape local = local_shape(split);
        const auto lin = make_linear(c.spec, ts, local, cpu);
        // An Input shard sees only its own columns of x (row stride the full K).
        const std::vector<float> ys =
            axis == ShardAxis::Input ? run(*lin, x, m, x.data() + b[s], c.k) : run(*lin, x, m);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < local.out_features; ++j) {
            const float v = ys[size_t(i * local.out_features + j)];
            if (axis == ShardAxis::Output) {
              ASSERT_EQ(v, y[size_t(i * c.n + b[s] + j)]) << "at [" << i << ", " << b[s] + j << "]";
            } else {
              sum[size_t(i * c.n + j)] += v;
              abs_sum[size_t(i * c.n + j)] += std::fabs(v);
            }
          }
      }
      if (axis != ShardAxis::Input) continue;
      const float reorder = 2e-5f * *std::max_element(abs_sum.begin(), abs_sum.end()) + 1e-30f;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < c.n; ++j) {
          const double tol = reorder + (w.empty() ? 0 : input_extra_tolerance(c, x, w, i, j));
          ASSERT_NEAR(sum[size_t(i * c.n + j)], y[size_t(i * c.n + j)], tol)
              << c.name << " input split " << fmt::format("{}", fmt::join(b, ",")) << " m " << m << " at [" << i
              << ", " << j << "]";
        }
    }
  }
}

void expect_all_splits(const Case& c) {
  expect_shards(c, ShardAxis::Output);
  expect_shards(c, ShardAxis::Input);
}

// ---- Cases, as each format hands its tensors over (formats/*.cc).
constexpr int64_t kN = 37, kK = 128;

CasePtr float_case(DType dt) {
  auto c = make_case(dt == DType::BF16 ? "FLOAT bf16" : "FLOAT f32", SchemeKind::Float, kN, kK);
  const std::vector<float> w = randn(kN * kK, 1, 0.1f);
  if (dt == DType::BF16) {
    std::vector<uint16_t> b(w.size());
    for (size_t i = 0; i < w.size(); ++i) b[i] = f32_to_bf16(w[i]);
    c->L.put("weight", DType::BF16, {kN, kK}, b);
  } else {
    c->L.put("weight", DType::F32, {kN, kK}, w);
  }
  c->L.put("bias", DType::F32, {kN}, randn(kN, 2));
  return c;
}

CasePtr w8a8_static_folded(DType deq_dtype) {  // msmodelslim W8A8
  auto c = make_case("W8A8 static folded", SchemeKind::W8A8Static, kN, kK);
  c->spec.activation = QuantArgs{8, NumKind::Int, Granularity::Tensor, 0, 0, false, false};
  c->L.put("weight", DType::I8, {kN, kK}, int_weights(kN, kK, 8, 0, 3).q);
  std::vector<int32_t> qb(kN);  // float bias and zero-point correction, as large as real ones
  for (int64_t i = 0; i < kN; ++i) qb[size_t(i)] = int32_t(5000 - 271 * i);
  c->L.put("quant_bias", DType::I32, {kN}, qb);
  c->L.put("input_scale", DType::F32, {1}, std::vector<float>{0.05f});
  c->L.put("input_zero", DType::F32, {1}, std::vector<float>{-3.0f});
  const std::vector<float> deq = randn(kN, 5, 1e-3f, true);
  if (deq_dtype == DType::F32) {
    c->L.put("deq_scale", DType::F32, {kN}, deq);
  } else {  // older fp16 models: the fp32 bits in the low half of an I64
    std::vector<int64_t> bits(deq.size());
    for (size_t i = 0; i < deq.size(); ++i) {
      uint32_t u;
      std::memcpy(&u, &deq[i], 4);
      bits[i] = u;
    }
    c->L.put("deq_scale", DType::I64, {kN}, bits);
  }
  return c;
}

CasePtr w8a8_static_unfolded() {  // compressed-tensors int-quantized, static asymmetric activations
  auto c = make_case("W8A8 static unfolded", SchemeKind::W8A8StaticUnfolded, kN, kK);
  c->spec.activation = QuantArgs{8, NumKind::Int, Granularity::Tensor, 0, 0, false, false};
  const IntWeightQuant q = int_weights(kN, kK, 8, 0, 6);
  c->L.put("weight", DType::I8, {kN, kK}, q.q);
  c->L.put("weight_scale", DType::F32, {kN, 1}, q.scale);
  c->L.put("input_scale", DType::F32, {1}, std::vector<float>{0.04f});
  c->L.put("input_zero", DType::I8, {1}, std::vector<int8_t>{7});
  c->L.put("bias", DType::F32, {kN}, randn(kN, 8));
  return c;
}

CasePtr int_dynamic(int bits) {  // msmodelslim W8A8_DYNAMIC / W4A4_DYNAMIC
  auto c = make_case(bits == 8 ? "W8A8 dynamic" : "W4A4 dynamic", bits == 8 ? SchemeKind::W8A8Dynamic : SchemeKind::W4A4Dynamic,
                     kN, kK, bits == 8 ? WeightEncoding::Native : WeightEncoding::Int4InInt8);
  c->spec.weight.bits = bits;
  c->spec.activation = token_act(bits);
  const IntWeightQuant q = int_weights(kN, kK, bits, 0, 9);
  c->L.put("weight", DType::I8, {kN, kK}, q.q);
  c->L.put("weight_scale", DType::F32, {kN, 1}, q.scale);
  c->L.put("weight_zero", DType::F32, {kN, 1}, std::vector<float>(kN, 0.0f));
  c->L.put("bias", DType::F32, {kN}, randn(kN, 11));
  c->act = Act::IntToken;
  c->act_qmax = bits == 8 ? 127 : 7;
  return c;
}

CasePtr w4a8_row_pairs(bool grouped) {  // msmodelslim v1.0.0 W4A8_DYNAMIC
  const int64_t n = 38, group = 32, g = kK / group;
  auto c = make_case(grouped ? "W4A8 per-group" : "W4A8 per-channel", SchemeKind::W4A8Dynamic, n, kK,
                     WeightEncoding::Int4PackedRowPairs);
  c->spec.weight.bits = 4;
  c->spec.activation = token_act(8);
  const IntWeightQuant q = int_weights(n, kK, 4, 0, 12);
  c->L.put("weight", DType::I8, {n / 2, kK}, pack_int4_row_pairs(q.q.data(), n, kK));
  c->L.put("weight_scale", DType::F32, {n, 1}, q.scale);
  c->L.put("weight_zero", DType::F32, {n, 1}, std::vector<float>(n, 0.0f));
  if (grouped) {
    c->spec.weight.granularity = Granularity::Group;
    c->spec.weight.group_size = group;
    c->L.put("weight_scale_second", DType::F32, {n, g}, randn(n * g, 14, 1.0f, true));
    c->L.put("weight_zero_second", DType::I64, {n, g}, std::vector<int64_t>(size_t(n * g), 0));
  }
  c->act = Act::IntToken;
  c->act_qmax = 127;
  return c;
}

// compressed-tensors pack-quantized W4A16: 0 symmetric per group, 1 per channel, 2 asymmetric,
// 3 with a trivial actorder g_idx (k / group).
CasePtr w4a16_pack_quantized(int variant) {
  const int64_t n = 40, group = 32, g = variant == 1 ? 1 : kK / group;
  static const char* kNames[] = {"W4A16 pack-quantized sym", "W4A16 pack-quantized channel",
                                 "W4A16 pack-quantized asym", "W4A16 pack-quantized g_idx"};
  auto c = make_case(kNames[variant], SchemeKind::W4A16, n, kK, WeightEncoding::Int4PackedInt32K);
  c->spec.weight = QuantArgs{4, NumKind::Int, variant == 1 ? Granularity::Channel : Granularity::Group,
                             variant == 1 ? 0 : group, 0, variant != 2, false};
  const std::vector<float> w = randn(n * kK, 15);
  const IntWeightQuant q = variant == 2 ? quantize_weight_asym_ct(w.data(), n, kK, 4, group)
                                        : int_weights(n, kK, 4, variant == 1 ? 0 : group, 15);
  c->L.put("weight", DType::I32, {n, kK / 8}, pack_int4_int32_k(q.q.data(), n, kK));
  c->L.put("weight_scale", DType::F32, {n, g}, q.scale);
  if (variant == 2) c->L.put("weight_zero", DType::I32, {(n + 7) / 8, g}, pack_int4_zero_points_n(q.zero.data(), n, g));
  if (variant == 3) {
    c->spec.has_g_idx = true;
    std::vector<int32_t> idx(kK);
    for (int64_t t = 0; t < kK; ++t) idx[size_t(t)] = int32_t(t / group);
    c->L.put("weight_g_idx", DType::I32, {kK}, idx);
  }
  int8_w4a16_activations(*c);
  return c;
}

CasePtr awq() {  // AutoAWQ GEMM: transposed qweight [K, N/8], scales [G, N], qzeros [G, N/8]
  const int64_t n = 64, group = 32, g = kK / group;
  auto c = make_case("AWQ", SchemeKind::W4A16, n, kK, WeightEncoding::Int4AwqGemm);
  c->spec.weight = QuantArgs{4, NumKind::Int, Granularity::Group, group, 0, false, false};
  const std::vector<float> w = randn(n * kK, 18);
  const IntWeightQuant q = quantize_weight_awq(w.data(), n, kK, group);
  const std::vector<uint8_t> u(q.q.begin(), q.q.end()), uz(q.zero.begin(), q.zero.end());
  c->L.put("weight", DType::I32, {kK, n / 8}, pack_int4_awq_gemm(u.data(), n, kK));
  std::vector<uint16_t> s(size_t(g * n));  // transposed [G, N] fp16
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < g; ++j) s[size_t(j * n + r)] = f32_to_f16(q.scale[size_t(r * g + j)]);
  c->L.put("weight_scale", DType::F16, {g, n}, s);
  c->L.put("weight_zero", DType::I32, {g, n / 8}, pack_awq_zeros(uz.data(), n, g));
  int8_w4a16_activations(*c);
  return c;
}

CasePtr mx(int variant) {  // msmodelslim W8A8_MXFP8, W4A8_MXFP, W4A4_MXFP4
  const bool w4 = variant > 0, a4 = variant == 2;
  static const char* kNames[] = {"MXFP8", "MXFP4 (W4A8_MXFP)", "MXFP4 (W4A4_MXFP4)"};
  auto c = make_case(kNames[variant], w4 ? SchemeKind::Mxfp4 : SchemeKind::Mxfp8, kN, kK,
                     w4 ? WeightEncoding::Fp4PackedK : WeightEncoding::Native);
  c->spec.weight = QuantArgs{w4 ? 4 : 8, w4 ? NumKind::FloatE2M1 : NumKind::FloatE4M3, Granularity::Block, 32};
  c->spec.activation = QuantArgs{a4 ? 4 : 8, a4 ? NumKind::FloatE2M1 : NumKind::FloatE4M3, Granularity::Block, 32};
  const auto wf = randn(kN * kK, 20);
  std::vector<uint8_t> codes(size_t(kN * kK)), scales(size_t(kN * kK / 32));
  quantize_mx(wf.data(), kN, kK, w4 ? MxElem::E2M1 : MxElem::E4M3,
              w4 ? MxScaleRule::MsModelSlimFp4 : MxScaleRule::MsModelSlimFp8, codes.data(), scales.data());
  if (w4)
    c->L.put("weight", DType::U8, {kN, kK / 2}, pack_fp4_k(codes.data(), kN, kK));
  else
    c->L.put("weight", DType::F8_E4M3, {kN, kK}, codes);
  c->L.put("weight_scale", DType::U8, {kN, kK / 32}, scales);
  c->L.put("bias", DType::F32, {kN}, randn(kN, 21));
  return c;  // activation MX blocks of 32 never straddle a boundary: same codes, Act::Exact
}

CasePtr fp8_channel(int act) {  // compressed-tensors float-quantized: weight-only, per-token, static
  static const char* kNames[] = {"FP8 weight-only", "FP8 per-token", "FP8 static"};
  auto c = make_case(kNames[act], SchemeKind::Fp8, kN, kK);
  c->spec.weight = QuantArgs{8, NumKind::FloatE4M3, Granularity::Channel};
  const auto wf = randn(kN * kK, 22);
  Fp8WeightQuant q = quantize_weight_fp8(wf.data(), kN, kK, Fp8Granularity::Channel);
  c->L.put("weight", DType::F8_E4M3, {kN, kK}, q.q);
  c->L.put("weight_scale", DType::F32, {kN, 1}, q.scale);
  if (act == 1) {
    c->spec.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Token, 0, 0, true, true};
    c->act = Act::Fp8Token;
  }
  if (act == 2) {
    c->spec.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Tensor, 0, 0, true, false};
    c->L.put("input_scale", DType::F32, {1}, std::vector<float>{0.03f});
  }
  c->L.put("bias", DType::F32, {kN}, randn(kN, 23));
  return c;
}

CasePtr fp8_block() {  // Qwen3-FP8 style, with 32×32 blocks so both axes have four units
  const int64_t n = 128, b = 32;
  auto c = make_case("FP8 block", SchemeKind::Fp8Block, n, kK);
  c->spec.weight = QuantArgs{8, NumKind::FloatE4M3, Granularity::Block, b, b};
  c->spec.activation = QuantArgs{8, NumKind::FloatE4M3, Granularity::Group, b, 0, true, true};
  const auto wf = randn(n * kK, 24);
  Fp8WeightQuant q = quantize_weight_fp8(wf.data(), n, kK, Fp8Granularity::Block, b);
  c->L.put("weight", DType::F8_E4M3, {n, kK}, q.q);
  c->L.put("weight_scale", DType::F32, {n / b, kK / b}, q.scale);
  return c;  // activation groups of 32 never straddle a boundary: Act::Exact
}

// A float checkpoint's layer, handed to online quantization.
class StubFloatFormat final : public Format {
 public:
  explicit StubFloatFormat(const Layer& L) : L_(L) {}
  std::string_view name() const override { return "stub-float"; }
  SchemeSpec spec_for(const std::string&) const override {
    SchemeSpec s;
    s.origin = "stub:float";
    return s;
  }
  LinearTensors tensors_for(const std::string& prefix, bool has_bias) const override {
    LinearTensors t = L_.t;
    if (!has_bias) t.bias.reset();
    return t;
  }

 private:
  const Layer& L_;
};

// Online quantization: the spec names a quantized kind while the tensors are bf16.
CasePtr online(const std::string& method) {
  const int64_t k = 512;  // w4a16's groups of 128: four along K
  auto c = make_case("online " + method, SchemeKind::Float, kN, k);
  const std::vector<float> w = randn(kN * k, 25, 0.05f);
  std::vector<uint16_t> b(w.size());
  for (size_t i = 0; i < w.size(); ++i) b[i] = f32_to_bf16(w[i]);
  c->L.put("weight", DType::BF16, {kN, k}, b);
  c->L.put("bias", DType::F32, {kN}, randn(kN, 26));
  c->spec = make_online_quant_format(std::make_unique<StubFloatFormat>(c->L), method)->spec_for(kPrefix);
  if (c->spec.kind == SchemeKind::W4A16) int8_w4a16_activations(*c);
  if (c->spec.kind == SchemeKind::W8A8Dynamic || c->spec.kind == SchemeKind::W4A8Dynamic ||
      c->spec.kind == SchemeKind::W4A4Dynamic) {
    c->act = Act::IntToken;
    c->act_qmax = c->spec.activation->bits == 8 ? 127 : 7;
    c->weight_qmax = c->spec.weight.bits == 8 ? 127 : 7;
  }
  return c;
}

TEST(ShardLinear, FloatAndStaticActivationSchemes) {
  for (auto& c : {float_case(DType::BF16), float_case(DType::F32), w8a8_static_folded(DType::F32),
                  w8a8_static_folded(DType::I64), w8a8_static_unfolded()})
    expect_all_splits(*c);
}

TEST(ShardLinear, DynamicIntSchemes) {
  for (auto& c : {int_dynamic(8), int_dynamic(4), w4a8_row_pairs(false), w4a8_row_pairs(true)}) expect_all_splits(*c);
}

TEST(ShardLinear, W4A16PackQuantizedAndAwq) {
  for (int variant = 0; variant < 4; ++variant) expect_all_splits(*w4a16_pack_quantized(variant));
  expect_all_splits(*awq());
}

TEST(ShardLinear, MxAndFp8) {
  for (auto& c : {mx(0), mx(1), mx(2), fp8_channel(0), fp8_channel(1), fp8_channel(2), fp8_block()})
    expect_all_splits(*c);
}

TEST(ShardLinear, OnlineQuantizedFloat) {
  for (const auto& [method, what] : online_quantization_methods()) expect_all_splits(*online(method));
}

// shard_unit is what the checks enforce, per encoding and axis.
TEST(ShardLinear, Units) {
  EXPECT_EQ(shard_unit(float_case(DType::F32)->spec, ShardAxis::Input), 1);
  EXPECT_EQ(shard_unit(w4a16_pack_quantized(0)->spec, ShardAxis::Input), 32);
  EXPECT_EQ(shard_unit(w4a16_pack_quantized(1)->spec, ShardAxis::Input), 8);
  EXPECT_EQ(shard_unit(w4a16_pack_quantized(0)->spec, ShardAxis::Output), 1);
  EXPECT_EQ(shard_unit(w4a16_pack_quantized(2)->spec, ShardAxis::Output), 8);
  EXPECT_EQ(shard_unit(awq()->spec, ShardAxis::Output), 8);
  EXPECT_EQ(shard_unit(w4a8_row_pairs(false)->spec, ShardAxis::Output), 2);
  EXPECT_EQ(shard_unit(mx(1)->spec, ShardAxis::Input), 32);
  EXPECT_EQ(shard_unit(fp8_block()->spec, ShardAxis::Output), 32);
  EXPECT_EQ(shard_unit(online("w4a16")->spec, ShardAxis::Input), 128);
}

// Boundaries that cut a group, block, packed byte or word are refused, naming the tensor.
TEST(ShardLinear, RefusesBoundariesInsideUnits) {
  auto refuse = [](const Case& c, ShardAxis axis, int64_t at, const std::string& tensor, const std::string& why) {
    const int64_t extent = axis == ShardAxis::Output ? c.n : c.k;
    SCOPED_TRACE(c.name + " at " + std::to_string(at));
    expect_error([&] { shard_linear_tensors(c.spec, c.L.t, {axis, 0, at, {c.k, c.n}}); },
                 {std::string(kPrefix) + "." + tensor + "'", why, std::to_string(at)});
    expect_error([&] { shard_linear_tensors(c.spec, c.L.t, {axis, at, extent, {c.k, c.n}, false}); },
                 {std::string(kPrefix) + "." + tensor + "'", why});
  };
  refuse(*mx(0), ShardAxis::Input, 48, "weight_scale", "MX block of 32");
  refuse(*mx(1), ShardAxis::Input, 33, "weight", "packed fp4 byte");
  refuse(*w4a16_pack_quantized(1), ShardAxis::Input, 12, "weight", "packed int32 word");
  refuse(*w4a16_pack_quantized(0), ShardAxis::Input, 48, "weight_scale", "quantization group of 32");
  refuse(*w4a16_pack_quantized(2), ShardAxis::Output, 12, "weight_zero", "zero-point int32 word of 8 rows");
  refuse(*w4a8_row_pairs(true), ShardAxis::Output, 7, "weight", "int4 row pair");
  refuse(*w4a8_row_pairs(true), ShardAxis::Input, 40, "weight_scale_second", "quantization group of 32");
  refuse(*awq(), ShardAxis::Output, 20, "weight", "AWQ int32 word");
  refuse(*awq(), ShardAxis::Input, 40, "weight_scale", "quantization group of 32");
  refuse(*fp8_block(), ShardAxis::Output, 48, "weight_scale", "FP8 block of 32 rows");
  refuse(*fp8_block(), ShardAxis::Input, 48, "weight_scale", "FP8 block of 32 columns");
}

TEST(ShardLinear, ActOrderGroupIndex) {
  // Act-order groups that each lie inside one half: a K split at 64 keeps them, rebased.
  auto c = w4a16_pack_quantized(3);
  std::vector<int32_t> idx(kK), order(kK);
  for (int64_t t = 0; t < kK; ++t) order[size_t(t)] = int32_t(t);
  std::shuffle(order.begin(), order.begin() + 64, std::mt19937(27));
  std::shuffle(order.begin() + 64, order.end(), std::mt19937(28));
  for (int64_t p = 0; p < kK; ++p) idx[size_t(order[size_t(p)])] = int32_t(p / 32);
  c->L.put("weight_g_idx", DType::I32, {kK}, idx);
  const std::initializer_list<double> halves[] = {{0.5}};
  expect_shards(*c, ShardAxis::Input, halves);
  // A 3-way split at 32 and 64 would cut groups 0 and 1 apart from their columns.
  expect_error([&] { shard_linear_tensors(c->spec, c->L.t, {ShardAxis::Input, 0, 32, {kK, c->n}}); },
               {std::string(kPrefix) + ".weight_g_idx'", "outside this shard's groups"});
  // Shuffled across the boundary: a column of this shard belongs to another shard's group.
  std::shuffle(order.begin(), order.end(), std::mt19937(29));
  for (int64_t p = 0; p < kK; ++p) idx[size_t(order[size_t(p)])] = int32_t(p / 32);
  c->L.put("weight_g_idx", DType::I32, {kK}, idx);
  expect_error([&] { shard_linear_tensors(c->spec, c->L.t, {ShardAxis::Input, 0, 64, {kK, c->n}}); },
               {std::string(kPrefix) + ".weight_g_idx'", "outside this shard's groups"});
  // Output splits keep all of K, so any g_idx passes as it is.
  expect_shards(*c, ShardAxis::Output);
}

TEST(ShardLinear, RefusesUnknownRolesAndBadSplits) {
  auto c = int_dynamic(8);
  c->L.put("smooth_factor", DType::F32, {kN}, std::vector<float>(kN, 1.0f));
  expect_error([&] { shard_linear_tensors(c->spec, c->L.t, {ShardAxis::Output, 0, 8, {kK, kN}}); },
               {std::string(kPrefix) + ".smooth_factor'", "unknown"});
  auto d = int_dynamic(8);
  expect_error([&] { shard_linear_tensors(d->spec, d->L.t, {ShardAxis::Input, 64, 64, {kK, kN}}); }, {"empty"});
  expect_error([&] { shard_linear_tensors(d->spec, d->L.t, {ShardAxis::Input, 0, 64, {kK + 8, kN}}); },
               {std::string(kPrefix) + ".weight'", "cannot be split"});
  expect_error([&] { shard_linear_tensors(d->spec, d->L.t, {ShardAxis::Input, 0, 64, {}}); }, {"full layer shape"});
}

// Input axis: only the rank with add_bias keeps bias / quant_bias; the others drop the bias and
// get int32 zeros for quant_bias (W8A8 static still needs the role). Output slices are views.
TEST(ShardLinear, BiasOnceAndViews) {
  auto c = w8a8_static_folded(DType::F32);
  const LinearTensors none = shard_linear_tensors(c->spec, c->L.t, {ShardAxis::Input, 0, 64, {kK, kN}, false});
  const TensorView& qb = none.extra.at("quant_bias");
  ASSERT_EQ(qb.shape, std::vector<int64_t>{kN});
  for (int64_t i = 0; i < kN; ++i) EXPECT_EQ(static_cast<const int32_t*>(qb.data)[i], 0);
  const LinearTensors once = shard_linear_tensors(c->spec, c->L.t, {ShardAxis::Input, 0, 64, {kK, kN}, true});
  EXPECT_EQ(once.extra.at("quant_bias").data, c->L.t.extra.at("quant_bias").data);
  auto d = float_case(DType::F32);
  EXPECT_FALSE(shard_linear_tensors(d->spec, d->L.t, {ShardAxis::Input, 0, 64, {kK, kN}, false}).bias);
  const LinearTensors rows = shard_linear_tensors(d->spec, d->L.t, {ShardAxis::Output, 8, 20, {kK, kN}, false});
  EXPECT_EQ(rows.weight.data, static_cast<const float*>(d->L.t.weight.data) + 8 * kK);  // no copy
  EXPECT_EQ(rows.weight.shape, (std::vector<int64_t>{12, kK}));
  EXPECT_EQ(rows.bias->shape, std::vector<int64_t>{12});  // Output: every rank adds its rows' bias
  EXPECT_EQ(rows.storage, nullptr);
}

// A FLOAT Input-split weight is a gathered copy: the linear keeps it alive through `storage`
// after the source tensors (and the sharded LinearTensors) are gone.
TEST(ShardLinear, StorageKeepsGatheredFloatWeightAlive) {
  const int64_t m = 3;
  const std::vector<float> x = activations(m, kK, 30);
  std::unique_ptr<LinearMethod> lin;
  std::vector<float> expected;
  {
    auto c = float_case(DType::F32);
    const ShardSplit split{ShardAxis::Input, 64, kK, {kK, kN}, true};
    LinearTensors ts = shard_linear_tensors(c->spec, c->L.t, split);
    ASSERT_NE(ts.storage, nullptr);
    lin = make_linear(c->spec, ts, local_shape(split), cpu_features());
    expected = run(*lin, x, m, x.data() + 64, kK);
    for (auto& b : c->L.bytes) std::fill(b.begin(), b.end(), uint8_t(0xFF));  // NaN if still read
  }
  // Source and sharded tensors are out of scope; the gathered columns live in lin's storage.
  const std::vector<float> y = run(*lin, x, m, x.data() + 64, kK);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], expected[i]) << i;
}

// The Format wrapper over online quantization over a float format: names, specs and fusion
// checks pass through; tensors_for hands over this rank's slice, still float.
TEST(ShardLinear, ShardedFormatOverOnlineQuantization) {
  auto c = float_case(DType::BF16);
  std::vector<std::string> planned;
  auto f = make_sharded_format(make_online_quant_format(std::make_unique<StubFloatFormat>(c->L), "w4a16"),
                               [&](const std::string& prefix) {
                                 planned.push_back(prefix);
                                 if (prefix.find("down_proj") == std::string::npos) return ShardSplit{};
                                 return ShardSplit{ShardAxis::Output, 16, 32, {kK, kN}};
                               });
  EXPECT_EQ(f->name(), "online:w4a16+tp");
  const SchemeSpec spec = f->spec_for(kPrefix);
  EXPECT_EQ(spec.kind, SchemeKind::W4A16);
  const LinearTensors t = f->tensors_for(kPrefix, true);
  EXPECT_EQ(t.weight.dtype, DType::BF16);
  EXPECT_EQ(t.weight.shape, (std::vector<int64_t>{16, kK}));
  EXPECT_EQ(t.bias->shape, std::vector<int64_t>{16});
  EXPECT_EQ(make_linear(spec, t, {kK, 16}, cpu_features())->out_features(), 16);
  const LinearTensors whole = f->tensors_for("model.layers.0.self_attn.q_proj", false);
  EXPECT_EQ(whole.weight.shape, (std::vector<int64_t>{kN, kK}));
  EXPECT_FALSE(whole.bias);
  EXPECT_EQ(planned.size(), 2u);
  const std::vector<std::string> fused = {"a.q_proj", "a.k_proj"};
  EXPECT_NO_THROW(f->check_fused(fused));
}

}  // namespace
}  // namespace lowbit::dist
