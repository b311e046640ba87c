// The pre-norm decoder shared by Llama, Qwen3, Qwen3-MoE and Qwen3-Next: embeddings, N ×
// (RMSNorm → token mixer → residual → RMSNorm → SwiGLU MLP → residual), final norm, lm_head.
// The mixer is GQA attention with RoPE, or in Qwen3-Next's linear-attention layers a Gated
// DeltaNet (models/gated_delta_net) with per-sequence recurrent state. Qwen3-MoE and
// Qwen3-Next replace the MLP of sparse layers by a router and a MoeMethod (routed experts).
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
#include "models/tp_group.h"
#include "schemes/linear_method.h"

namespace lowbit {

class ThreadPool;
class Format;
class TensorParallel;
struct CpuFeatures;

struct SequenceChunk {
  int64_t slot = 0;       // KV-cache slot of the sequence (when pages is empty)
  int64_t start_pos = 0;  // tokens of this sequence already in the cache
  std::span<const int32_t> tokens;
  bool all_logits = false;  // logits for every token of the chunk, else only for the last
  // Paged caches: the sequence's page table, covering at least start_pos + tokens.size()
  // positions. Pages written by this chunk must belong to this sequence alone.
  std::span<const int32_t> pages;
  // Paged caches of models with recurrent layers (Qwen3-Next): the sequence's slot of
  // KvCache::recurrent(). Slot caches use `slot` for both.
  int64_t recurrent_slot = -1;
  // A draft to verify (speculative decoding): two tokens computed exactly as two consecutive
  // decode steps would be (attention decode tiles, the delta rule token by token, the same
  // per-row GEMMs), so greedy output with speculation equals greedy output without it; the
  // recurrent layers also keep their state after the first token (RecurrentStates::rollback
  // undoes a rejected second token). Needs all_logits and a cache made with snapshots.
  bool verify = false;

  KvSeq kv() const { return {slot, pages}; }
  int64_t state_slot() const { return pages.empty() ? slot : recurrent_slot; }
};

// Called once per loaded layer: (layers done, total layers).
using LoadProgress = std::function<void(int64_t, int64_t)>;

// Qwen3-Next's MTP head for NEXTN speculative decoding: loaded only when asked for (it is
// ~1/48 of the model). `from` names a folder whose checkpoint holds the `mtp.*` tensors (SGLang's
// --speculative-draft-model-path: msmodelslim drops them when it quantizes); empty = the model's.
struct DraftHeadOptions {
  bool load = false;
  std::filesystem::path from;
};

class DecoderModel {
 public:
  // Reads DIR/config.json, opens the checkpoint, detects its format and builds every layer.
  // A non-empty `quantization` (e.g. "w8a8_int8", see online_quantization_methods()) quantizes
  // a float checkpoint's linear layers at load.
  // With a group of more than one rank (tensor parallelism, models/tp_group.h), each rank loads
  // only its slices (Megatron style, dist/tp_layout.h); on rank 0 every later call (caches,
  // forward steps, unload) is announced to the other ranks, which mirror it.
  static std::unique_ptr<DecoderModel> load(const std::filesystem::path& dir, LoadProgress progress = {},
                                            std::string_view quantization = {}, const DraftHeadOptions& draft = {},
                                            TpGroup* tp = nullptr);
  // The same from a checkpoint the caller already has open (its folder holds config.json):
  // the model shares that one mapping, so a caller that also reads the checkpoint's tensors
  // (lowbit quantize) does not map, and count as resident, every weight twice.
  static std::unique_ptr<DecoderModel> load(std::shared_ptr<const Checkpoint> checkpoint, LoadProgress progress = {},
                                            std::string_view quantization = {}, const DraftHeadOptions& draft = {},
                                            TpGroup* tp = nullptr);
  ~DecoderModel();

  // Tensor parallelism: null for one process.
  const TensorParallel* tensor_parallel() const { return tp_.get(); }
  // A collective of the tensor-parallel job failed (a rank died or hangs): the model cannot run
  // another step. Only with a recoverable communicator; otherwise the job has already ended.
  bool failed() const;
  // Rank 0 of a tensor-parallel job, idle: keeps the other ranks' deadline from expiring. Call
  // at least every second while no forward runs (the serving engine does); no-op otherwise.
  void idle();
  // The id rank 0 gave this model (followers learn it from the load call).
  void set_tp_id(int64_t id) { tp_id_ = id; }

  const ModelConfig& config() const { return config_; }
  const ArchTraits& traits() const { return traits_; }
  std::string describe() const;
  size_t weight_bytes() const;

  // A cache of num_slots pages of `capacity` positions (attention layers only), plus, for
  // models with recurrent layers, recurrent_slots state slots (default: num_slots, one per
  // slot-addressed sequence; the serving engine passes its running-request limit).
  // With the MTP head loaded the cache also holds its KV layer and the recurrent states keep
  // rollback snapshots (SequenceChunk::verify).
  KvCache make_cache(int64_t num_slots, int64_t capacity, int64_t recurrent_slots = -1) const;
  bool has_recurrent_state() const { return config_.num_linear_attention_layers() > 0; }
  bool has_mtp() const { return mtp_ != nullptr; }

  // Appends each chunk's tokens to its slot of `cache` and writes logits: for each chunk in
  // order, one row per token if all_logits, else one row (its last token); rows are
  // vocab_size floats. `logits` is resized (grown only) by the call.
  // With `hidden`, also every token's final-normed row (the vector the head reads), T × hidden
  // in batch order: the MTP head's input.
  void forward(std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool, std::vector<float>& logits,
               std::vector<float>* hidden = nullptr);
  // The MTP head over a batch whose token at position p is t_{p+1} (ids shifted left, positions
  // not), with hidden = the main model's final-normed h_p, one row per token in batch order.
  // Logits as forward(): they predict t_{p+2}. Writes the MTP layer's KV at those positions.
  // Logits only for the first `logit_chunks` chunks (the rows a draft is taken from: the
  // lm_head is most of the head's cost); the others only write the KV.
  void forward_mtp(std::span<const SequenceChunk> batch, std::span<const float> hidden, KvCache& cache,
                   ThreadPool& pool, std::vector<float>& logits, size_t logit_chunks = SIZE_MAX);

  // Layer at a time, for tools that change the model one decoder layer after another (the
  // quantizer's sequential GPTQ): they keep the residual stream of their calibration batch
  // between layers instead of recomputing every layer before the one they work on.
  // embed() writes each token's embedding row into `x` (T × hidden, batch order);
  // forward_layer() runs decoder layer `index` over those rows in place, writing the layer's
  // keys and values into `cache` as forward() does (if the layer throws, `x` is unchanged);
  // forward_head() runs the final norm and lm_head over them, logits as forward().
  // Single-process models without recurrent layers (an Error otherwise).
  void embed(std::span<const SequenceChunk> batch, const KvCache& cache, std::vector<float>& x);
  void forward_layer(int64_t index, std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool,
                     std::vector<float>& x);
  void forward_head(std::span<const SequenceChunk> batch, const KvCache& cache, const std::vector<float>& x,
                    ThreadPool& pool, std::vector<float>& logits);

  // Every linear layer with its checkpoint prefix ("model.layers.0.self_attn.q_proj", ...,
  // "lm_head"), replaceable in place: lets a tool wrap a layer, e.g. the quantizer's
  // calibration observer.
  void for_each_linear(const std::function<void(const std::string& prefix, std::unique_ptr<LinearMethod>&)>& fn);
  // Every MoE layer's router ("model.layers.1.mlp.gate") and experts, for cost models: a
  // decoded token reads the router and routing().top_k of the experts.
  void for_each_moe(const std::function<void(const std::string& prefix, const LinearMethod& router,
                                             const MoeMethod& experts)>& fn) const;
  // Tokens routed to each expert of each MoE layer since load (MoeMethod::expert_token_counts);
  // empty for dense models. Readable from any thread.
  struct ExpertTokens {
    int64_t layer = 0;
    std::vector<int64_t> tokens;  // [num_experts]
  };
  std::vector<ExpertTokens> expert_token_counts() const;

 private:
  struct Layer;
  struct Workspace;
  struct MtpHead;
  DecoderModel(ModelConfig config, std::shared_ptr<const Checkpoint> checkpoint);
  // `router_format` builds MoE routers: the checkpoint's own format, also under online
  // quantization (which `format` then applies to every other linear layer).
  void load_layers(const Format& format, const Format& router_format, LoadProgress& progress);
  // One decoder layer from `ckpt` at `prefix` ("model.layers.{i}." or "mtp.layers.0.").
  Layer load_layer(const Checkpoint& ckpt, const Format& format, const Format& router_format, const std::string& prefix,
                   bool linear_attention, bool moe, int64_t kv_layer, int64_t recurrent_layer);
  void load_mtp(const DraftHeadOptions& draft, std::string_view quantization);
  void load_lm_head(const CpuFeatures& cpu);
  std::vector<float> norm_weight(const Checkpoint& ckpt, const std::string& name, int64_t size) const;
  // The forward's pieces (decoder_forward.cc): lays out, checks and embeds a batch (returns
  // its tokens), one layer over the workspace's rows, and the final norm + head.
  int64_t begin_batch(std::span<const SequenceChunk> batch, const KvCache& cache);
  void run_layer(const Layer& layer, std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool);
  // Logits for the first logit_chunks chunks of the batch (all by default).
  void head(std::span<const SequenceChunk> batch, const std::vector<float>& norm, ThreadPool& pool,
            std::vector<float>& logits, std::vector<float>* hidden, size_t logit_chunks = SIZE_MAX);
  void attention(const Layer& layer, std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool);
  void moe(const Layer& layer, ThreadPool& pool);
  // Checks each chunk against its recurrent slot (fresh at position 0, else continuing where
  // the slot stands) and resets the slots of fresh sequences.
  void prepare_recurrent(std::span<const SequenceChunk> batch, KvCache& cache);

  ModelConfig config_;
  // What this rank runs: config_ with its share of heads, KV heads and intermediate sizes
  // under tensor parallelism, else config_ itself.
  ModelConfig local_;
  const ArchTraits& traits_;
  std::shared_ptr<const Checkpoint> checkpoint_;
  TensorView embed_tokens_;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  std::unique_ptr<LinearMethod> lm_head_;
  RopeTable rope_;
  std::unique_ptr<MtpHead> mtp_;
  std::unique_ptr<Workspace> ws_;
  TpGroup* tp_group_ = nullptr;
  std::unique_ptr<TensorParallel> tp_;
  int64_t tp_id_ = 0;
  // The residual add after a token mixer or an MLP: residual += partial, summed over ranks
  // first under tensor parallelism.
  void add_residual(float* partial, int64_t tokens);
};

}  // namespace lowbit
