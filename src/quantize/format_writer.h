// What `lowbit quantize` asks of an output format: the tensors a quantized linear layer
// becomes (declared before any data exists, so the safetensors header can be written first
// and the data streamed), the quantization itself, and the format's metadata files. One
// implementation per format: msmodelslim_writer.cc, compressed_tensors_writer.cc,
// awq_writer.cc. FLOAT layers and every non-linear tensor are copied by the driver.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors_writer.h"
#include "quantize/quant_plan.h"

namespace lowbit::quantize {

struct OutTensor {
  TensorDecl decl;
  std::vector<uint8_t> bytes;
};

template <class T>
OutTensor make_out(std::string name, DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  OutTensor t{{std::move(name), dtype, std::move(shape)}, {}};
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}
// fp32 values stored as `dtype` (F32, BF16 or F16; round to nearest even).
OutTensor make_float_out(std::string name, DType dtype, std::vector<int64_t> shape, const std::vector<float>& values);

// One layer handed to a writer.
struct LinearInput {
  const LayerPlan* plan = nullptr;
  std::vector<float> w;  // [N, K] fp32, widened exactly from the checkpoint's dtype
  DType dtype = DType::BF16;  // the checkpoint weight's dtype
  std::optional<TensorView> bias;
  // Calibrated per-tensor input range (static schemes); nullopt without calibration.
  std::optional<std::pair<float, float>> input_range;      // absolute min/max (msmodelslim)
  std::optional<std::pair<float, float>> input_range_mean;  // mean of per-sequence ranges (compressed-tensors)
};

// y[m, N] = x[m, K] · Ŵᵀ computed the way the scheme runs (activations quantized as at run
// time), for the output-error report.
using LayerGemm = std::function<void(const float* x, int64_t m, float* y)>;

struct QuantizedLinear {
  std::vector<OutTensor> tensors;
  std::vector<float> dequant;  // Ŵ [N, K], as the format's readers reconstruct it
  LayerGemm gemm;
  // gemm(x) is x·Ŵᵀ in float (weight-only scheme, float activations, no bias): the error
  // report may compute it with the fast float GEMM on `dequant` instead.
  bool gemm_is_dequant = false;
};

class FormatWriter {
 public:
  virtual ~FormatWriter() = default;
  // File name of the weights inside the output folder.
  virtual std::string weights_file() const = 0;
  // The tensors a non-FLOAT layer becomes; quantize() must produce exactly these.
  virtual std::vector<TensorDecl> declare(const LayerPlan& layer, DType weight_dtype, bool has_bias) const = 0;
  virtual QuantizedLinear quantize(const LinearInput& in) const = 0;
  // After every tensor is written: edits config.json (given as parsed from the source, key
  // order kept) and writes the format's own files into `out`. `tensors` are all output
  // tensors; `scheme_of` maps a tensor name to the scheme tag it belongs to ("FLOAT" for
  // copied tensors).
  virtual void finish(const std::filesystem::path& out, nlohmann::ordered_json& config,
                      const std::vector<TensorDecl>& tensors,
                      const std::function<std::string(const std::string&)>& scheme_of) const = 0;
};

std::unique_ptr<FormatWriter> make_msmodelslim_writer(const QuantPlan& plan, DType model_dtype);
std::unique_ptr<FormatWriter> make_compressed_tensors_writer(const QuantPlan& plan, DType model_dtype);
std::unique_ptr<FormatWriter> make_awq_writer(const QuantPlan& plan, DType model_dtype);
std::unique_ptr<FormatWriter> make_format_writer(const QuantPlan& plan, DType model_dtype);

// Writes JSON as Python's json.dump(indent=2) does (", " / ": " separators, non-ASCII kept).
void write_json_file(const std::filesystem::path& path, const nlohmann::ordered_json& j);

}  // namespace lowbit::quantize
