// The FLOAT scheme's activation policy (runtime_options().float_activations) and its layer
// end to end: the kernel it picks at load, describe(), and apply() over 2 threads with a bias.
// Tolerances: "f32" sums fp32 products of the fp32 activations, "bf16" sums the exact
// products of BF16-rounded activations; either way any fp32 summation order is within
// γ_K·Σ|x·w| of the exact sum (γ_K = K·u/(1−K·u), u = 2^-24), plus one rounding of the bias
// add (u·|y|). The oracle sums in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <utility>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/runtime_options.h"
#include "core/thread_pool.h"
#include "schemes/float_linear.h"

namespace lowbit {
namespace {

TEST(FloatLinearPolicy, ActivationType) {
  CpuFeatures with = cpu_features(), without = cpu_features();
  with.avx512f = with.avx512bw = with.avx512vl = with.avx512dq = with.fma = with.f16c = with.avx512_bf16 = true;
  without.avx512_bf16 = false;
  ASSERT_TRUE(with.bf16());
  ASSERT_FALSE(without.bf16());
  EXPECT_EQ(FloatLinear::activation_type("auto", DType::BF16, with), FloatAct::BF16);
  EXPECT_EQ(FloatLinear::activation_type("auto", DType::BF16, without), FloatAct::F32);
  EXPECT_EQ(FloatLinear::activation_type("bf16", DType::BF16, without), FloatAct::BF16);
  EXPECT_EQ(FloatLinear::activation_type("f32", DType::BF16, with), FloatAct::F32);
  for (const char* policy : {"auto", "bf16", "f32"})
    for (DType t : {DType::F16, DType::F32}) EXPECT_EQ(FloatLinear::activation_type(policy, t, with), FloatAct::F32);
  EXPECT_THROW(FloatLinear::activation_type("fp8", DType::BF16, with), std::exception);
}

struct Layer {
  std::vector<uint16_t> w;
  std::vector<float> bias;
  LinearTensors t;
};

Layer make_layer(int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  Layer l;
  l.w.resize(size_t(n * k));
  for (auto& v : l.w) v = f32_to_bf16(d(rng));
  l.bias.resize(size_t(n));
  for (auto& v : l.bias) v = d(rng);
  l.t.prefix = "layer";
  l.t.weight = TensorView{"layer.weight", DType::BF16, {n, k}, l.w.data()};
  l.t.bias = TensorView{"layer.bias", DType::F32, {n}, l.bias.data()};
  return l;
}

void expect_layer(const std::string& policy, bool round_x) {
  const std::string saved = runtime_options().float_activations;
  runtime_options().float_activations = policy;
  std::mt19937 rng(21);
  ThreadPool pool(2);
  const int64_t n = 70, k = 130;
  const Layer l = make_layer(n, k, rng);
  const FloatLinear lin(l.t, {k, n}, cpu_features());
  runtime_options().float_activations = saved;
  EXPECT_NE(lin.describe().find(round_x ? "(bf16 activations)" : "(f32 activations)"), std::string::npos)
      << lin.describe();
  std::normal_distribution<float> d(0.0f, 1.0f);
  const double u = std::ldexp(1.0, -24), gamma = k * u / (1 - k * u);
  for (int64_t m : {1, 5, 40}) {
    std::vector<float> x(size_t(m * k)), y(size_t(m * n));
    for (auto& v : x) v = d(rng);
    lin.apply(x.data(), k, m, y.data(), n, pool);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0, abs_sum = 0;
        for (int64_t kk = 0; kk < k; ++kk) {
          const float xv = x[size_t(i * k + kk)];
          const double p = double(round_x ? bf16_to_f32(f32_to_bf16(xv)) : xv) * bf16_to_f32(l.w[size_t(j * k + kk)]);
          sum += p;
          abs_sum += std::fabs(p);
        }
        const double want = sum + l.bias[size_t(j)];
        ASSERT_LE(std::fabs(y[size_t(i * n + j)] - want), gamma * abs_sum + u * (std::fabs(want) + abs_sum))
            << policy << " m=" << i << " n=" << j;
      }
  }
}

TEST(FloatLinearPolicy, F32IsTheExactPath) { expect_layer("f32", false); }
TEST(FloatLinearPolicy, Bf16RoundsActivations) { expect_layer("bf16", true); }
TEST(FloatLinearPolicy, AutoFollowsTheCpu) { expect_layer("auto", cpu_features().bf16()); }

// --float-weights: a weight of 2 MiB or more from the checkpoint's mapping (no storage) is
// copied under "copy", and the layer then reads only its copy (the source may be released: here
// it is overwritten); under "mapped", with storage of its own, or below 2 MiB it is read in
// place. Copied or not, the outputs are the same bits.
TEST(FloatLinearWeights, CopiedIntoOwnMemoryOrReadInPlace) {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  const int64_t n = 1024, k = 1024, m = 3;  // 2 MiB of BF16
  Layer l = make_layer(n, k, rng);
  auto build = [&](const char* policy, const LinearTensors& t, int64_t rows) {
    const std::string saved = std::exchange(runtime_options().float_weights, policy);
    auto lin = std::make_unique<FloatLinear>(t, LinearShape{k, rows}, cpu_features());
    runtime_options().float_weights = saved;
    return lin;
  };
  const auto copied = build("copy", l.t, n), mapped = build("mapped", l.t, n);
  EXPECT_FALSE(copied->reads_checkpoint_in_place());
  EXPECT_TRUE(mapped->reads_checkpoint_in_place());
  LinearTensors owned = l.t;
  owned.storage = std::make_shared<int>(0);
  EXPECT_TRUE(build("copy", owned, n)->reads_checkpoint_in_place()) << "storage of its own: read in place";
  LinearTensors small = l.t;
  small.weight.shape = {n - 1, k};  // just under 2 MiB
  small.bias->shape = {n - 1};
  EXPECT_TRUE(build("copy", small, n - 1)->reads_checkpoint_in_place()) << "under 2 MiB: read in place";

  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(size_t(m * k)), y_copied(size_t(m * n)), y_mapped(size_t(m * n));
  for (auto& v : x) v = d(rng);
  copied->apply(x.data(), k, m, y_copied.data(), n, pool);
  mapped->apply(x.data(), k, m, y_mapped.data(), n, pool);
  ASSERT_EQ(y_copied, y_mapped);
  std::fill(l.w.begin(), l.w.end(), uint16_t(0));  // the source is gone
  std::vector<float> y_after(size_t(m * n)), y_mapped_after(size_t(m * n));
  copied->apply(x.data(), k, m, y_after.data(), n, pool);
  mapped->apply(x.data(), k, m, y_mapped_after.data(), n, pool);
  EXPECT_EQ(y_after, y_copied) << "the copied layer read the source after load";
  EXPECT_NE(y_mapped_after, y_mapped) << "the mapped layer should read the (changed) source";
}

}  // namespace
}  // namespace lowbit
