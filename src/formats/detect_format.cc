#include <filesystem>

#include "core/error.h"
#include "formats/format.h"
#include "io/config_fields.h"

namespace lowbit {

std::unique_ptr<Format> detect_format(const Checkpoint& ckpt, const ModelConfig& config) {
  // msmodelslim's description wins over any quantization_config (as in SGLang; msmodelslim
  // itself removes quantization_config from the config.json it writes).
  if (std::filesystem::exists(ckpt.dir() / "quant_model_description.json")) return make_msmodelslim_format(ckpt);
  if (config.quantization_config.is_null()) return make_hf_float_format(ckpt);
  const std::string label = (ckpt.dir() / "config.json").string();
  ConfigFields f(config.quantization_config, label, "quantization_config.");
  const std::optional<std::string> method = f.opt_string("quant_method");
  if (!method) f.fail_field("quant_method", "is required");
  if (*method == "compressed-tensors") return make_compressed_tensors_format(ckpt, config);
  if (*method == "awq") return make_awq_format(ckpt, config);
  // Refused by name rather than reading integer weights as floats.
  f.fail_field("quant_method", fmt::format("= '{}' is not supported (supported: compressed-tensors, awq; "
                                           "msmodelslim via quant_model_description.json)",
                                           *method));
}

}  // namespace lowbit
