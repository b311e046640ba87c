// The quantization error report of `lowbit quantize`: per layer the weight's relative
// Frobenius error ||W − Ŵ|| / ||W|| and max |W − Ŵ|, and (with calibration) the relative
// Frobenius error of the layer's OUTPUT on sampled calibration rows, y_quant (the scheme's
// reference GEMM, activations quantized as at run time) against y_float = x·Wᵀ (the fp32
// float GEMM: its summation error, ~√K·2⁻²⁴ relative, is far below any quantization error
// the report shows).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "quantize/format_writer.h"

namespace lowbit::quantize {

struct LayerReport {
  std::string name, scheme, why;
  int64_t out_features = 0, in_features = 0;
  double weight_sq_err = 0, weight_sq_norm = 0;  // Σ (W − Ŵ)², Σ W²
  double weight_max_abs = 0;
  std::optional<double> output_rel;  // with calibration rows
  int64_t output_rows = 0;
  double weight_rel() const;
};

// x: `rows` sampled inputs of in_features floats (may be 0 rows). With a pool both outputs
// are computed on its threads (GPTQ measures its layers one after another); without, on the
// calling thread (the round-to-nearest path measures several layers at once).
LayerReport measure_layer(const LayerPlan& plan, const std::vector<float>& w, const QuantizedLinear& q,
                          const float* x, int64_t rows, ThreadPool* pool = nullptr);

struct QuantReport {
  std::string format, input, output;
  std::vector<LayerReport> layers;  // in plan order
  std::vector<std::string> notes;   // e.g. "AWQ: round-to-nearest, no activation-aware scale search"
  int64_t calibration_tokens = 0;
  double seconds = 0;
};

// The table (one line per layer, then totals) as text.
std::string format_report(const QuantReport& r);
nlohmann::ordered_json report_json(const QuantReport& r);

}  // namespace lowbit::quantize
