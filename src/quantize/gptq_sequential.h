// llm-compressor's sequential pipeline for GPTQ in `lowbit quantize --algorithm gptq`: decoder
// layers are quantized in order, and the calibration inputs of layer i (its Hessians, and the
// ranges and sampled rows calibration.h records) come from running the model with layers < i
// already replaced by their GPTQ weights. The residual stream of every calibration sequence is
// kept between stages (DecoderModel::forward_layer), so each layer runs twice in all: once
// with its float weights to collect its Hessians (stopping before down_proj's product, which
// nothing reads), once with its GPTQ weights to make the next layer's input. lm_head, when it
// is quantized, is a last stage over the final residual stream.
//
// Precision follows the float model: a layer whose FloatLinear multiplies BF16-rounded
// activations (BF16 weights on a CPU with AVX512-BF16, FloatLinear::activation_type) gets its
// Hessian from those BF16 inputs and runs its GPTQ weights rounded to BF16 afterwards, which is
// what llm-compressor does for a BF16 model (bf16 activations; the fake-quantized weight written
// back into the bf16 parameter). Otherwise both stay fp32.
//
// Memory: the float model is mmap'd; the residual streams take tokens × hidden × 4 bytes
// (512 MB for 128 × 512 tokens of a 2048-wide model); one layer's GPTQ weights at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
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
  std::function<void(int64_t done, int64_t total)> progress;  // stages (decoder layers, lm_head)
};

// Called once per GPTQ-quantized layer, in model order, from the calling thread.
// `hessian` is the layer's H (for --gptq-dump).
using GptqEmit = std::function<void(const LayerPlan& layer, GptqResult&& result, const LayerCalib& observed,
                                    const std::vector<double>& hessian)>;

// Runs the stages and returns what was observed of every layer of a stage that had work
// (FLOAT layers included), by prefix. Layers of `plan` not in `grids` stay float.
// The float model shares `ckpt`'s mapping (and the GPTQ weights are read from it).
std::map<std::string, LayerCalib> run_gptq_sequential(std::shared_ptr<const Checkpoint> ckpt_ptr,
                                                      const QuantPlan& plan, const GptqSequentialOptions& o,
                                                      const GptqEmit& emit);

}  // namespace lowbit::quantize
