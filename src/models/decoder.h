// The pre-norm decoder shared by Llama, Qwen3 and Qwen3-MoE: embeddings, N × (RMSNorm → GQA
// attention with RoPE → residual → RMSNorm → SwiGLU MLP → residual), final norm, lm_head.
// Qwen3-MoE replaces the MLP of its sparse layers by a router and a MoeMethod (routed experts).
// Architecture differences come from ArchTraits; every linear layer is a LinearMethod built
// by the checkpoint's Format, so this file knows nothing of dtypes or quantization.
//
// One forward() takes a ragged batch: several sequences (cache slots), each contributing a
// chunk of new tokens at its own position, so prefill chunks and single decode tokens mix
// in the same call. Linear layers run once over all tokens of the batch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "io/checkpoint.h"
#include "io/model_config.h"
#include "models/arch.h"
#include "models/kv_cache.h"
#include "models/rope.h"
#include "schemes/linear_method.h"

namespace lowbit {

class ThreadPool;
class Format;
struct CpuFeatures;

struct SequenceChunk {
  int64_t slot = 0;       // KV-cache slot of the sequence (when pages is empty)
  int64_t start_pos = 0;  // tokens of this sequence already in the cache
  std::span<const int32_t> tokens;
  bool all_logits = false;  // logits for every token of the chunk, else only for the last
  // Paged caches: the sequence's page table, covering at least start_pos + tokens.size()
  // positions. Pages written by this chunk must belong to this sequence alone.
  std::span<const int32_t> pages;

  KvSeq kv() const { return {slot, pages}; }
};

// Called once per loaded layer: (layers done, total layers).
using LoadProgress = std::function<void(int64_t, int64_t)>;

class DecoderModel {
 public:
  // Reads DIR/config.json, opens the checkpoint, detects its format and builds every layer.
  // A non-empty `quantization` (e.g. "w8a8_int8", see online_quantization_methods()) quantizes
  // a float checkpoint's linear layers at load.
  static std::unique_ptr<DecoderModel> load(const std::filesystem::path& dir, LoadProgress progress = {},
                                            std::string_view quantization = {});
  ~DecoderModel();

  const ModelConfig& config() const { return config_; }
  const ArchTraits& traits() const { return traits_; }
  std::string describe() const;
  size_t weight_bytes() const;

  KvCache make_cache(int64_t num_slots, int64_t capacity) const;

  // Appends each chunk's tokens to its slot of `cache` and writes logits: for each chunk in
  // order, one row per token if all_logits, else one row (its last token); rows are
  // vocab_size floats. `logits` is resized (grown only) by the call.
  void forward(std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool, std::vector<float>& logits);

  // Every linear layer with its checkpoint prefix ("model.layers.0.self_attn.q_proj", ...,
  // "lm_head"), replaceable in place: lets a tool wrap a layer, e.g. the quantizer's
  // calibration observer.
  void for_each_linear(const std::function<void(const std::string& prefix, std::unique_ptr<LinearMethod>&)>& fn);
  // Every MoE layer's router ("model.layers.1.mlp.gate") and experts, for cost models: a
  // decoded token reads the router and routing().top_k of the experts.
  void for_each_moe(const std::function<void(const std::string& prefix, const LinearMethod& router,
                                             const MoeMethod& experts)>& fn) const;

 private:
  struct Layer;
  struct Workspace;
  DecoderModel(ModelConfig config, std::unique_ptr<Checkpoint> checkpoint);
  // `router_format` builds MoE routers: the checkpoint's own format, also under online
  // quantization (which `format` then applies to every other linear layer).
  void load_layers(const Format& format, const Format& router_format, LoadProgress& progress);
  void load_lm_head(const CpuFeatures& cpu);
  std::vector<float> norm_weight(const std::string& name, int64_t size) const;
  void attention(const Layer& layer, int64_t layer_index, std::span<const SequenceChunk> batch, KvCache& cache,
                 ThreadPool& pool);

  ModelConfig config_;
  const ArchTraits& traits_;
  std::unique_ptr<Checkpoint> checkpoint_;
  TensorView embed_tokens_;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  std::unique_ptr<LinearMethod> lm_head_;
  RopeTable rope_;
  std::unique_ptr<Workspace> ws_;
};

}  // namespace lowbit
