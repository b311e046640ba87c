// GPTQ on one matrix (gptq.h) and the Hessian accumulator (hessian.h): properties that must
// hold exactly, on small random layers. The comparison with the paper's algorithm and with
// llm-compressor is tests/python/test_gptq_reference.py.
#include "quantize/gptq.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "models/decoder.h"
#include "quantize/quantize_test_util.h"
#include "quantize/hessian.h"

namespace lowbit::quantize {
namespace {

using test_util::randn;

// Inputs with correlated features (x = z · M, a random mixing) and a few strong channels, the
// shape of real activations that makes GPTQ differ from round to nearest.
std::vector<float> correlated_inputs(int64_t rows, int64_t k, uint32_t seed) {
  const std::vector<float> z = randn(rows * k, seed), m = randn(k * k, seed + 1, 1.0f / std::sqrt(float(k)));
  std::vector<float> x(size_t(rows * k), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) {
      float acc = z[size_t(r * k + j)];
      for (int64_t t = 0; t < k; ++t) acc += z[size_t(r * k + t)] * m[size_t(t * k + j)];
      x[size_t(r * k + j)] = acc * (j % 7 == 0 ? 4.0f : 1.0f);
    }
  return x;
}

std::vector<double> hessian_of(const std::vector<float>& x, int64_t rows, int64_t k, ThreadPool& pool,
                               FloatAct act = FloatAct::F32) {
  HessianAccumulator acc(k, act);
  acc.add(x.data(), k, rows / 2, pool);  // two calls, as two calibration sequences
  acc.add(x.data() + (rows / 2) * k, k, rows - rows / 2, pool);
  return acc.hessian();
}

std::vector<double> identity(int64_t k) {
  std::vector<double> h(size_t(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i) h[size_t(i * k + i)] = 1.0;
  return h;
}

// The writer's own round to nearest for `g` (what the format writers call).
IntWeightQuant writer_rtn(const IntGrid& g, const std::vector<float>& w, int64_t n, int64_t k) {
  switch (g.rule) {
    case IntGrid::Rule::CtSym:
      return quantize_weight_sym(w.data(), n, k, g.bits, g.group_size, IntScaleRule::CompressedTensors, g.compute);
    case IntGrid::Rule::QMaxSym:
      return quantize_weight_sym(w.data(), n, k, g.bits, g.group_size, IntScaleRule::QMax, g.compute);
    case IntGrid::Rule::CtAsym: return quantize_weight_asym_ct(w.data(), n, k, g.bits, g.group_size, g.compute);
    case IntGrid::Rule::Awq: {
      std::vector<float> w16(w.size());
      for (size_t i = 0; i < w.size(); ++i) w16[i] = round_to_compute(w[i], ComputeDType::F16);
      return quantize_weight_awq(w16.data(), n, k, g.group_size, g.compute);
    }
  }
  return {};
}

std::vector<float> dequant(const IntWeightQuant& q) {
  std::vector<float> d(q.q.size());
  for (int64_t i = 0; i < q.n * q.k; ++i) {
    const size_t sg = size_t((i / q.k) * q.groups + (i % q.k) / q.group_size);
    d[size_t(i)] = (float(q.q[size_t(i)]) - (q.zero.empty() ? 0.0f : float(q.zero[sg]))) * q.scale[sg];
  }
  return d;
}

struct Case {
  const char* name;
  IntGrid grid;
};

std::vector<Case> cases() {
  return {{"ct_sym_w4_g32_bf16", {IntGrid::Rule::CtSym, 4, 32, ComputeDType::BF16}},
          {"ct_sym_w4_channel", {IntGrid::Rule::CtSym, 4, 0, ComputeDType::F32}},
          {"ct_asym_w4_g32_bf16", {IntGrid::Rule::CtAsym, 4, 32, ComputeDType::BF16}},
          {"ct_sym_w8_channel", {IntGrid::Rule::CtSym, 8, 0, ComputeDType::BF16}},
          {"msmodelslim_w8_channel", {IntGrid::Rule::QMaxSym, 8, 0, ComputeDType::F32}},
          {"msmodelslim_w4_channel", {IntGrid::Rule::QMaxSym, 4, 0, ComputeDType::F32}},
          {"awq_g32", {IntGrid::Rule::Awq, 4, 32, ComputeDType::F16}}};
}

constexpr int64_t N = 24, K = 128, ROWS = 512;

TEST(Gptq, IdentityHessianIsRoundToNearestExactly) {
  ThreadPool pool(2);
  const std::vector<float> w = randn(N * K, 7, 0.05f);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const GptqResult r = gptq_quantize("test", w.data(), N, K, identity(K), c.grid, GptqOptions{}, pool);
    const IntWeightQuant q = writer_rtn(c.grid, w, N, K);
    EXPECT_EQ(r.q, q.q);
    EXPECT_EQ(r.scale, q.scale);
    EXPECT_EQ(r.dequant, dequant(q));
    EXPECT_EQ(r.forced, 0);
  }
}

// The property the writers rely on: their own round to nearest of writer_w gives back GPTQ's
// codes, scales and zero points, bit for bit, in every mode.
TEST(Gptq, WriterReproducesCodesAndScales) {
  ThreadPool pool(2);
  const std::vector<float> w = randn(N * K, 11, 0.05f);
  const std::vector<double> h = hessian_of(correlated_inputs(ROWS, K, 3), ROWS, K, pool);
  for (const Case& c : cases())
    for (ActOrder a : {ActOrder::None, ActOrder::Group, ActOrder::Static})
      for (int variant = 0; variant < 3; ++variant) {
        const bool static_groups = variant == 1, search = variant == 2;
        SCOPED_TRACE(fmt::format("{} act_order {} static {} search {}", c.name, int(a), static_groups, search));
        GptqOptions o;
        o.act_order = a;
        o.static_groups = static_groups;
        o.scale_search = search;
        o.block = 48;  // not a multiple of 32: blocks are rounded to whole groups
        const GptqResult r = gptq_quantize("test", w.data(), N, K, h, c.grid, o, pool);
        const IntWeightQuant q = writer_rtn(c.grid, r.writer_w, N, K);
        EXPECT_EQ(r.q, q.q);
        EXPECT_EQ(r.scale, q.scale);
        std::vector<float> zero(q.scale.size(), 0.0f);
        for (size_t i = 0; i < q.zero.size(); ++i) zero[i] = float(q.zero[i]);
        EXPECT_EQ(r.zero, zero);
        // dequant is in checkpoint column order; the writer saw perm order under g_idx.
        const std::vector<float> d = dequant(q);
        int64_t diff = 0;
        for (int64_t row = 0; row < N; ++row)
          for (int64_t p = 0; p < K; ++p) {
            const int64_t col = r.perm.empty() ? p : r.perm[size_t(p)];
            diff += d[size_t(row * K + p)] != r.dequant[size_t(row * K + col)];
          }
        EXPECT_EQ(diff, 0);
        EXPECT_EQ(!r.perm.empty(), a == ActOrder::Group && c.grid.group_size > 0);
      }
}

TEST(Gptq, LowerOutputErrorThanRoundToNearest) {
  ThreadPool pool(2);
  const std::vector<float> w = randn(N * K, 5, 0.05f);
  const std::vector<double> h = hessian_of(correlated_inputs(ROWS, K, 9), ROWS, K, pool);
  for (const Case& c : cases())
    for (ActOrder a : {ActOrder::None, ActOrder::Group, ActOrder::Static})
      for (bool search : {false, true}) {
      SCOPED_TRACE(fmt::format("{} act_order {} search {}", c.name, int(a), search));
      GptqOptions o;
      o.act_order = a;
      o.scale_search = search;
      const GptqResult r = gptq_quantize("test", w.data(), N, K, h, c.grid, o, pool);
      const std::vector<float> rtn = dequant(writer_rtn(c.grid, w, N, K));
      const double e_gptq = output_sq_error(w.data(), r.dequant.data(), N, K, h);
      const double e_rtn = output_sq_error(w.data(), rtn.data(), N, K, h);
      EXPECT_LT(e_gptq, 0.9 * e_rtn);
      EXPECT_GT(r.loss, 0.0);
    }
}

TEST(Gptq, SingularHessianGivesNoNaN) {
  ThreadPool pool(2);
  const std::vector<float> w = randn(N * K, 13, 0.05f);
  std::vector<float> x = correlated_inputs(ROWS, K, 21);
  for (int64_t r = 0; r < ROWS; ++r) {
    x[size_t(r * K + 5)] = 0.0f;                   // dead input: zero row and column in H
    x[size_t(r * K + 9)] = x[size_t(r * K + 8)];  // duplicated input: H singular without damping
  }
  const std::vector<double> h = hessian_of(x, ROWS, K, pool);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const GptqResult r = gptq_quantize("test", w.data(), N, K, h, c.grid, GptqOptions{}, pool);
    EXPECT_EQ(r.dead_columns, 1);
    for (float v : r.dequant) ASSERT_TRUE(std::isfinite(v));
    EXPECT_TRUE(std::isfinite(r.loss));
    for (int64_t row = 0; row < N; ++row) EXPECT_EQ(r.dequant[size_t(row * K + 5)], 0.0f);
  }
  // Without damping the duplicated column makes H singular: a clear error, not NaN.
  GptqOptions o;
  o.damp = 0;
  try {
    gptq_quantize("model.layers.0.mlp.up_proj", w.data(), N, K, h, cases()[0].grid, o, pool);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--gptq-damp"), std::string::npos) << e.what();
  }
}

// k = 150: three column blocks of the triangle (64, 64, 22), the last pair a single block.
// BF16 activations: H of the BF16-rounded inputs (each product exact in fp32).
TEST(Gptq, HessianAccumulatorIsTwoOverNSumOfOuterProducts) {
  ThreadPool pool(2);
  const int64_t k = 150, rows = 70;
  const std::vector<float> x = randn(rows * k, 17);
  for (FloatAct act : {FloatAct::F32, FloatAct::BF16}) {
    const std::vector<double> h = hessian_of(x, rows, k, pool, act);
    auto in = [&](int64_t r, int64_t i) {
      const float v = x[size_t(r * k + i)];
      return double(act == FloatAct::BF16 ? bf16_to_f32(f32_to_bf16(v)) : v);
    };
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double ref = 0;
        for (int64_t r = 0; r < rows; ++r) ref += in(r, i) * in(r, j);
        ref *= 2.0 / double(rows);
        EXPECT_NEAR(h[size_t(i * k + j)], ref, 1e-5 * (1 + std::fabs(ref))) << float_act_name(act) << " " << i << "," << j;
        EXPECT_EQ(h[size_t(i * k + j)], h[size_t(j * k + i)]);
      }
  }
}

// The sequential pipeline steps the model layer by layer over kept residual streams
// (DecoderModel::embed / forward_layer / forward_head): that must be the very forward() it
// replaces, bit for bit (same kernels, same order), on the real default model.
TEST(Gptq, LayerSteppingEqualsTheForward) {
  const auto dir = std::filesystem::path(LOWBIT_SOURCE_DIR) / "models/smollm2-135m-instruct";
  if (!std::filesystem::exists(dir / "config.json")) GTEST_SKIP() << "no " << dir << " (scripts/prepare_default_model.sh)";
  auto model = DecoderModel::load(dir);
  ThreadPool pool(2);
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 37; ++i) ids.push_back(100 + 211 * i % 4000);
  const SequenceChunk chunk{0, 0, ids, true, {}};
  KvCache cache = model->make_cache(1, 64);
  std::vector<float> want, got, x;
  model->forward({&chunk, 1}, cache, pool, want);
  model->embed({&chunk, 1}, cache, x);
  for (int64_t l = 0; l < model->config().num_hidden_layers; ++l) model->forward_layer(l, {&chunk, 1}, cache, pool, x);
  model->forward_head({&chunk, 1}, cache, x, pool, got);
  const size_t n = ids.size() * size_t(model->config().vocab_size);
  ASSERT_GE(got.size(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << i;
  EXPECT_THROW(model->forward_layer(model->config().num_hidden_layers, {&chunk, 1}, cache, pool, x), Error);
  x.pop_back();
  EXPECT_THROW(model->forward_layer(0, {&chunk, 1}, cache, pool, x), Error);
}

// How many times this process maps `file` (lines of /proc/self/maps naming it).
int mappings_of(const std::filesystem::path& file) {
  std::ifstream maps("/proc/self/maps");
  const std::string name = std::filesystem::canonical(file).string();
  int count = 0;
  for (std::string line; std::getline(maps, line);)
    if (line.size() >= name.size() && line.compare(line.size() - name.size(), name.size(), name) == 0) ++count;
  return count;
}

// lowbit quantize reads the float weights from its Checkpoint and loads float models
// (calibration, GPTQ's pipeline, the scheme search's probe) beside it: they must share its one
// mapping, or every weight page the two touch counts twice in the resident set (the peak-RSS
// bound of 2 × the weights was missed by that on a 1.7B model).
TEST(Gptq, ModelSharesTheCallersCheckpointMapping) {
  const auto dir = std::filesystem::path(LOWBIT_SOURCE_DIR) / "models/smollm2-135m-instruct";
  if (!std::filesystem::exists(dir / "config.json")) GTEST_SKIP() << "no " << dir << " (scripts/prepare_default_model.sh)";
  const auto file = dir / "model.safetensors";
  ASSERT_EQ(mappings_of(file), 0);
  auto ckpt = std::make_shared<const Checkpoint>(dir);
  const int alone = mappings_of(file);
  ASSERT_GE(alone, 1);
  {
    auto shared = DecoderModel::load(ckpt);
    EXPECT_EQ(mappings_of(file), alone);
    auto own = DecoderModel::load(dir);  // the path overload maps the file itself
    EXPECT_EQ(mappings_of(file), 2 * alone);
  }
  ckpt.reset();
  EXPECT_EQ(mappings_of(file), 0);  // the models released it
}

TEST(Gptq, GridForSchemes) {
  LayerPlan l;
  l.layer = {"model.layers.0.mlp.up_proj", 64, 128};
  std::string why;
  l.scheme = "FP8_DYNAMIC";
  EXPECT_FALSE(int_grid_for(OutFormat::CompressedTensors, l, DType::BF16, &why));
  EXPECT_NE(why.find("floating-point"), std::string::npos);
  l.scheme = "W4A8_DYNAMIC";
  l.group_size = 32;
  EXPECT_FALSE(int_grid_for(OutFormat::MsModelSlim, l, DType::BF16, &why));
  EXPECT_NE(why.find("--group-size 0"), std::string::npos);
  l.group_size = 0;
  auto g = int_grid_for(OutFormat::MsModelSlim, l, DType::BF16, &why);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->rule, IntGrid::Rule::QMaxSym);
  EXPECT_EQ(g->bits, 4);
  l.scheme = "W4A16_ASYM";
  l.group_size = 32;
  g = int_grid_for(OutFormat::CompressedTensors, l, DType::BF16, &why);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->rule, IntGrid::Rule::CtAsym);
  EXPECT_EQ(g->compute, ComputeDType::BF16);
  EXPECT_EQ(g->group_size, 32);
}

}  // namespace
}  // namespace lowbit::quantize
