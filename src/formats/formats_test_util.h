// Builds tiny synthetic checkpoints (safetensors + JSON in a temp folder) for the format tests.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "formats/format.h"
#include "io/test_util.h"

namespace lowbit::testing {

class CheckpointBuilder {
 public:
  // A tensor of zeros (or `bytes`) with the safetensors dtype spelling ("I8", "F8_E4M3", ...).
  CheckpointBuilder& add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                         std::string bytes = {});
  CheckpointBuilder& add_i64(const std::string& name, const std::vector<int64_t>& values);
  CheckpointBuilder& remove(const std::string& name);
  CheckpointBuilder& set_shape(const std::string& name, std::vector<int64_t> shape);
  // Writes model.safetensors, config.json (with `quantization_config` if not null) and, if
  // given, quant_model_description.json; then opens the folder.
  void write();
  const Checkpoint& checkpoint() const { return *ckpt_; }
  ModelConfig& config() { return config_; }
  // detect_format on the written folder.
  std::unique_ptr<Format> detect() const { return detect_format(*ckpt_, config_); }
  const TempDir& dir() const { return dir_; }

  nlohmann::json description;    // quant_model_description.json; not written when null
  std::string description_text;  // written verbatim instead, when non-empty (malformed JSON)

 private:
  TempDir dir_;
  std::vector<TensorSpec> tensors_;
  ModelConfig config_;
  std::unique_ptr<Checkpoint> ckpt_;
};

// Role -> "DTYPE[shape]" of every tensor a format handed over, for compact assertions.
std::string roles_string(const LinearTensors& t);

}  // namespace lowbit::testing
