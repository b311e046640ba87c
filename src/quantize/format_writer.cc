#include "quantize/format_writer.h"

#include <fstream>

#include "core/error.h"

namespace lowbit::quantize {

OutTensor make_float_out(std::string name, DType dtype, std::vector<int64_t> shape, const std::vector<float>& values) {
  if (dtype == DType::F32) return make_out(std::move(name), dtype, std::move(shape), values);
  std::vector<uint16_t> half(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::BF16)
      half[i] = f32_to_bf16(values[i]);
    else if (dtype == DType::F16)
      half[i] = f32_to_f16(values[i]);
    else
      fail("tensor '{}': cannot store floats as {}", name, dtype_name(dtype));
  }
  return make_out(std::move(name), dtype, std::move(shape), half);
}

std::unique_ptr<FormatWriter> make_format_writer(const QuantPlan& plan, DType model_dtype) {
  switch (plan.format) {
    case OutFormat::MsModelSlim: return make_msmodelslim_writer(plan, model_dtype);
    case OutFormat::CompressedTensors: return make_compressed_tensors_writer(plan, model_dtype);
    case OutFormat::Awq: return make_awq_writer(plan, model_dtype);
  }
  fail("unknown output format");
}

void write_json_file(const std::filesystem::path& path, const nlohmann::ordered_json& j) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << j.dump(2) << "\n";
  if (!out) fail("{}: write failed", path.string());
}

}  // namespace lowbit::quantize
