// The whole of `lowbit quantize`: plan → (calibration) → streamed conversion of a float
// Hugging Face folder into msmodelslim / compressed-tensors / AWQ → error report. Memory:
// the source is mmap'd; at any time each worker holds one layer's fp32 weight and its
// quantized tensors, never a second copy of the model. Tensor data goes straight to its
// offset in the output file (io/safetensors_writer.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "quantize/error_report.h"
#include "quantize/quant_plan.h"

namespace lowbit::quantize {

struct QuantizeOptions {
  std::filesystem::path input, output;
  PlanOptions plan;  // tied_lm_head is filled in from config.json
  std::filesystem::path calib_text, calib_ids;  // at most one
  int64_t calib_tokens = 4096, calib_seq_len = 512, calib_rows = 256;
  int threads = 0;  // 0 = all hardware threads
  // (stage, done, total): stage is "calibrating" (tokens) or "quantizing" (layers).
  std::function<void(const char* stage, int64_t done, int64_t total)> progress;
};

QuantReport quantize_model(const QuantizeOptions& o);

}  // namespace lowbit::quantize
