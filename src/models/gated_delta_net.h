// Qwen3-Next's Gated DeltaNet token mixer (HF Qwen3NextGatedDeltaNet,
// ../shared/spec/qwen3-moe-next.md §2.5): fused projections, causal depthwise conv with a
// rolling window, the gated delta rule from each sequence's recurrent state, the gated RMSNorm
// and the output projection. The math after the projections is kernels/gdn.h.
//
// The fused projections stay as the checkpoint stores them (rows grouped per k-head, §2.5.1),
// one LinearMethod each, so every format and scheme loads them unchanged (per-row scales,
// zero points and packed int4 rows included); their outputs are de-interleaved per token by a
// fixed row map — a gather of ~(2·key_dim + 2·value_dim) floats, exact, instead of permuting
// quantized rows at load.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "kernels/gdn.h"
#include "schemes/linear_method.h"

namespace lowbit {

class Checkpoint;
class RecurrentStates;
class ThreadPool;
struct SequenceChunk;

// Builds one linear layer from its checkpoint prefix with (in, out) features.
using LinearBuilder = std::function<std::unique_ptr<LinearMethod>(const std::string& prefix, int64_t in, int64_t out)>;

// Activation buffers shared by every GDN layer of a model, grown to the largest batch.
struct GdnWorkspace {
  std::vector<float> qkvz, ba, mixed, conv, z, a, b, core;
  std::vector<GdnSequence> seqs;
};

class GatedDeltaNet {
 public:
  // `prefix` = "model.layers.{i}.linear_attn.".
  GatedDeltaNet(const Checkpoint& checkpoint, const std::string& prefix, const ModelConfig& config,
                const LinearBuilder& linear);

  // xn: T normed rows of hidden_size; out: T rows of hidden_size (the mixer's output, before the
  // residual). `layer` indexes the recurrent layers of `states`; chunk c uses slot slots[c].
  void forward(const float* xn, int64_t T, std::span<const SequenceChunk> batch, std::span<const int64_t> slots,
               RecurrentStates& states, int64_t layer, ThreadPool& pool, GdnWorkspace& ws, float* out) const;

  const GdnShape& shape() const { return shape_; }
  void for_each_linear(const std::string& prefix,
                       const std::function<void(const std::string&, std::unique_ptr<LinearMethod>&)>& fn);
  size_t weight_bytes() const;
  // Bytes of recurrent state (conv window + matrix) one sequence reads and writes per token.
  size_t state_bytes() const;

 private:
  GdnShape shape_;
  int64_t hidden_ = 0;
  float eps_ = 1e-6f;
  std::unique_ptr<LinearMethod> in_proj_qkvz_, in_proj_ba_, out_proj_;
  std::vector<float> conv_weight_, a_log_, dt_bias_, norm_;
  // Row of the fused outputs that feeds each de-interleaved channel (§2.5.1).
  std::vector<int32_t> mixed_src_, z_src_, b_src_, a_src_;
};

}  // namespace lowbit
