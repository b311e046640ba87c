#include "quantize/smooth_quant.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/float_gemm.h"

namespace lowbit::quantize {

namespace {

constexpr float kMinS = 1e-5f, kMaxS = 1e5f;

// y[m, n] = x[m, k] · w[n, k]ᵀ with the fastest fp32 kernel, single-threaded (the search
// runs its candidates in parallel instead).
void gemm_f32(const float* x, int64_t m, const float* w, int64_t n, int64_t k, float* y) {
  static const FloatGemmKernel& kernel = pick_float_gemm(DType::F32, cpu_features());
  if (m == 0 || n == 0) return;
  kernel.run(FloatGemmArgs{x, k, w, k, y, n, m, k, 0, n});
}

float rne(float v) { return std::nearbyint(v); }  // default rounding mode: to nearest even

// The activations of the sample as the static scheme sees them: x / s quantized to int8 over
// the exact smoothed range and dequantized. Asymmetric: msmodelslim's
// calibrate_static_asym_int8 (min ≤ 0 ≤ max, scale = range / 255, offset = rne(−lo/scale) −
// 128); symmetric: compressed-tensors' amax / 127.5 with codes in [−128, 127].
std::vector<float> fake_quant_acts(const GroupData& g, const std::vector<float>& s) {
  const auto [mn, mx] = smoothed_range(*g.ch_min, *g.ch_max, s);
  const float lo = std::min(mn, 0.0f), hi = std::max(mx, 0.0f);
  const float eps = std::numeric_limits<float>::epsilon();
  float scale, zero;
  if (g.symmetric_act) {
    scale = std::max(std::max(-lo, hi) / 127.5f, eps);
    zero = 0;
  } else {
    scale = std::max(hi / 255.0f - lo / 255.0f, eps);
    zero = rne(-lo / scale) - 128.0f;
  }
  std::vector<float> out(size_t(g.rows * g.k));
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t j = 0; j < g.k; ++j) {
      const float v = g.x[r * g.k + j] / (s.empty() ? 1.0f : s[size_t(j)]);
      const float q = std::clamp(rne(v / scale) + zero, -128.0f, 127.0f);
      out[size_t(r * g.k + j)] = (q - zero) * scale;
    }
  return out;
}

// W·diag(s) quantized per output row, symmetric int8 (amax / 127), dequantized.
std::vector<float> fake_quant_weight(const std::vector<float>& w, int64_t n, int64_t k, const std::vector<float>& s) {
  std::vector<float> out(size_t(n * k));
  for (int64_t r = 0; r < n; ++r) {
    float* o = out.data() + r * k;
    float amax = 0;
    for (int64_t j = 0; j < k; ++j) {
      o[j] = w[size_t(r * k + j)] * (s.empty() ? 1.0f : s[size_t(j)]);
      amax = std::max(amax, std::fabs(o[j]));
    }
    const float scale = amax / 127.0f;
    for (int64_t j = 0; j < k; ++j) o[j] = scale > 0 ? std::clamp(rne(o[j] / scale), -127.0f, 127.0f) * scale : 0.0f;
  }
  return out;
}

}  // namespace

SmoothOptions parse_smooth(const std::string& value) {
  SmoothOptions o;
  if (value == "auto") return o;
  size_t used = 0;
  float a = 0;
  try {
    a = std::stof(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || !(a >= 0.0f && a <= 1.0f))
    fail("--smooth '{}': expected auto or a migration strength α in [0, 1] (e.g. 0.5)", value);
  o.alpha = a;
  return o;
}

bool scheme_has_static_int8_act(OutFormat f, const std::string& scheme) {
  if (f == OutFormat::MsModelSlim) return scheme == "W8A8";
  if (f == OutFormat::CompressedTensors) return scheme == "W8A8_STATIC" || scheme == "W8A8_STATIC_ASYM";
  return false;
}

const std::vector<float>* SmoothPlan::column_scale(const std::string& layer) const {
  for (const SmoothGroup& g : groups)
    if (!g.s.empty() && std::find(g.consumers.begin(), g.consumers.end(), layer) != g.consumers.end()) return &g.s;
  return nullptr;
}
const std::vector<float>* SmoothPlan::row_divisor(const std::string& layer) const {
  for (const SmoothGroup& g : groups)
    if (!g.s.empty() && g.producer == layer) return &g.producer_s;
  return nullptr;
}
const std::vector<float>* SmoothPlan::norm_divisor(const std::string& tensor) const {
  for (const SmoothGroup& g : groups)
    if (!g.s.empty() && g.norm == tensor) return &g.s;
  return nullptr;
}

SmoothPlan smoothing_groups(const QuantPlan& plan, const ModelConfig& config,
                            const std::function<bool(const std::string&)>& has_bias) {
  const OutFormat format = plan.format;
  return migration_groups(
      plan, config, has_bias,
      {[format](const std::string& scheme) { return scheme_has_static_int8_act(format, scheme); },
       "int8 with static activation scales"});
}

SmoothPlan migration_groups(const QuantPlan& plan, const ModelConfig& config,
                            const std::function<bool(const std::string&)>& has_bias, const GroupFilter& filter) {
  SmoothPlan sp;
  const std::string q_tail = "self_attn.q_proj";
  const int64_t kv = config.num_key_value_heads, heads = config.num_attention_heads;
  for (const LayerPlan& l : plan.layers) {
    if (!l.layer.prefix.ends_with(q_tail)) continue;
    const std::string base = l.layer.prefix.substr(0, l.layer.prefix.size() - q_tail.size());  // "model.layers.3."
    const std::string name = base.substr(0, base.size() - 1);
    auto add = [&](const char* what, std::vector<std::string> consumers, std::string norm, std::string producer,
                   int64_t tie = 1) {
      SmoothGroup g;
      g.label = fmt::format("{} {}", name, what);
      for (std::string& c : consumers) {
        const LayerPlan* p = plan.find(base + c);
        if (!p) {
          sp.skipped.push_back(fmt::format("{}: no layer {}", g.label, c));
          return;
        }
        if (!filter.eligible(p->scheme)) {
          sp.skipped.push_back(fmt::format("{}: {} is {}, not {}", g.label, c, p->scheme, filter.what));
          return;
        }
        g.symmetric_act = p->scheme == "W8A8_STATIC";
        g.consumers.push_back(base + c);
      }
      if (!producer.empty()) {
        const LayerPlan* p = plan.find(base + producer);
        if (!p || p->scheme == "FLOAT") {
          sp.skipped.push_back(
              fmt::format("{}: {} (which takes the 1/s) is {}", g.label, producer, p ? "FLOAT" : "missing"));
          return;
        }
        if (has_bias && has_bias(base + producer)) {
          sp.skipped.push_back(fmt::format("{}: {} (which takes the 1/s) has a bias", g.label, producer));
          return;
        }
        g.producer = base + producer;
        g.tie_heads = tie;
        g.head_dim = config.head_dim;
      }
      if (!norm.empty()) g.norm = base + norm;
      sp.groups.push_back(std::move(g));
    };
    add("attn", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, "input_layernorm.weight", "");
    add("mlp", {"mlp.gate_proj", "mlp.up_proj"}, "post_attention_layernorm.weight", "");
    add("down", {"mlp.down_proj"}, "", "mlp.up_proj");
    if (kv > 0 && heads % kv == 0 && config.head_dim > 0)
      add("o", {"self_attn.o_proj"}, "", "self_attn.v_proj", heads / kv);
    else
      sp.skipped.push_back(fmt::format("{} o: {} query heads do not divide into {} KV heads", name, heads, kv));
  }
  return sp;
}

std::vector<float> smoothing_factors(const std::vector<float>& act_absmax, const std::vector<float>& w_absmax,
                                     float alpha) {
  LOWBIT_CHECK(act_absmax.size() == w_absmax.size(), "{} vs {} channels", act_absmax.size(), w_absmax.size());
  std::vector<float> s(act_absmax.size(), 1.0f);
  for (size_t j = 0; j < s.size(); ++j) {
    const double a = act_absmax[j], w = w_absmax[j];
    if (!(a > 0) || !(w > 0) || !std::isfinite(a) || !std::isfinite(w)) continue;  // dead channel: keep
    const double v = std::pow(a, double(alpha)) / std::pow(w, 1.0 - double(alpha));
    s[j] = std::clamp(float(v), kMinS, kMaxS);
  }
  return s;
}

std::pair<float, float> smoothed_range(const std::vector<float>& ch_min, const std::vector<float>& ch_max,
                                       const std::vector<float>& s) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (size_t j = 0; j < ch_min.size(); ++j) {
    const float d = s.empty() ? 1.0f : s[j];
    lo = std::min(lo, ch_min[j] / d);
    hi = std::max(hi, ch_max[j] / d);
  }
  return {lo, hi};
}

std::vector<float> tie_channels(const std::vector<float>& v, int64_t tie_heads, int64_t head_dim) {
  if (tie_heads <= 1) return v;
  const int64_t group = tie_heads * head_dim;
  LOWBIT_CHECK(head_dim > 0 && int64_t(v.size()) % group == 0, "{} channels in groups of {} heads of {}", v.size(),
               tie_heads, head_dim);
  std::vector<float> out(v.size());
  for (int64_t g0 = 0; g0 < int64_t(v.size()); g0 += group)
    for (int64_t d = 0; d < head_dim; ++d) {
      float m = 0;
      for (int64_t h = 0; h < tie_heads; ++h) m = std::max(m, v[size_t(g0 + h * head_dim + d)]);
      for (int64_t h = 0; h < tie_heads; ++h) out[size_t(g0 + h * head_dim + d)] = m;
    }
  return out;
}

std::vector<float> producer_divisors(const std::vector<float>& s, int64_t tie_heads, int64_t head_dim) {
  if (tie_heads <= 1) return s;
  std::vector<float> out;
  for (int64_t c = 0; c < int64_t(s.size()); ++c)
    if (c % (tie_heads * head_dim) < head_dim) out.push_back(s[size_t(c)]);  // the KV head's first query head
  return out;
}

std::vector<float> act_absmax(const std::vector<float>& ch_min, const std::vector<float>& ch_max) {
  std::vector<float> a(ch_min.size());
  for (size_t j = 0; j < a.size(); ++j) a[j] = std::max(std::fabs(ch_min[j]), std::fabs(ch_max[j]));
  return a;
}

std::vector<float> weight_col_absmax(const GroupData& g) {
  std::vector<float> m(size_t(g.k), 0.0f);
  for (size_t i = 0; i < g.w.size(); ++i)
    for (int64_t r = 0; r < g.n[i]; ++r)
      for (int64_t j = 0; j < g.k; ++j)
        m[size_t(j)] = std::max(m[size_t(j)], std::fabs((*g.w[i])[size_t(r * g.k + j)]));
  return m;
}

std::vector<std::vector<float>> float_outputs(const GroupData& g) {
  std::vector<std::vector<float>> y(g.w.size());
  for (size_t i = 0; i < g.w.size(); ++i) {
    y[i].resize(size_t(g.rows * g.n[i]));
    gemm_f32(g.x, g.rows, g.w[i]->data(), g.n[i], g.k, y[i].data());
  }
  return y;
}

double relative_token_error(const std::vector<std::vector<float>>& y, const std::vector<std::vector<float>>& ref,
                            const std::vector<int64_t>& n, int64_t rows) {
  std::vector<double> err(size_t(rows), 0.0), norm(size_t(rows), 0.0);
  for (size_t i = 0; i < y.size(); ++i)
    for (size_t t = 0; t < y[i].size(); ++t) {
      const double d = double(y[i][t]) - double(ref[i][t]);
      err[t / size_t(n[i])] += d * d;
      norm[t / size_t(n[i])] += double(ref[i][t]) * double(ref[i][t]);
    }
  // Mean over tokens of each token's relative error: pooled over all rows, the few tokens with
  // massive activations (the first of each sequence) dominate the sum, and the search then
  // serves them instead of the typical token (SmolLM2 W8A8 KLD 0.055 pooled, 0.040 per row).
  double mean = 0;
  int64_t used = 0;
  for (int64_t t = 0; t < rows; ++t)
    if (norm[size_t(t)] > 0) mean += err[size_t(t)] / norm[size_t(t)], ++used;
  return used ? mean / double(used) : 0.0;
}

double simulated_error(const GroupData& g, const std::vector<float>& s, const std::vector<std::vector<float>>& y_ref) {
  const std::vector<float> xq = fake_quant_acts(g, s);
  std::vector<std::vector<float>> y(g.w.size());
  for (size_t i = 0; i < g.w.size(); ++i) {
    const std::vector<float> wq = fake_quant_weight(*g.w[i], g.n[i], g.k, s);
    y[i].assign(size_t(g.rows * g.n[i]), 0.0f);
    gemm_f32(xq.data(), g.rows, wq.data(), g.n[i], g.k, y[i].data());
  }
  return relative_token_error(y, y_ref, g.n, g.rows);
}

void search_layer_groups(SmoothPlan& sp, const std::map<std::string, LayerCalib>& calib, const WeightLoader& load,
                         const char* flag,
                         const std::function<void(size_t begin, size_t end, std::vector<GroupData>& data)>& search,
                         const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t total = int64_t(sp.groups.size());
  int64_t done = 0;
  for (size_t begin = 0; begin < sp.groups.size();) {
    const std::string layer = sp.groups[begin].label.substr(0, sp.groups[begin].label.find(' '));
    size_t end = begin;
    while (end < sp.groups.size() && sp.groups[end].label.starts_with(layer + " ")) ++end;
    std::map<std::string, std::vector<float>> weights;
    std::vector<GroupData> data(end - begin);
    for (size_t gi = begin; gi < end; ++gi) {
      SmoothGroup& g = sp.groups[gi];
      GroupData& d = data[gi - begin];
      const LayerCalib* first = nullptr;
      for (const std::string& c : g.consumers) {
        auto it = calib.find(c);
        if (it == calib.end() || it->second.rows_seen == 0 || it->second.sample_rows() == 0)
          fail("{}: layer {} saw no calibration rows", flag, c);
        if (!first) first = &it->second;
        auto& w = weights[c];
        if (w.empty()) w = load(c);
        d.w.push_back(&w);
        d.n.push_back(int64_t(w.size()) / first->k);
      }
      d.k = first->k;
      d.x = first->sample.data();
      d.rows = first->sample_rows();
      d.ch_min = &first->ch_min;
      d.ch_max = &first->ch_max;
      d.symmetric_act = g.symmetric_act;
      d.calib = first;
    }
    search(begin, end, data);
    done += int64_t(end - begin);
    if (progress) progress(done, total);
    begin = end;
  }
}

void choose_smoothing(SmoothPlan& sp, const std::map<std::string, LayerCalib>& calib, const WeightLoader& load,
                      const SmoothOptions& o, ThreadPool& pool, const std::function<void(int64_t, int64_t)>& progress) {
  // Candidates: off (s = 1) first, so ties keep the model as it is, then the α values.
  std::vector<std::optional<float>> cands{std::nullopt};
  if (o.alpha)
    cands.push_back(*o.alpha);
  else
    for (float a : o.grid) cands.push_back(a);
  auto search = [&](size_t begin, size_t end, std::vector<GroupData>& data) {
    const size_t ng = end - begin, nc = cands.size();
    std::vector<std::vector<std::vector<float>>> y_ref(ng);
    std::vector<std::vector<float>> a_max(ng), w_max(ng);
    pool.parallel_for(int64_t(ng), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        y_ref[size_t(i)] = float_outputs(data[size_t(i)]);
        const SmoothGroup& g = sp.groups[begin + size_t(i)];
        a_max[size_t(i)] =
            tie_channels(act_absmax(*data[size_t(i)].ch_min, *data[size_t(i)].ch_max), g.tie_heads, g.head_dim);
        w_max[size_t(i)] = tie_channels(weight_col_absmax(data[size_t(i)]), g.tie_heads, g.head_dim);
      }
    });
    std::vector<double> err(ng * nc);
    std::vector<std::vector<float>> svec(ng * nc);
    pool.parallel_for(int64_t(ng * nc), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        const size_t gi = size_t(t) / nc, ci = size_t(t) % nc;
        if (cands[ci]) svec[size_t(t)] = smoothing_factors(a_max[gi], w_max[gi], *cands[ci]);
        err[size_t(t)] = simulated_error(data[gi], svec[size_t(t)], y_ref[gi]);
      }
    });
    for (size_t gi = 0; gi < ng; ++gi) {
      SmoothGroup& g = sp.groups[begin + gi];
      size_t best = o.alpha ? 1 : 0;  // a fixed α is applied even where it does not help
      for (size_t ci = 1; ci < nc && !o.alpha; ++ci)
        if (err[gi * nc + ci] < err[gi * nc + best]) best = ci;
      g.err_before = err[gi * nc];
      g.err_after = err[gi * nc + best];
      g.alpha = cands[best];
      g.s = std::move(svec[gi * nc + best]);
      if (!g.s.empty() && !g.producer.empty()) g.producer_s = producer_divisors(g.s, g.tie_heads, g.head_dim);
    }
  };
  search_layer_groups(sp, calib, load, "--smooth", search, progress);
}

std::vector<float> smooth_layer(const SmoothPlan& sp, const std::string& prefix, const LayerCalib* c, LinearInput& in) {
  const int64_t n = in.plan->layer.out_features, k = in.plan->layer.in_features;
  if (const std::vector<float>* d = sp.row_divisor(prefix)) {
    LOWBIT_CHECK(int64_t(d->size()) == n, "{}: {} row divisors for {} rows", prefix, d->size(), n);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k; ++j) in.w[size_t(r * k + j)] /= (*d)[size_t(r)];
  }
  const std::vector<float>* s = sp.column_scale(prefix);
  if (!s) return {};
  LOWBIT_CHECK(int64_t(s->size()) == k && c && int64_t(c->ch_min.size()) == k, "{}: smoothing vector of {} for K {}",
               prefix, s->size(), k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) in.w[size_t(r * k + j)] *= (*s)[size_t(j)];
  in.input_range = smoothed_range(c->ch_min, c->ch_max, *s);
  in.input_range_mean = in.input_range;
  std::vector<float> x = c->sample;
  for (size_t i = 0; i < x.size(); ++i) x[i] /= (*s)[i % size_t(k)];
  return x;
}

std::vector<float> fold_norm(std::vector<float> w, const std::vector<float>& s) {
  LOWBIT_CHECK(w.size() == s.size(), "norm of {} for {} smoothing factors", w.size(), s.size());
  for (size_t j = 0; j < w.size(); ++j) w[j] /= s[j];
  return w;
}

std::vector<std::string> smoothing_notes(const SmoothPlan& sp, const SmoothOptions& o) {
  std::vector<std::string> notes;
  int64_t on = 0;
  double before = 0, after = 0;
  std::string line, layer;
  for (const SmoothGroup& g : sp.groups) {
    const std::string l = g.label.substr(0, g.label.find(' '));
    if (l != layer) {
      if (!line.empty()) notes.push_back(line);
      line = fmt::format("smooth {}:", l);
      layer = l;
    }
    line += fmt::format(" {} α {} ({:.3e} → {:.3e})", g.label.substr(g.label.find(' ') + 1),
                        g.alpha ? fmt::format("{:.1f}", *g.alpha) : std::string("off"), g.err_before, g.err_after);
    on += g.alpha ? 1 : 0;
    before += g.err_before;
    after += g.err_after;
  }
  if (!line.empty()) notes.push_back(line);
  notes.insert(notes.begin(),
               fmt::format("SmoothQuant ({}): {} of {} groups smoothed, folded into the RMSNorm weights (written F32) "
                           "and the up_proj / v_proj rows; mean per-token simulated int8 output error {:.3e} → {:.3e} "
                           "on the calibration rows",
                           o.alpha ? fmt::format("α {}", *o.alpha) : std::string("α searched per group"), on,
                           sp.groups.size(), sp.groups.empty() ? 0.0 : before / double(sp.groups.size()),
                           sp.groups.empty() ? 0.0 : after / double(sp.groups.size())));
  for (const std::string& s : sp.skipped) notes.push_back("not smoothed: " + s);
  return notes;
}

}  // namespace lowbit::quantize
