// llm-compressor's sequential pipeline for GPTQ in `lowbit quantize --algorithm gptq`: decoder
// layers are quantized in order, and the calibration inputs of layer i (its Hessians, and the
// ranges and sampled rows calibration.h records) come from running the model with layers < i
// already replaced by their GPTQ weights. Each stage's forward stops right after layer i, so
// the whole run costs about L/2 forwards over the calibration tokens. lm_head, when it is
// quantized, is a last stage with full forwards.
//
// Memory: the float model is mmap'd; a finished layer runs as a fp32 FloatLinear over its
// dequantized weights (exact W4A16-style simulation: activations stay float during
// calibration, as in llm-compressor), so done layers cost 4 bytes per weight until the end.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "quantize/calibration.h"
#include "quantize/gptq.h"
#include "quantize/quant_plan.h"

namespace lowbit::quantize {

struct GptqSequentialOptions {
  std::vector<int32_t> tokens;
  int64_t seq_len = 512;
  int64_t max_rows = 256;  // sampled input rows per layer (error report)
  int threads = 0;
  GptqOptions gptq;
  std::map<std::string, IntGrid> grids;  // every layer GPTQ quantizes, by prefix
  std::function<void(int64_t done, int64_t total)> progress;  // stages (decoder layers)
};

// Called once per GPTQ-quantized layer, in model order, from the calling thread.
// `hessian` is the layer's H (for --gptq-dump).
using GptqEmit = std::function<void(const LayerPlan& layer, GptqResult&& result, const LayerCalib& observed,
                                    const std::vector<double>& hessian)>;

// Runs the stages and returns what was observed of every layer of a stage that had work
// (FLOAT layers included), by prefix. Layers of `plan` not in `grids` stay float.
std::map<std::string, LayerCalib> run_gptq_sequential(const std::filesystem::path& model_dir, const Checkpoint& ckpt,
                                                      const QuantPlan& plan, const GptqSequentialOptions& o,
                                                      const GptqEmit& emit);

}  // namespace lowbit::quantize
