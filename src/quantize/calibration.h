// Calibration for `lowbit quantize`: runs the FLOAT model over calibration tokens and
// observes the input of every linear layer through an observing LinearMethod decorator
// (installed with DecoderModel::for_each_linear): the running min/max (static activation
// scales), the same per input channel (SmoothQuant: the range of x / s for any smoothing
// vector s is exactly [min_j ch_min_j / s_j, max_j ch_max_j / s_j], so one pass serves both
// its α search and the final scales) and a bounded, evenly spread sample of input rows
// (the output-error report and the α search).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "schemes/linear_method.h"

namespace lowbit::quantize {

struct LayerCalib {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  // Per forward call (one calibration sequence) its min and max, averaged over the calls:
  // compressed-tensors static scales come from this. llm-compressor's default observer is a
  // moving average (0.01) dominated by whichever shuffled sample comes first; the plain mean
  // does not depend on the order and measured better (KLD on SmolLM2 W8A8_STATIC: 0.702 vs
  // 0.719 for llm-compressor, 0.768 with its moving average over our order, 0.838 with the
  // absolute min/max). msmodelslim W8A8 keeps the absolute min/max, as its writer does.
  float mean_min = 0, mean_max = 0;
  std::vector<float> ch_min, ch_max;  // [k] per input channel, over every row seen
  std::vector<double> ch_abs_sum;     // [k] Σ |x| per input channel (AWQ's mean activation)
  int64_t calls = 0;
  int64_t rows_seen = 0;
  int64_t k = 0;
  std::vector<float> sample;  // sample_rows() rows of k floats
  int64_t sample_rows() const { return k ? int64_t(sample.size()) / k : 0; }
};

// Wraps a layer: records its inputs, then runs it unchanged. Keeps row r of the input stream
// when r % stride == 0, up to max_rows rows.
class ObservingLinear final : public LinearMethod {
 public:
  ObservingLinear(std::unique_ptr<LinearMethod> inner, LayerCalib& stats, int64_t stride, int64_t max_rows);
  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override;
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  size_t weight_bytes() const override { return inner_->weight_bytes(); }
  bool reads_checkpoint_in_place() const override { return inner_->reads_checkpoint_in_place(); }
  std::string describe() const override { return "observed " + inner_->describe(); }

 private:
  std::unique_ptr<LinearMethod> inner_;
  LayerCalib& stats_;
  int64_t stride_, max_rows_;
};

struct CalibOptions {
  std::vector<int32_t> tokens;  // already cut to --calib-tokens
  int64_t seq_len = 512;        // tokens per forward (one sequence each)
  int64_t max_rows = 256;       // sampled input rows per layer
  int threads = 0;
  std::function<void(int64_t done, int64_t total)> progress;  // tokens
};

// Loads the float model from `ckpt` (sharing its mapping), runs every chunk of tokens through it and returns
// the observations by layer prefix. Token ids must be < vocab_size (an Error names the first
// one that is not).
std::map<std::string, LayerCalib> run_calibration(std::shared_ptr<const Checkpoint> ckpt, const CalibOptions& o);

// Calibration tokens: the text of `text_file` encoded with the model's tokenizer (no special
// tokens), or a JSON array of ids in `ids_file`; the first `count` of them.
std::vector<int32_t> load_calibration_tokens(const std::filesystem::path& model_dir, const std::filesystem::path& text_file,
                                             const std::filesystem::path& ids_file, int64_t count);

}  // namespace lowbit::quantize
