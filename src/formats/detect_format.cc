#include <filesystem>

#include "core/error.h"
#include "formats/format.h"

namespace lowbit {

std::unique_ptr<Format> detect_format(const Checkpoint& ckpt, const ModelConfig& config) {
  // Quantized formats arrive with the quantization issue; until then refuse them by name
  // rather than reading integer weights as floats.
  if (std::filesystem::exists(ckpt.dir() / "quant_model_description.json"))
    fail("{}: msmodelslim quantized checkpoints are not supported yet", (ckpt.dir() / "quant_model_description.json").string());
  if (!config.quantization_config.is_null()) {
    std::string method = config.quantization_config.value("quant_method", std::string("?"));
    fail("{}: quantization_config.quant_method '{}' is not supported yet", (ckpt.dir() / "config.json").string(), method);
  }
  return make_hf_float_format(ckpt);
}

}  // namespace lowbit
