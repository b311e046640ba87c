#include "quantize/error_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"
#include "kernels/float_gemm.h"

namespace lowbit::quantize {

double LayerReport::weight_rel() const { return weight_sq_norm > 0 ? std::sqrt(weight_sq_err / weight_sq_norm) : 0.0; }

LayerReport measure_layer(const LayerPlan& plan, const std::vector<float>& w, const QuantizedLinear& q, const float* x,
                          int64_t rows, ThreadPool* pool) {
  LayerReport r;
  r.name = plan.layer.prefix;
  r.scheme = plan.scheme;
  r.why = plan.why;
  r.out_features = plan.layer.out_features;
  r.in_features = plan.layer.in_features;
  for (size_t i = 0; i < w.size(); ++i) {
    const double d = double(w[i]) - double(q.dequant[i]);
    r.weight_sq_err += d * d;
    r.weight_sq_norm += double(w[i]) * double(w[i]);
    r.weight_max_abs = std::max(r.weight_max_abs, std::fabs(d));
  }
  if (rows > 0 && q.gemm) {
    const int64_t n = plan.layer.out_features, k = plan.layer.in_features;
    std::vector<float> yf(size_t(rows * n)), yq(size_t(rows * n));
    const FloatGemmKernel& fp32 = pick_float_gemm(DType::F32, cpu_features());
    auto float_cols = [&](int64_t n0, int64_t n1, int) {
      fp32.run({x, k, w.data(), k, yf.data(), n, rows, k, n0, n1});
      if (q.gemm_is_dequant) fp32.run({x, k, q.dequant.data(), k, yq.data(), n, rows, k, n0, n1});
    };
    // The scheme's GEMM by row blocks: rows are independent, whatever it does per row.
    auto quant_rows = [&](int64_t r0, int64_t r1, int) {
      if (!q.gemm_is_dequant) q.gemm(x + r0 * k, r1 - r0, yq.data() + r0 * n);
    };
    if (pool) {
      pool->parallel_for(n, 16, [&](int64_t b, int64_t e, int t) { float_cols(b, e, t); });
      pool->parallel_for(rows, 8, [&](int64_t b, int64_t e, int t) { quant_rows(b, e, t); });
    } else {
      float_cols(0, n, 0);
      quant_rows(0, rows, 0);
    }
    double err = 0, norm = 0;
    for (size_t i = 0; i < yf.size(); ++i) {
      const double d = double(yq[i]) - double(yf[i]);
      err += d * d;
      norm += double(yf[i]) * double(yf[i]);
    }
    r.output_rel = norm > 0 ? std::sqrt(err / norm) : 0.0;
    r.output_rows = rows;
  }
  return r;
}

namespace {
struct Totals {
  double sq_err = 0, sq_norm = 0, max_abs = 0, out_sum = 0, out_worst = 0;
  int64_t out_layers = 0, quantized = 0;
  std::string worst;
};
Totals totals(const QuantReport& r) {
  Totals t;
  for (const LayerReport& l : r.layers) {
    t.sq_err += l.weight_sq_err;
    t.sq_norm += l.weight_sq_norm;
    t.max_abs = std::max(t.max_abs, l.weight_max_abs);
    if (l.scheme != "FLOAT") ++t.quantized;
    if (l.output_rel) {
      t.out_sum += *l.output_rel;
      ++t.out_layers;
      if (*l.output_rel >= t.out_worst) {
        t.out_worst = *l.output_rel;
        t.worst = l.name;
      }
    }
  }
  return t;
}
}  // namespace

std::string format_report(const QuantReport& r) {
  size_t width = 5;
  for (const LayerReport& l : r.layers) width = std::max(width, l.name.size());
  std::string s = fmt::format("{:<{}}  {:<16} {:>11} {:>11} {:>11}\n", "layer", width, "scheme", "w rel err",
                              "w max abs", "out rel err");
  for (const LayerReport& l : r.layers)
    s += fmt::format("{:<{}}  {:<16} {:>11.3e} {:>11.3e} {:>11}\n", l.name, width, l.scheme, l.weight_rel(),
                     l.weight_max_abs, l.output_rel ? fmt::format("{:.3e}", *l.output_rel) : std::string("-"));
  const Totals t = totals(r);
  s += fmt::format("total: {} of {} linear layers quantized; weight rel err {:.3e} (all layers), max abs {:.3e}",
                   t.quantized, r.layers.size(), t.sq_norm > 0 ? std::sqrt(t.sq_err / t.sq_norm) : 0.0, t.max_abs);
  if (t.out_layers)
    s += fmt::format("; output rel err mean {:.3e}, worst {:.3e} ({}) on {} calibration tokens", t.out_sum / double(t.out_layers),
                     t.out_worst, t.worst, r.calibration_tokens);
  s += "\n";
  for (const std::string& n : r.notes) s += "note: " + n + "\n";
  return s;
}

nlohmann::ordered_json report_json(const QuantReport& r) {
  using ojson = nlohmann::ordered_json;
  ojson layers = ojson::array();
  for (const LayerReport& l : r.layers) {
    ojson j = ojson::object();
    j["name"] = l.name;
    j["scheme"] = l.scheme;
    j["why"] = l.why;
    j["shape"] = {l.out_features, l.in_features};
    j["weight_rel_err"] = l.weight_rel();
    j["weight_max_abs_err"] = l.weight_max_abs;
    j["output_rel_err"] = l.output_rel ? ojson(*l.output_rel) : ojson(nullptr);
    j["output_rows"] = l.output_rows;
    layers.push_back(j);
  }
  const Totals t = totals(r);
  ojson out = ojson::object();
  out["format"] = r.format;
  out["input"] = r.input;
  out["output"] = r.output;
  out["calibration_tokens"] = r.calibration_tokens;
  out["seconds"] = r.seconds;
  out["layers"] = layers;
  out["total"] = {{"quantized_layers", t.quantized},
                  {"linear_layers", r.layers.size()},
                  {"weight_rel_err", t.sq_norm > 0 ? std::sqrt(t.sq_err / t.sq_norm) : 0.0},
                  {"weight_max_abs_err", t.max_abs},
                  {"output_rel_err_mean", t.out_layers ? ojson(t.out_sum / double(t.out_layers)) : ojson(nullptr)},
                  {"output_rel_err_worst", t.out_layers ? ojson(t.out_worst) : ojson(nullptr)},
                  {"output_rel_err_worst_layer", t.out_layers ? ojson(t.worst) : ojson(nullptr)}};
  out["notes"] = r.notes;
  return out;
}

}  // namespace lowbit::quantize
