#include "quantize/awq_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/float_gemm.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit::quantize {

namespace {

// y[m, n] (row stride ldy) = x[m, kk] (row stride ldx) · w[n, kk]ᵀ (row stride ldw), fp32,
// single-threaded: the searches run their candidates in parallel instead.
void gemm_strided(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t m, int64_t n, int64_t kk, float* y,
                  int64_t ldy) {
  static const FloatGemmKernel& kernel = pick_float_gemm(DType::F32, cpu_features());
  if (m == 0 || n == 0 || kk == 0) return;
  kernel.run(FloatGemmArgs{x, ldx, w, ldw, y, ldy, m, kk, 0, n});
}

// The sample rows as the scaled layer sees them, x / s, then per-token fake-quantized when
// the scheme quantizes its activations at run time (act_bits < 16).
std::vector<float> scaled_inputs(const GroupData& g, const std::vector<float>& s, int act_bits) {
  std::vector<float> x(g.x, g.x + g.rows * g.k);
  if (!s.empty())
    for (size_t i = 0; i < x.size(); ++i) x[i] /= s[i % size_t(g.k)];
  if (act_bits < 16) {
    std::vector<int8_t> q(x.size());
    std::vector<float> scale(size_t(g.rows));
    quantize_act_per_token_sym(x.data(), g.rows, g.k, act_bits, q.data(), scale.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(q[i]) * scale[i / size_t(g.k)];
  }
  return x;
}

// The group's consumers quantized by the writer from W·diag(s), on the scaled sample rows.
double candidate_error(const GroupData& g, const std::vector<const LayerPlan*>& layers, const std::vector<float>& s,
                       int act_bits, const LayerQuantizer& quantize, const std::vector<std::vector<float>>& y_ref) {
  const std::vector<float> x = scaled_inputs(g, s, act_bits);
  std::vector<std::vector<float>> y(g.w.size());
  for (size_t i = 0; i < g.w.size(); ++i) {
    std::vector<float> w = *g.w[i];
    if (!s.empty())
      for (size_t t = 0; t < w.size(); ++t) w[t] *= s[t % size_t(g.k)];
    const QuantizedLinear q = quantize(*layers[i], std::move(w));
    y[i].assign(size_t(g.rows * g.n[i]), 0.0f);
    gemm_strided(x.data(), g.k, q.dequant.data(), g.k, g.rows, g.n[i], g.k, y[i].data(), g.n[i]);
  }
  // Pooled over every token (upstream's MSE, here relative to the float output's energy):
  // unlike SmoothQuant's search, where scoring each token relatively measured better, AWQ
  // measured worse that way (SmolLM2 W4A16_ASYM g32 without clipping, KLD 0.114 per token vs
  // 0.096 pooled): the tokens with massive activations are the ones weight error hurts most.
  double e = 0, r = 0;
  for (size_t i = 0; i < y.size(); ++i)
    for (size_t t = 0; t < y[i].size(); ++t) {
      const double d = double(y[i][t]) - double(y_ref[i][t]);
      e += d * d;
      r += double(y_ref[i][t]) * double(y_ref[i][t]);
    }
  return r > 0 ? e / r : 0.0;
}

bool is_qk(const std::string& layer) {
  return layer.ends_with("self_attn.q_proj") || layer.ends_with("self_attn.k_proj");
}

}  // namespace

int awq_act_bits(OutFormat format, const std::string& scheme) {
  switch (format) {
    case OutFormat::Awq:
      return scheme == "W4A16" ? 16 : 0;
    case OutFormat::CompressedTensors:
      if (scheme == "W4A16" || scheme == "W4A16_ASYM") return 16;
      return scheme == "W8A8" ? 8 : 0;  // int8 channel weights, dynamic per-token int8
    case OutFormat::MsModelSlim:
      if (scheme == "W8A8_DYNAMIC" || scheme == "W4A8_DYNAMIC") return 8;
      return scheme == "W4A4_DYNAMIC" ? 4 : 0;
  }
  return 0;
}

SmoothPlan awq_groups(const QuantPlan& plan, const ModelConfig& config,
                      const std::function<bool(const std::string&)>& has_bias) {
  const OutFormat format = plan.format;
  return migration_groups(plan, config, has_bias,
                          {[format](const std::string& scheme) { return awq_act_bits(format, scheme) > 0; },
                           "an integer-weight scheme with unscaled or per-token activations"});
}

std::vector<float> awq_factors(const std::vector<float>& x_mean, const std::vector<float>& w_mean, float ratio,
                               bool duo) {
  LOWBIT_CHECK(!duo || x_mean.size() == w_mean.size(), "{} vs {} channels", x_mean.size(), w_mean.size());
  std::vector<float> s(x_mean.size());
  float lo = std::numeric_limits<float>::infinity(), hi = 0;
  for (size_t j = 0; j < s.size(); ++j) {
    double v = std::pow(double(x_mean[j]), double(ratio));
    if (duo) v /= std::pow(double(w_mean[j]), 1.0 - double(ratio)) + 1e-4;
    s[j] = std::max(float(v), 1e-4f);
    lo = std::min(lo, s[j]);
    hi = std::max(hi, s[j]);
  }
  const float norm = std::sqrt(hi * lo);
  if (norm > 0 && std::isfinite(norm))
    for (float& v : s) v /= norm;
  return s;
}

std::vector<float> awq_weight_mean(const GroupData& g, int64_t group_size) {
  const int64_t gs = group_size > 0 && group_size < g.k ? group_size : g.k;
  std::vector<double> sum(size_t(g.k), 0.0);
  int64_t rows = 0;
  for (size_t i = 0; i < g.w.size(); ++i)
    for (int64_t r = 0; r < g.n[i]; ++r, ++rows) {
      const float* w = g.w[i]->data() + r * g.k;
      for (int64_t c0 = 0; c0 < g.k; c0 += gs) {
        const int64_t c1 = std::min(g.k, c0 + gs);
        float m = 0;
        for (int64_t j = c0; j < c1; ++j) m = std::max(m, std::fabs(w[j]));
        for (int64_t j = c0; j < c1; ++j) sum[size_t(j)] += std::fabs(w[j]) / (double(m) + 1e-6);
      }
    }
  std::vector<float> mean(size_t(g.k));
  for (int64_t j = 0; j < g.k; ++j) mean[size_t(j)] = rows ? float(sum[size_t(j)] / double(rows)) : 0.0f;
  return mean;
}

AwqClip search_clip(const LayerPlan& layer, const std::vector<float>& w, const float* x, int64_t rows,
                    const LayerQuantizer& quantize, const std::vector<float>& ratios) {
  AwqClip c;
  c.n = layer.layer.out_features;
  c.k = layer.layer.in_features;
  c.group_size = layer.group_size > 0 && layer.group_size < c.k ? layer.group_size : c.k;
  c.groups = (c.k + c.group_size - 1) / c.group_size;
  LOWBIT_CHECK(int64_t(w.size()) == c.n * c.k, "{}: weight of {} for [{}, {}]", layer.layer.prefix, w.size(), c.n, c.k);
  std::vector<float> amax(size_t(c.n * c.groups), 0.0f);
  for (int64_t r = 0; r < c.n; ++r)
    for (int64_t j = 0; j < c.k; ++j) {
      float& m = amax[size_t(r * c.groups + j / c.group_size)];
      m = std::max(m, std::fabs(w[size_t(r * c.k + j)]));
    }
  std::vector<double> best(amax.size(), std::numeric_limits<double>::infinity());
  std::vector<float> best_ratio(amax.size(), 1.0f);
  std::vector<float> wc(w.size()), d(w.size()), e(size_t(rows * c.n));
  for (float ratio : ratios) {
    for (int64_t r = 0; r < c.n; ++r)
      for (int64_t j = 0; j < c.k; ++j) {
        const float b = ratio * amax[size_t(r * c.groups + j / c.group_size)];
        wc[size_t(r * c.k + j)] = std::clamp(w[size_t(r * c.k + j)], -b, b);
      }
    const QuantizedLinear q = quantize(layer, wc);
    for (size_t t = 0; t < w.size(); ++t) d[t] = w[t] - q.dequant[t];
    for (int64_t g = 0; g < c.groups; ++g) {
      const int64_t c0 = g * c.group_size, kk = std::min(c.group_size, c.k - c0);
      gemm_strided(x + c0, c.k, d.data() + c0, c.k, rows, c.n, kk, e.data(), c.n);
      for (int64_t r = 0; r < c.n; ++r) {
        double s = 0;
        for (int64_t t = 0; t < rows; ++t) s += double(e[size_t(t * c.n + r)]) * double(e[size_t(t * c.n + r)]);
        const size_t at = size_t(r * c.groups + g);
        if (s < best[at]) best[at] = s, best_ratio[at] = ratio;  // strict: ties keep the wider bound
      }
    }
  }
  c.bound.resize(amax.size());
  for (size_t i = 0; i < amax.size(); ++i) {
    c.bound[i] = best_ratio[i] * amax[i];
    c.clipped += best_ratio[i] < 1.0f ? 1 : 0;
  }
  return c;
}

void choose_awq(AwqPlan& p, const QuantPlan& plan, const std::map<std::string, LayerCalib>& calib,
                const WeightLoader& load, const LayerQuantizer& quantize, const AwqOptions& o, ThreadPool& pool,
                const std::function<void(int64_t, int64_t)>& progress) {
  // Candidates: off (s = 1) first, so ties keep the model as it is; then duo and plain at every
  // ratio (plain at r = 0 is s = 1 again).
  struct Cand {
    float ratio;
    bool duo;
  };
  std::vector<std::optional<Cand>> cands{std::nullopt};
  for (int i = 0; i < o.grid; ++i) cands.push_back(Cand{float(i) / float(o.grid), true});
  for (int i = 1; i < o.grid && o.plain; ++i) cands.push_back(Cand{float(i) / float(o.grid), false});
  std::vector<float> clip_ratios;
  for (int i = 0; i < int(o.max_shrink * o.clip_grid); ++i) clip_ratios.push_back(1.0f - float(i) / float(o.clip_grid));
  p.duo.assign(p.scales.groups.size(), false);

  auto search = [&](size_t begin, size_t end, std::vector<GroupData>& data) {
    const size_t ng = end - begin, nc = cands.size();
    std::vector<std::vector<const LayerPlan*>> layers(ng);
    std::vector<int> act_bits(ng);
    std::vector<std::vector<std::vector<float>>> y_ref(ng);
    std::vector<std::vector<float>> x_mean(ng), w_mean(ng);
    for (size_t i = 0; i < ng; ++i) {
      const SmoothGroup& g = p.scales.groups[begin + i];
      for (const std::string& c : g.consumers) layers[i].push_back(plan.find(c));
      act_bits[i] = awq_act_bits(plan.format, layers[i].front()->scheme);
    }
    pool.parallel_for(int64_t(ng), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const GroupData& d = data[size_t(i)];
        const SmoothGroup& g = p.scales.groups[begin + size_t(i)];
        y_ref[size_t(i)] = float_outputs(d);
        std::vector<float> xm(size_t(d.k));
        for (int64_t j = 0; j < d.k; ++j)
          xm[size_t(j)] = float(d.calib->ch_abs_sum[size_t(j)] / double(d.calib->rows_seen));
        x_mean[size_t(i)] = tie_channels(xm, g.tie_heads, g.head_dim);
        w_mean[size_t(i)] = tie_channels(awq_weight_mean(d, layers[size_t(i)].front()->group_size), g.tie_heads,
                                         g.head_dim);
      }
    });
    std::vector<double> err(ng * nc);
    std::vector<std::vector<float>> svec(ng * nc);
    pool.parallel_for(int64_t(ng * nc), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        const size_t gi = size_t(t) / nc, ci = size_t(t) % nc;
        if (cands[ci]) svec[size_t(t)] = awq_factors(x_mean[gi], w_mean[gi], cands[ci]->ratio, cands[ci]->duo);
        err[size_t(t)] = candidate_error(data[gi], layers[gi], svec[size_t(t)], act_bits[gi], quantize, y_ref[gi]);
      }
    });
    // A consumer to clip: its plan, the weights the search loop already loaded, its statistics.
    struct ClipJob {
      const LayerPlan* layer;
      const std::vector<float>* w;
      const LayerCalib* calib;
    };
    std::vector<ClipJob> to_clip;
    for (size_t gi = 0; gi < ng; ++gi) {
      SmoothGroup& g = p.scales.groups[begin + gi];
      size_t best = 0;
      for (size_t ci = 1; ci < nc; ++ci)
        if (err[gi * nc + ci] < err[gi * nc + best]) best = ci;
      g.err_before = err[gi * nc];
      g.err_after = err[gi * nc + best];
      g.alpha = cands[best] ? std::optional<float>(cands[best]->ratio) : std::nullopt;
      p.duo[begin + gi] = cands[best] && cands[best]->duo;
      g.s = std::move(svec[gi * nc + best]);
      if (!g.s.empty() && !g.producer.empty()) g.producer_s = producer_divisors(g.s, g.tie_heads, g.head_dim);
      for (size_t i = 0; i < layers[gi].size(); ++i)
        if (!is_qk(layers[gi][i]->layer.prefix)) to_clip.push_back({layers[gi][i], data[gi].w[i], data[gi].calib});
    }
    if (!o.clip) return;
    // Every group of the layer has its s now, so each consumer's final weight (columns × its
    // s, rows ÷ the s of the group it produces for) is known: clip that.
    std::vector<AwqClip> clips(to_clip.size());
    pool.parallel_for(int64_t(to_clip.size()), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const auto [l, w, c] = to_clip[size_t(i)];
        LinearInput in;
        in.plan = l;
        in.w = *w;  // a copy: smooth_layer rescales it, the search's copy stays as loaded
        const std::vector<float> xs = smooth_layer(p.scales, l->layer.prefix, c, in);
        clips[size_t(i)] = search_clip(*l, in.w, xs.empty() ? c->sample.data() : xs.data(), c->sample_rows(),
                                       quantize, clip_ratios);
      }
    });
    for (size_t i = 0; i < to_clip.size(); ++i)
      if (clips[i].clipped > 0) p.clips[to_clip[i].layer->layer.prefix] = std::move(clips[i]);
  };
  search_layer_groups(p.scales, calib, load, "--algorithm awq", search, progress);
}

void apply_awq_clip(const AwqPlan& p, const std::string& layer, std::vector<float>& w) {
  auto it = p.clips.find(layer);
  if (it == p.clips.end()) return;
  const AwqClip& c = it->second;
  LOWBIT_CHECK(int64_t(w.size()) == c.n * c.k, "{}: clip bounds for [{}, {}], weight of {}", layer, c.n, c.k, w.size());
  for (int64_t r = 0; r < c.n; ++r)
    for (int64_t j = 0; j < c.k; ++j) {
      const float b = c.bound[size_t(r * c.groups + j / c.group_size)];
      float& v = w[size_t(r * c.k + j)];
      v = std::clamp(v, -b, b);
    }
}

std::vector<std::string> awq_notes(const AwqPlan& p) {
  std::vector<std::string> notes;
  int64_t on = 0, clipped = 0, entries = 0;
  double before = 0, after = 0;
  std::string line, layer;
  const auto& groups = p.scales.groups;
  for (size_t i = 0; i < groups.size(); ++i) {
    const SmoothGroup& g = groups[i];
    const std::string l = g.label.substr(0, g.label.find(' '));
    if (l != layer) {
      if (!line.empty()) notes.push_back(line);
      line = fmt::format("awq {}:", l);
      layer = l;
    }
    line += fmt::format(" {} {} ({:.3e} → {:.3e})", g.label.substr(g.label.find(' ') + 1),
                        g.alpha ? fmt::format("r {:.2f}{}", *g.alpha, p.duo[i] ? " duo" : "") : std::string("off"),
                        g.err_before, g.err_after);
    on += g.alpha ? 1 : 0;
    before += g.err_before;
    after += g.err_after;
  }
  if (!line.empty()) notes.push_back(line);
  for (const auto& [name, c] : p.clips) {
    clipped += c.clipped;
    entries += int64_t(c.bound.size());
  }
  const double n = groups.empty() ? 1.0 : double(groups.size());
  notes.insert(notes.begin(),
               fmt::format("AWQ: {} of {} groups scaled (1/s folded into the RMSNorm weights, written F32, and the "
                           "up_proj / v_proj rows); mean per-token output error on the calibration rows {:.3e} → "
                           "{:.3e}; clip search bounded {} of {} weight groups in {} layers",
                           on, groups.size(), before / n, after / n, clipped, entries, p.clips.size()));
  for (const std::string& s : p.scales.skipped) notes.push_back("not scaled: " + s);
  return notes;
}

}  // namespace lowbit::quantize
