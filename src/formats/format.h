// A checkpoint format: how a folder names and stores the tensors of each linear layer. It
// turns a layer into a SchemeSpec (the math) and the layer's tensors under canonical roles.
// It never touches kernels. A new format is one file here plus one line in detect_format.cc.
#pragma once

#include <memory>
#include <string>
#include <string_view>

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
  virtual LinearTensors tensors_for(const std::string& prefix, bool has_bias) const = 0;
};

// Picks the format from the folder's files and config (e.g. quant_model_description.json,
// quantization_config); a plain Hugging Face float folder when nothing else matches.
std::unique_ptr<Format> detect_format(const Checkpoint& checkpoint, const ModelConfig& config);

// Plain Hugging Face float checkpoints.
std::unique_ptr<Format> make_hf_float_format(const Checkpoint& checkpoint);

}  // namespace lowbit
