// SmoothQuant (smooth_quant.h): the smoothed float model computes the same function (the
// folds are exact up to fp32 rounding), the s formula, the exact range of x / s from
// per-channel statistics, that the α search picks the candidate with the least simulated
// error, and which groups are eligible. The end-to-end KLD check is a quantize + eval run
// (see the report of issue 20).
#include "quantize/smooth_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <tuple>

#include "core/error.h"
#include "core/thread_pool.h"
#include "quantize/quantize_test_util.h"
#include "schemes/linear_method.h"

namespace lowbit::quantize {
namespace {

using test_util::randn;

// Rows with a few outlier channels (×40), as real LLM activations after RMSNorm.
std::vector<float> outlier_rows(int64_t rows, int64_t k, uint32_t seed) {
  std::vector<float> x = randn(rows * k, seed);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; j += 13) x[size_t(r * k + j)] *= 40.0f;
  return x;
}

// y[m, n] = x[m, k] · w[n, k]ᵀ in double.
std::vector<double> matmul(const std::vector<float>& x, int64_t m, const std::vector<float>& w, int64_t n, int64_t k) {
  std::vector<double> y(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t t = 0; t < k; ++t) acc += double(x[size_t(i * k + t)]) * double(w[size_t(j * k + t)]);
      y[size_t(i * n + j)] = acc;
    }
  return y;
}

// RMSNorm in fp32 as the decoder computes it: x / rms(x) · g.
std::vector<float> rms_norm(const std::vector<float>& x, int64_t m, int64_t k, const std::vector<float>& g) {
  std::vector<float> y(x.size());
  for (int64_t i = 0; i < m; ++i) {
    float ss = 0;
    for (int64_t t = 0; t < k; ++t) ss += x[size_t(i * k + t)] * x[size_t(i * k + t)];
    const float inv = 1.0f / std::sqrt(ss / float(k) + 1e-6f);
    for (int64_t t = 0; t < k; ++t) y[size_t(i * k + t)] = x[size_t(i * k + t)] * inv * g[size_t(t)];
  }
  return y;
}

LayerCalib calib_of(const std::vector<float>& x, int64_t rows, int64_t k) {
  LayerCalib c;
  c.k = k;
  c.ch_min.assign(size_t(k), INFINITY);
  c.ch_max.assign(size_t(k), -INFINITY);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const float v = x[size_t(r * k + j)];
      c.ch_min[size_t(j)] = std::min(c.ch_min[size_t(j)], v);
      c.ch_max[size_t(j)] = std::max(c.ch_max[size_t(j)], v);
      c.min = std::min(c.min, v);
      c.max = std::max(c.max, v);
    }
  c.rows_seen = rows;
  c.calls = 1;
  c.mean_min = c.min;
  c.mean_max = c.max;
  c.sample = x;
  return c;
}

// 4 query heads of h / 4 over 2 KV heads (k/v_proj are h / 2 wide): GQA with 2 heads per KV head.
ModelConfig cfg(int64_t h) {
  ModelConfig c;
  c.hidden_size = h;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = h / 4;
  return c;
}

QuantPlan one_layer_plan(OutFormat f, const std::string& scheme, int64_t h, int64_t inter, const std::string& up = "") {
  QuantPlan p;
  p.format = f;
  const std::string b = "model.layers.0.";
  for (auto [name, n, k] : std::vector<std::tuple<std::string, int64_t, int64_t>>{{"self_attn.q_proj", h, h},
                                                                                  {"self_attn.k_proj", h / 2, h},
                                                                                  {"self_attn.v_proj", h / 2, h},
                                                                                  {"self_attn.o_proj", h, h},
                                                                                  {"mlp.gate_proj", inter, h},
                                                                                  {"mlp.up_proj", inter, h},
                                                                                  {"mlp.down_proj", h, inter}}) {
    LayerPlan l;
    l.layer = {b + name, n, k};
    l.scheme = name == "mlp.up_proj" && !up.empty() ? up : scheme;
    p.layers.push_back(l);
  }
  return p;
}

TEST(SmoothQuant, FactorFormula) {
  const std::vector<float> a{4.0f, 9.0f, 0.0f, 2.0f, 1e12f, 1.0f}, w{1.0f, 4.0f, 3.0f, 0.0f, 1e-12f, 1e12f};
  const std::vector<float> s = smoothing_factors(a, w, 0.5f);
  EXPECT_FLOAT_EQ(s[0], 2.0f);  // √4 / √1
  EXPECT_FLOAT_EQ(s[1], 1.5f);  // √9 / √4
  EXPECT_EQ(s[2], 1.0f);        // dead activation channel
  EXPECT_EQ(s[3], 1.0f);        // dead weight column
  EXPECT_EQ(s[4], 1e5f);        // clamped above
  EXPECT_EQ(s[5], 1e-5f);       // 1 / 1e6 clamped below
  const std::vector<float> s1 = smoothing_factors({8.0f}, {2.0f}, 0.75f);
  EXPECT_NEAR(s1[0], std::pow(8.0, 0.75) / std::pow(2.0, 0.25), 1e-5);
  EXPECT_EQ(smoothing_factors({8.0f}, {2.0f}, 0.0f)[0], 0.5f);  // α = 0: 1 / max|W|
}

// A layer that outputs zeros: only the observer matters.
class NullLinear final : public LinearMethod {
 public:
  explicit NullLinear(int64_t k) : k_(k) {}
  void apply(const float*, int64_t, int64_t m, float* y, int64_t ldy, ThreadPool&) const override {
    for (int64_t i = 0; i < m; ++i) std::fill(y, y + 1, 0.0f), y += ldy;
  }
  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return 1; }
  size_t weight_bytes() const override { return 0; }
  std::string describe() const override { return "null"; }

 private:
  int64_t k_;
};

TEST(SmoothQuant, CalibrationRecordsPerChannelRanges) {
  const int64_t k = 12;
  LayerCalib c;
  ObservingLinear obs(std::make_unique<NullLinear>(k), c, 1, 100);
  ThreadPool pool(1);
  std::vector<float> y(8);
  const std::vector<float> a = randn(3 * k, 20), b = randn(5 * k, 21);
  obs.apply(a.data(), k, 3, y.data(), 1, pool);
  obs.apply(b.data(), k, 5, y.data(), 1, pool);
  for (int64_t j = 0; j < k; ++j) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t r = 0; r < 3; ++r) lo = std::min(lo, a[size_t(r * k + j)]), hi = std::max(hi, a[size_t(r * k + j)]);
    for (int64_t r = 0; r < 5; ++r) lo = std::min(lo, b[size_t(r * k + j)]), hi = std::max(hi, b[size_t(r * k + j)]);
    EXPECT_EQ(c.ch_min[size_t(j)], lo);
    EXPECT_EQ(c.ch_max[size_t(j)], hi);
  }
  EXPECT_EQ(*std::min_element(c.ch_min.begin(), c.ch_min.end()), c.min);
  EXPECT_EQ(*std::max_element(c.ch_max.begin(), c.ch_max.end()), c.max);
}

TEST(SmoothQuant, RangeOfSmoothedInputIsExact) {
  const int64_t rows = 64, k = 40;
  const std::vector<float> x = outlier_rows(rows, k, 1);
  const LayerCalib c = calib_of(x, rows, k);
  std::vector<float> s = randn(k, 2);
  for (float& v : s) v = std::exp(v);  // positive, several orders of magnitude
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < rows * k; ++i) {
    const float v = x[size_t(i)] / s[size_t(i % k)];
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const auto [slo, shi] = smoothed_range(c.ch_min, c.ch_max, s);
  EXPECT_EQ(slo, lo);  // bit-exact: the same divisions, min/max commute with x ↦ x / s_j (s_j > 0)
  EXPECT_EQ(shi, hi);
  const auto [plo, phi] = smoothed_range(c.ch_min, c.ch_max, {});
  EXPECT_EQ(plo, c.min);
  EXPECT_EQ(phi, c.max);
}

// A decoder layer's attention inputs and MLP through the smoothed weights and folded norms:
// the same outputs as the original within fp32 rounding.
TEST(SmoothQuant, FoldKeepsTheFloatFunction) {
  const int64_t m = 16, h = 32, inter = 48;
  const QuantPlan plan = one_layer_plan(OutFormat::MsModelSlim, "W8A8", h, inter);
  SmoothPlan sp = smoothing_groups(plan, cfg(h), nullptr);
  ASSERT_EQ(sp.groups.size(), 4u);
  std::map<std::string, std::vector<float>> w;
  uint32_t seed = 10;
  for (const LayerPlan& l : plan.layers)
    w[l.layer.prefix] = randn(l.layer.out_features * l.layer.in_features, seed++, 0.2f);
  for (SmoothGroup& g : sp.groups) {  // arbitrary positive s over ~4 orders of magnitude, tied per KV head for o
    g.s = randn(g.label.ends_with("down") ? inter : h, seed++);
    for (float& v : g.s) v = std::exp(2.0f * v);
    g.s = tie_channels(g.s, g.tie_heads, g.head_dim);
    if (!g.producer.empty()) g.producer_s = producer_divisors(g.s, g.tie_heads, g.head_dim);
  }
  EXPECT_EQ(sp.groups[3].tie_heads, 2);
  const std::string b = "model.layers.0.";
  const std::vector<float> g_in = randn(h, 50, 0.5f), g_post = randn(h, 51, 0.5f);
  const std::vector<float> resid = outlier_rows(m, h, 52);

  auto run = [&](bool smoothed, bool fold = true) {
    // Every layer's weight as the worker would hand it to the writer.
    std::map<std::string, std::vector<float>> ws;
    for (const LayerPlan& l : plan.layers) {
      LinearInput in;
      in.plan = &l;
      in.w = w.at(l.layer.prefix);
      if (smoothed && (fold || !(l.layer.prefix.ends_with("up_proj") || l.layer.prefix.ends_with("v_proj")))) {
        const LayerCalib c = calib_of(randn(4 * l.layer.in_features, 3), 4, l.layer.in_features);
        smooth_layer(sp, l.layer.prefix, &c, in);
      }
      ws[l.layer.prefix] = in.w;
    }
    const std::vector<float> gi =
        smoothed && fold ? fold_norm(g_in, *sp.norm_divisor(b + "input_layernorm.weight")) : g_in;
    const std::vector<float> gp =
        smoothed && fold ? fold_norm(g_post, *sp.norm_divisor(b + "post_attention_layernorm.weight")) : g_post;
    std::vector<std::vector<double>> outs;
    const std::vector<float> x1 = rms_norm(resid, m, h, gi);
    for (const char* p : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"})
      outs.push_back(matmul(x1, m, ws.at(b + p), plan.find(b + p)->layer.out_features, h));
    // Attention: each query head mixes its KV head's v over the tokens (fixed random weights),
    // then o_proj. Linear in v per channel, so v_proj's rows can take o_proj's 1/s.
    const int64_t hd = h / 4, kvw = h / 2;
    const std::vector<double>& v = outs.back();
    std::vector<float> o_in(size_t(m * h), 0.0f);
    const std::vector<float> mix = randn(4 * m * m, 60);
    for (int64_t head = 0; head < 4; ++head)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t d = 0; d < hd; ++d) {
          double acc = 0;
          for (int64_t t = 0; t < m; ++t)
            acc += double(mix[size_t((head * m + i) * m + t)]) * v[size_t(t * kvw + (head / 2) * hd + d)];
          o_in[size_t(i * h + head * hd + d)] = float(acc);
        }
    outs.push_back(matmul(o_in, m, ws.at(b + "self_attn.o_proj"), h, h));
    const std::vector<float> x2 = rms_norm(resid, m, h, gp);
    const std::vector<double> gate = matmul(x2, m, ws.at(b + "mlp.gate_proj"), inter, h);
    const std::vector<double> up = matmul(x2, m, ws.at(b + "mlp.up_proj"), inter, h);
    std::vector<float> act(size_t(m * inter));
    for (size_t i = 0; i < act.size(); ++i) act[i] = float(gate[i] / (1.0 + std::exp(-gate[i])) * up[i]);
    outs.push_back(matmul(act, m, ws.at(b + "mlp.down_proj"), h, inter));
    return outs;
  };
  const auto ref = run(false), got = run(true), unfolded = run(true, false);
  ASSERT_EQ(ref.size(), got.size());
  auto rel = [&](const std::vector<double>& a, const std::vector<double>& r) {
    double err = 0, norm = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      err += (a[i] - r[i]) * (a[i] - r[i]);
      norm += r[i] * r[i];
    }
    return std::sqrt(err / norm);
  };
  for (size_t o = 0; o < ref.size(); ++o) {
    if (o == 2) {  // v is the o group's producer: its output is v / s by design
      EXPECT_GT(rel(got[o], ref[o]), 1e-2);
      continue;
    }
    EXPECT_LT(rel(got[o], ref[o]), 1e-5) << "output " << o;
    // The control: the scaled weights without the folds are another function.
    EXPECT_GT(rel(unfolded[o], ref[o]), 1e-2) << "output " << o;
  }
  EXPECT_NE(sp.column_scale(b + "self_attn.q_proj"), nullptr);
  EXPECT_EQ(sp.column_scale(b + "mlp.up_proj"), sp.column_scale(b + "mlp.gate_proj"));
  EXPECT_EQ(*sp.row_divisor(b + "mlp.up_proj"), *sp.column_scale(b + "mlp.down_proj"));
  EXPECT_EQ(sp.row_divisor(b + "self_attn.v_proj")->size(), size_t(h / 2));
}

TEST(SmoothQuant, SmoothLayerSetsTheSmoothedRange) {
  const int64_t h = 16, inter = 24, rows = 8;
  const QuantPlan plan = one_layer_plan(OutFormat::CompressedTensors, "W8A8_STATIC", h, inter);
  SmoothPlan sp = smoothing_groups(plan, cfg(h), nullptr);
  for (SmoothGroup& g : sp.groups) g.s.assign(size_t(g.label.ends_with("down") ? inter : h), 4.0f);
  const LayerPlan& q = *plan.find("model.layers.0.self_attn.q_proj");
  const std::vector<float> x = outlier_rows(rows, h, 7);
  const LayerCalib c = calib_of(x, rows, h);
  LinearInput in;
  in.plan = &q;
  in.w.assign(size_t(h * h), 1.0f);
  const std::vector<float> xs = smooth_layer(sp, q.layer.prefix, &c, in);
  EXPECT_EQ(in.w[5], 4.0f);
  ASSERT_TRUE(in.input_range && in.input_range_mean);
  EXPECT_EQ(in.input_range->first, c.min / 4.0f);
  EXPECT_EQ(in.input_range->second, c.max / 4.0f);
  EXPECT_EQ(*in.input_range_mean, *in.input_range);
  ASSERT_EQ(xs.size(), x.size());
  EXPECT_EQ(xs[3], x[3] / 4.0f);
}

// The search's choice is the candidate (off or a grid α) with the least simulated error, and
// with outlier channels it cuts the error well below the unsmoothed one.
TEST(SmoothQuant, SearchPicksTheLeastErrorCandidate) {
  const int64_t h = 64, inter = 96, rows = 48;
  for (const char* scheme : {"W8A8_STATIC", "W8A8_STATIC_ASYM"}) {
    const QuantPlan plan = one_layer_plan(OutFormat::CompressedTensors, scheme, h, inter);
    SmoothPlan sp = smoothing_groups(plan, cfg(h), nullptr);
    std::map<std::string, LayerCalib> calib;
    std::map<std::string, std::vector<float>> w;
    uint32_t seed = 100;
    for (const LayerPlan& l : plan.layers) {
      const int64_t k = l.layer.in_features;
      calib[l.layer.prefix] = calib_of(outlier_rows(rows, k, seed++), rows, k);
      w[l.layer.prefix] = randn(l.layer.out_features * k, seed++, 0.1f);
    }
    // q/k/v (and gate/up) share their input, as in the model.
    for (const char* p : {"self_attn.k_proj", "self_attn.v_proj"})
      calib["model.layers.0." + std::string(p)] = calib["model.layers.0.self_attn.q_proj"];
    calib["model.layers.0.mlp.up_proj"] = calib["model.layers.0.mlp.gate_proj"];
    ThreadPool pool(2);
    SmoothOptions o;
    choose_smoothing(
        sp, calib, [&](const std::string& p) { return w.at(p); }, o, pool);
    ASSERT_EQ(sp.groups.size(), 4u);
    for (const SmoothGroup& g : sp.groups) {
      GroupData d;
      const LayerCalib& c = calib.at(g.consumers[0]);
      for (const std::string& p : g.consumers) {
        d.w.push_back(&w.at(p));
        d.n.push_back(int64_t(w.at(p).size()) / c.k);
      }
      d.k = c.k;
      d.x = c.sample.data();
      d.rows = rows;
      d.ch_min = &c.ch_min;
      d.ch_max = &c.ch_max;
      d.symmetric_act = g.symmetric_act;
      EXPECT_EQ(g.symmetric_act, std::string(scheme) == "W8A8_STATIC");
      const auto y = float_outputs(d);
      const double off = simulated_error(d, {}, y);
      double best = off;
      const std::vector<float> am = tie_channels(act_absmax(c.ch_min, c.ch_max), g.tie_heads, g.head_dim),
                               wm = tie_channels(weight_col_absmax(d), g.tie_heads, g.head_dim);
      for (float a : o.grid) best = std::min(best, simulated_error(d, smoothing_factors(am, wm, a), y));
      EXPECT_DOUBLE_EQ(g.err_before, off) << g.label;
      EXPECT_DOUBLE_EQ(g.err_after, best) << g.label;
      ASSERT_TRUE(g.alpha.has_value()) << g.label;
      EXPECT_LT(g.err_after, 0.5 * g.err_before) << g.label;
    }
    // A fixed α is applied as given.
    SmoothPlan fixed = smoothing_groups(plan, cfg(h), nullptr);
    choose_smoothing(
        fixed, calib, [&](const std::string& p) { return w.at(p); }, parse_smooth("0.5"), pool);
    for (const SmoothGroup& g : fixed.groups) EXPECT_EQ(g.alpha, 0.5f);
  }
}

TEST(SmoothQuant, EligibleGroupsAndOptions) {
  EXPECT_EQ(
      smoothing_groups(one_layer_plan(OutFormat::MsModelSlim, "W8A8_DYNAMIC", 16, 24), cfg(16), nullptr).groups.size(),
      0u);
  const SmoothPlan up_float =
      smoothing_groups(one_layer_plan(OutFormat::MsModelSlim, "W8A8", 16, 24, "FLOAT"), cfg(16), nullptr);
  ASSERT_EQ(up_float.groups.size(), 2u);  // gate/up has a FLOAT layer, down's up_proj is FLOAT
  EXPECT_TRUE(up_float.groups[0].label.ends_with("attn"));
  EXPECT_TRUE(up_float.groups[1].label.ends_with(" o"));
  EXPECT_EQ(up_float.skipped.size(), 2u);
  // A producer with a bias would need the 1/s in its bias too: not smoothed.
  const SmoothPlan biased = smoothing_groups(one_layer_plan(OutFormat::MsModelSlim, "W8A8", 16, 24), cfg(16),
                                             [](const std::string& p) { return p.ends_with("v_proj"); });
  EXPECT_EQ(biased.groups.size(), 3u);
  EXPECT_EQ(biased.column_scale("model.layers.0.self_attn.o_proj"), nullptr);
  EXPECT_FALSE(scheme_has_static_int8_act(OutFormat::CompressedTensors, "FP8"));
  EXPECT_TRUE(scheme_has_static_int8_act(OutFormat::CompressedTensors, "W8A8_STATIC_ASYM"));
  EXPECT_FALSE(parse_smooth("auto").alpha.has_value());
  EXPECT_EQ(parse_smooth("0.85").alpha, 0.85f);
  EXPECT_THROW(parse_smooth("1.5"), Error);
  EXPECT_THROW(parse_smooth("0.5x"), Error);
  EXPECT_THROW(parse_smooth("half"), Error);
}

}  // namespace
}  // namespace lowbit::quantize
