#include "formats/formats_test_util.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/dtype.h"

namespace lowbit::testing {

CheckpointBuilder& CheckpointBuilder::add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                                          std::string bytes) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const auto t = parse_dtype(dtype);
  if (!t) throw std::runtime_error("bad dtype " + dtype);
  if (bytes.empty()) bytes.assign(size_t(n) * dtype_size(*t), '\0');
  remove(name);
  tensors_.push_back({name, dtype, std::move(shape), std::move(bytes)});
  return *this;
}

CheckpointBuilder& CheckpointBuilder::add_i64(const std::string& name, const std::vector<int64_t>& values) {
  std::string bytes(values.size() * 8, '\0');
  for (size_t i = 0; i < values.size(); ++i)
    for (int b = 0; b < 8; ++b) bytes[8 * i + b] = char((uint64_t(values[i]) >> (8 * b)) & 0xff);
  return add(name, "I64", {int64_t(values.size())}, bytes);
}

CheckpointBuilder& CheckpointBuilder::remove(const std::string& name) {
  std::erase_if(tensors_, [&](const TensorSpec& t) { return t.name == name; });
  return *this;
}

CheckpointBuilder& CheckpointBuilder::set_shape(const std::string& name, std::vector<int64_t> shape) {
  for (const TensorSpec& t : tensors_)
    if (t.name == name) {
      const std::string dtype = t.dtype;  // add() replaces `t`
      return add(name, dtype, std::move(shape));
    }
  throw std::runtime_error("no tensor " + name);
}

void CheckpointBuilder::write() {
  dir_.write("model.safetensors", make_safetensors(tensors_));
  nlohmann::json config = {{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}};
  if (!config_.quantization_config.is_null()) config["quantization_config"] = config_.quantization_config;
  dir_.write("config.json", config.dump());
  if (!description_text.empty()) {
    dir_.write("quant_model_description.json", description_text);
  } else if (!description.is_null()) {
    dir_.write("quant_model_description.json", description.dump());
  }
  ckpt_ = std::make_unique<Checkpoint>(dir_.path());
}

std::string roles_string(const LinearTensors& t) {
  std::vector<std::string> parts;
  auto one = [&](const std::string& role, const TensorView& v) {
    parts.push_back(fmt::format("{}={}[{}]", role, dtype_name(v.dtype), fmt::join(v.shape, ",")));
  };
  one("weight", t.weight);
  if (t.bias) one("bias", *t.bias);
  for (const auto& [role, v] : t.extra) one(role, v);
  return fmt::format("{}", fmt::join(parts, " "));
}

}  // namespace lowbit::testing
