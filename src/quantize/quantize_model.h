// The whole of `lowbit quantize`: plan → (calibration) → streamed conversion of a float
// Hugging Face folder into msmodelslim / compressed-tensors / AWQ → error report. Memory:
// the source is mmap'd; at any time each worker holds one layer's fp32 weight and its
// quantized tensors, never a second copy of the model. Tensor data goes straight to its
// offset in the output file (io/safetensors_writer.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "quantize/awq_search.h"
#include "quantize/error_report.h"
#include "quantize/gptq.h"
#include "quantize/quant_plan.h"
#include "quantize/scheme_search.h"
#include "quantize/smooth_quant.h"

namespace lowbit::quantize {

enum class Algorithm { Rtn, Gptq, Awq };

// What GPTQ did to one layer (cmd_quantize prints these beside the error report).
struct GptqLayerStats {
  std::string name;
  double loss = 0;             // GPTQ's Σ err² / 2 (gptq.h)
  int64_t forced = 0;          // codes forced to a group extreme so the writer keeps the scale
  int64_t dead_columns = 0;    // inputs that were always 0 in calibration
  int64_t writer_mismatches = 0;  // codes the writer chose differently (should be 0)
};

struct QuantizeOptions {
  std::filesystem::path input, output;
  PlanOptions plan;  // tied_lm_head is filled in from config.json
  std::filesystem::path calib_text, calib_ids;  // at most one
  int64_t calib_tokens = 4096, calib_seq_len = 512, calib_rows = 256;
  int threads = 0;  // 0 = all hardware threads
  Algorithm algorithm = Algorithm::Rtn;
  GptqOptions gptq;
  // --smooth: SmoothQuant on the static-int8 layers before quantizing (smooth_quant.h).
  std::optional<SmoothOptions> smooth;
  AwqOptions awq;  // --algorithm awq
  // --target-kld / --target-bits: the scheme of every layer the plan gives "--scheme" (pass
  // scheme FLOAT as its placeholder) is chosen by scheme_search.h before anything else runs.
  std::optional<SearchOptions> search;
  std::function<void(const SchemeSearchReport&)> on_search;
  std::filesystem::path gptq_dump;  // hidden --gptq-dump DIR: per-layer W, H and codes for tests
  std::function<void(const GptqLayerStats&)> on_gptq_layer;
  // (stage, done, total): stage is "searching" (forward passes), "calibrating" (tokens),
  // "smoothing" or "awq" (groups), "gptq" or "quantizing" (layers).
  std::function<void(const char* stage, int64_t done, int64_t total)> progress;
};

QuantReport quantize_model(const QuantizeOptions& o);

}  // namespace lowbit::quantize
