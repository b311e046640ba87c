// A checkpoint format: how a folder names and stores the tensors of each linear layer. It
// turns a layer into a SchemeSpec (the math) and the layer's tensors under canonical roles.
// It never touches kernels. A new format is one file here plus one line in detect_format.cc.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/checkpoint.h"
#include "io/model_config.h"
#include "schemes/scheme_spec.h"

namespace lowbit {

class Format {
 public:
  virtual ~Format() = default;
  virtual std::string_view name() const = 0;
  // prefix is the module name without ".weight", e.g. "model.layers.0.mlp.up_proj".
  virtual SchemeSpec spec_for(const std::string& prefix) const = 0;
  // The layer's tensors under canonical roles, each checked for dtype and for a shape
  // consistent with the weight; an Error names the file and tensor otherwise.
  virtual LinearTensors tensors_for(const std::string& prefix, bool has_bias) const = 0;
  // Modules that some engines run as one matmul (q/k/v of a layer, gate/up, every projection
  // of every expert of a MoE layer) must share one scheme; otherwise an Error naming the
  // disagreeing tensors. The default compares spec_for of each prefix; quantized formats also
  // call it over every fused group at detection, so the error comes at load.
  virtual void check_fused(std::span<const std::string> prefixes) const;
};

// Picks the format from the folder's files and config (e.g. quant_model_description.json,
// quantization_config); a plain Hugging Face float folder when nothing else matches.
std::unique_ptr<Format> detect_format(const Checkpoint& checkpoint, const ModelConfig& config);

// Plain Hugging Face float checkpoints.
std::unique_ptr<Format> make_hf_float_format(const Checkpoint& checkpoint);
// quant_model_description.json (msmodelslim, Ascend).
std::unique_ptr<Format> make_msmodelslim_format(const Checkpoint& checkpoint);
// config.json quantization_config with quant_method "compressed-tensors".
std::unique_ptr<Format> make_compressed_tensors_format(const Checkpoint& checkpoint, const ModelConfig& config);
// Online quantization of a float checkpoint's linear layers at load: `method` is one of
// online_quantization_methods() (w8a8_int8, w4a8, w4a4, w4a16, mxfp8, mxfp4, w4a8_mxfp).
std::unique_ptr<Format> make_online_quant_format(std::unique_ptr<Format> base, std::string_view method);
std::vector<std::pair<std::string, std::string>> online_quantization_methods();  // (name, description)
// config.json quantization_config with quant_method "awq" (AutoAWQ GEMM).
std::unique_ptr<Format> make_awq_format(const Checkpoint& checkpoint, const ModelConfig& config);

}  // namespace lowbit
