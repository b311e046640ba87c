#include "models/decoder.h"

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/runtime_options.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "formats/format.h"
#include "kernels/attention.h"
#include "models/decoder_layer.h"
#include "models/ops.h"
#include "models/tensor_parallel.h"
#include "schemes/make_linear.h"

namespace lowbit {
namespace {
SchemeSpec float_spec(const char* origin) {
  SchemeSpec s;
  s.origin = origin;
  return s;
}

}  // namespace

DecoderModel::DecoderModel(ModelConfig config, std::shared_ptr<const Checkpoint> checkpoint)
    : config_(std::move(config)),
      local_(config_),
      traits_(arch_traits(config_.arch)),
      checkpoint_(std::move(checkpoint)),
      rope_(config_, 1),
      ws_(std::make_unique<Workspace>()) {}

DecoderModel::~DecoderModel() {
  if (tp_ && tp_group_->leader()) tp_group_->announce_unload(tp_id_);
}

bool DecoderModel::failed() const { return tp_ && tp_group_->comm().failed(); }

void DecoderModel::idle() {
  if (tp_ && tp_group_->leader()) tp_group_->heartbeat();
}

std::unique_ptr<DecoderModel> DecoderModel::load(const std::filesystem::path& dir, LoadProgress progress,
                                                 std::string_view quantization, const DraftHeadOptions& draft,
                                                 TpGroup* tp) {
  load_model_config(dir);  // a missing or bad config.json is named before the tensors are opened
  return load(std::make_shared<const Checkpoint>(dir), std::move(progress), quantization, draft, tp);
}

std::unique_ptr<DecoderModel> DecoderModel::load(std::shared_ptr<const Checkpoint> checkpoint, LoadProgress progress,
                                                 std::string_view quantization, const DraftHeadOptions& draft,
                                                 TpGroup* tp) {
  const std::filesystem::path& dir = checkpoint->dir();
  if (tp && tp->size() < 2) tp = nullptr;
  // Rank 0 announces the load first, so every rank reads its slices at the same time.
  const int64_t tp_id = tp && tp->leader() ? tp->announce_load(dir, quantization) : 0;
  ModelConfig config = load_model_config(dir);
  auto format = detect_format(*checkpoint, config);
  // MoE routers stay as the checkpoint stores them (float unless it quantized them): online
  // quantization applies to the experts and the other linear layers only.
  std::unique_ptr<Format> online;
  if (!quantization.empty()) online = make_online_quant_format(detect_format(*checkpoint, config), quantization);
  std::unique_ptr<DecoderModel> model(new DecoderModel(std::move(config), std::move(checkpoint)));
  if (tp) {
    if (draft.load) fail("--speculative-algorithm with --tp-size {}: speculative decoding is single-process only", tp->size());
    for (const std::string& name : model->checkpoint_->names())
      if (name.ends_with("mlp.experts.gate_up_proj"))
        fail("--tp-size {}: {} stores its experts as fused 3-D tensors ('{}', transformers 5's layout), which tensor "
             "parallelism does not split yet; per-expert tensors (experts.E.gate_proj.weight, ...) do",
             tp->size(), dir.string(), name);
    model->tp_group_ = tp;
    model->tp_id_ = tp_id;
    model->tp_ = std::make_unique<TensorParallel>(*tp, model->config_, online ? *online : *format);
    model->local_ = model->tp_->local_config();
    auto plan = [t = model->tp_.get()](const std::string& prefix) { return t->split_for(prefix); };
    format = dist::make_sharded_format(std::move(format), plan);
    if (online) online = dist::make_sharded_format(std::move(online), plan);
  }
  model->load_layers(online ? *online : *format, *format, progress);
  if (draft.load) model->load_mtp(draft, quantization);
  if (tp) {
    // Ranks finish loading at different times: wait for all (loading may take minutes), then
    // measure the link for `auto`.
    dist::Communicator& comm = tp->comm();
    const auto timeout = comm.timeout();
    comm.set_timeout(std::chrono::minutes(30));
    comm.barrier();
    comm.set_timeout(timeout);
    model->tp_->calibrate();
  }
  return model;
}

std::vector<float> DecoderModel::norm_weight(const Checkpoint& ckpt, const std::string& name, int64_t size) const {
  std::vector<float> w = tensor_to_f32(ckpt.get(name, {DType::BF16, DType::F16, DType::F32}, {size}));
  if (traits_.offset_norms)
    for (float& v : w) v += 1.0f;  // stored w, applied as 1 + w (fp32, as transformers computes it)
  return w;
}

namespace {
// One linear layer through `f`, with the checkpoint file named in errors.
std::unique_ptr<LinearMethod> build_linear(const Checkpoint& ckpt, const Format& f, const std::string& prefix,
                                           int64_t in, int64_t out, bool bias) {
  LinearTensors t = f.tensors_for(prefix, bias);
  prefault(t.weight.data, t.weight.nbytes());
  std::unique_ptr<LinearMethod> method;
  try {
    method = make_linear(f.spec_for(prefix), t, {in, out}, cpu_features());
  } catch (const Error& e) {
    // Schemes name the layer and tensor; the file is known here.
    const std::string file = ckpt.has(t.weight.name) ? ckpt.file_of(t.weight.name) : "";
    if (file.empty()) throw;
    fail("{}: {}", (ckpt.dir() / file).string(), e.what());
  }
  // A quantized scheme keeps its own packed copy: the checkpoint's pages would otherwise stay
  // resident beside it (the second copy of every weight that streaming load must avoid).
  if (!method->reads_checkpoint_in_place()) release_pages(t.weight.data, t.weight.nbytes());
  return method;
}
}  // namespace

DecoderModel::Layer DecoderModel::load_layer(const Checkpoint& ckpt, const Format& format, const Format& router_format,
                                             const std::string& p, bool linear_attention, bool moe, int64_t kv_layer,
                                             int64_t recurrent_layer) {
  const auto& c = local_;  // this rank's share under tensor parallelism
  const int64_t h = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim,
                kv_dim = c.num_key_value_heads * c.head_dim, inter = c.intermediate_size;
  auto linear = [&](const std::string& prefix, int64_t in, int64_t out, bool bias, const Format* fmt = nullptr) {
    return build_linear(ckpt, fmt ? *fmt : format, prefix, in, out, bias);
  };
  Layer L;
  L.input_norm = norm_weight(ckpt, p + "input_layernorm.weight", h);
  L.post_attention_norm = norm_weight(ckpt, p + "post_attention_layernorm.weight", h);
  if (linear_attention) {
    const LinearBuilder plain = [&](const std::string& prefix, int64_t in, int64_t out) {
      return linear(prefix, in, out, false);
    };
    L.linear_attn = std::make_unique<GatedDeltaNet>(ckpt, p + "linear_attn.", c, plain);
    L.recurrent_layer = recurrent_layer;
  } else {
    if (traits_.qk_norm) {
      L.q_norm = norm_weight(ckpt, p + "self_attn.q_norm.weight", c.head_dim);
      L.k_norm = norm_weight(ckpt, p + "self_attn.k_norm.weight", c.head_dim);
    }
    // With an output gate, q_proj's rows are [q_h | gate_h] per head (§2.4).
    L.q_proj = linear(p + "self_attn.q_proj", h, traits_.attention_output_gate ? 2 * q_dim : q_dim, c.attention_bias);
    L.k_proj = linear(p + "self_attn.k_proj", h, kv_dim, c.attention_bias);
    L.v_proj = linear(p + "self_attn.v_proj", h, kv_dim, c.attention_bias);
    L.o_proj = linear(p + "self_attn.o_proj", q_dim, h, c.attention_bias);
    L.kv_layer = kv_layer;
  }
  if (moe) {
    L.router = linear(p + "mlp.gate", h, c.moe.num_experts, false, &router_format);
    L.experts = traits_.load_moe_experts(ckpt, format, p + "mlp.", c, cpu_features());
    if (traits_.shared_expert && c.shared_expert_intermediate_size > 0) {
      const int64_t fs = c.shared_expert_intermediate_size;
      L.shared_gate_proj = linear(p + "mlp.shared_expert.gate_proj", h, fs, false);
      L.shared_up_proj = linear(p + "mlp.shared_expert.up_proj", h, fs, false);
      L.shared_down_proj = linear(p + "mlp.shared_expert.down_proj", fs, h, false);
      // One logit per token: stays as the checkpoint stores it, like the router.
      L.shared_expert_gate = linear(p + "mlp.shared_expert_gate", h, 1, false, &router_format);
    }
  } else {
    L.gate_proj = linear(p + "mlp.gate_proj", h, inter, c.mlp_bias);
    L.up_proj = linear(p + "mlp.up_proj", h, inter, c.mlp_bias);
    L.down_proj = linear(p + "mlp.down_proj", inter, h, c.mlp_bias);
  }
  return L;
}

void DecoderModel::load_layers(const Format& format, const Format& router_format, LoadProgress& progress) {
  const auto& c = config_;
  embed_tokens_ = checkpoint_->get("model.embed_tokens.weight", {DType::BF16, DType::F16, DType::F32},
                                   {c.vocab_size, c.hidden_size});
  layers_.reserve(size_t(c.num_hidden_layers));
  int64_t kv_layers = 0, recurrent_layers = 0;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const bool linear_attention = c.is_linear_attention_layer(i);
    layers_.push_back(load_layer(*checkpoint_, format, router_format, "model.layers." + std::to_string(i) + ".",
                                 linear_attention, traits_.load_moe_experts && c.is_moe_layer(i),
                                 linear_attention ? -1 : kv_layers, linear_attention ? recurrent_layers : -1));
    (linear_attention ? recurrent_layers : kv_layers)++;
    if (progress) progress(i + 1, c.num_hidden_layers);
  }
  final_norm_ = norm_weight(*checkpoint_, "model.norm.weight", c.hidden_size);
  load_lm_head(cpu_features());
}

void DecoderModel::load_mtp(const DraftHeadOptions& draft, std::string_view quantization) {
  const auto& c = config_;
  if (!traits_.shared_expert)
    fail("--speculative-algorithm NEXTN: {} has no MTP head (only Qwen3-Next has one)", c.architecture_name);
  auto head = std::make_unique<MtpHead>();
  const Checkpoint* ckpt = checkpoint_.get();
  ModelConfig draft_config = c;
  if (!draft.from.empty()) {
    head->checkpoint = std::make_unique<Checkpoint>(draft.from);
    ckpt = head->checkpoint.get();
    draft_config = load_model_config(draft.from);  // its own quantization_config decides its format
  }
  if (!ckpt->has("mtp.fc.weight"))
    fail("{}: no MTP weights (tensor 'mtp.fc.weight' not found), which --speculative-algorithm NEXTN needs; "
         "msmodelslim drops mtp.* when it quantizes Qwen3-Next: pass the float checkpoint's folder as "
         "--speculative-draft-model-path",
         ckpt->dir().string());
  auto format = detect_format(*ckpt, draft_config);
  std::unique_ptr<Format> online;
  if (!quantization.empty()) online = make_online_quant_format(detect_format(*ckpt, draft_config), quantization);
  const int64_t h = c.hidden_size;
  head->norm_embedding = norm_weight(*ckpt, "mtp.pre_fc_norm_embedding.weight", h);
  head->norm_hidden = norm_weight(*ckpt, "mtp.pre_fc_norm_hidden.weight", h);
  head->final_norm = norm_weight(*ckpt, "mtp.norm.weight", h);
  head->fc = build_linear(*ckpt, online ? *online : *format, "mtp.fc", 2 * h, h, false);
  // One full-attention layer, always MoE (SGLang's is_layer_sparse), with the KV layer after
  // the main model's attention layers.
  head->layer = load_layer(*ckpt, online ? *online : *format, *format, "mtp.layers.0.", false,
                           c.moe.num_experts > 0, c.num_hidden_layers - c.num_linear_attention_layers(), -1);
  mtp_ = std::move(head);
}

void DecoderModel::load_lm_head(const CpuFeatures& cpu) {
  const auto& c = config_;
  const int64_t h = c.hidden_size;
  const bool tied = c.tie_word_embeddings;
  LinearTensors t{tied ? "lm_head (tied to model.embed_tokens)" : "lm_head",
                  tied ? embed_tokens_
                       : checkpoint_->get("lm_head.weight", {DType::BF16, DType::F16, DType::F32}, {c.vocab_size, h}),
                  std::nullopt, {}, nullptr};
  int64_t vocab = c.vocab_size;
  if (tp_) {  // vocab-parallel: this rank's rows, a view (rows are contiguous)
    const dist::Range v = tp_->layout().vocab;
    t.weight.data = static_cast<const uint8_t*>(t.weight.data) + size_t(v.begin * h) * dtype_size(t.weight.dtype);
    t.weight.shape = {v.size(), h};
    vocab = v.size();
  }
  if (!runtime_options().quantize_lm_head) {
    // A float head copied into huge pages (--float-weights copy) has its mapped pages released
    // once copied, and a tied embedding pages back in only the rows tokens look up; mapped, the
    // head reads them in place. Either way it is not resident twice after load.
    prefault(t.weight.data, t.weight.nbytes());
    lm_head_ = make_linear(float_spec(tied ? "tied" : "hf:float"), t, {h, vocab}, cpu);
    if (!lm_head_->reads_checkpoint_in_place()) release_pages(t.weight.data, t.weight.nbytes());
    return;
  }
  // --quantize-lm-head: int8 per-channel weights with per-token int8 activations (W8A8
  // dynamic), half of BF16's bytes per decoded token (llama.cpp quantizes its head the same
  // way). The float source pages are released; a tied embedding stays mapped and only the rows
  // that tokens look up are paged back in, so the head is not held twice.
  SchemeSpec spec;
  spec.kind = SchemeKind::W8A8Dynamic;
  spec.weight = QuantArgs{8, NumKind::Int, Granularity::Channel, 0, 0, true, false};
  spec.activation = QuantArgs{8, NumKind::Int, Granularity::Token, 0, 0, true, true};
  spec.origin = "--quantize-lm-head";
  prefault(t.weight.data, t.weight.nbytes());
  lm_head_ = make_linear(spec, t, {h, vocab}, cpu);
  release_pages(t.weight.data, t.weight.nbytes());
}

std::string DecoderModel::describe() const {
  std::string moe;
  for (const auto& L : layers_)
    if (L.experts) {
      moe = "; experts: " + L.experts->describe();
      break;
    }
  std::string linear = "-", hybrid;
  for (const auto& L : layers_)
    if (L.o_proj) {
      linear = L.o_proj->describe();
      break;
    }
  if (const int64_t n = config_.num_linear_attention_layers())
    hybrid = fmt::format("; {} Gated DeltaNet layers", n);
  if (tp_) moe += "; " + tp_->describe();
  return fmt::format("{}: {} layers{}, hidden {}, heads {}/{} × {}, vocab {}; linear: {}{}", config_.architecture_name,
                     config_.num_hidden_layers, hybrid, config_.hidden_size, config_.num_attention_heads,
                     config_.num_key_value_heads, config_.head_dim, config_.vocab_size, linear, moe);
}

size_t DecoderModel::weight_bytes() const {
  size_t total = embed_tokens_.nbytes();
  for (const auto& L : layers_) {
    for (const auto* m : {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj,
                          &L.router, &L.shared_gate_proj, &L.shared_up_proj, &L.shared_down_proj,
                          &L.shared_expert_gate})
      if (*m) total += (*m)->weight_bytes();
    if (L.experts) total += L.experts->weight_bytes();
    if (L.linear_attn) total += L.linear_attn->weight_bytes();
  }
  // A tied head reading the embedding in place adds nothing; a quantized head is its own copy.
  if (!config_.tie_word_embeddings || !lm_head_->reads_checkpoint_in_place()) total += lm_head_->weight_bytes();
  return total;
}

void DecoderModel::for_each_linear(
    const std::function<void(const std::string& prefix, std::unique_ptr<LinearMethod>&)>& fn) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer& L = layers_[i];
    if (L.linear_attn) {
      L.linear_attn->for_each_linear(p + "linear_attn.", fn);
    } else {
      fn(p + "self_attn.q_proj", L.q_proj);
      fn(p + "self_attn.k_proj", L.k_proj);
      fn(p + "self_attn.v_proj", L.v_proj);
      fn(p + "self_attn.o_proj", L.o_proj);
    }
    if (L.shared_gate_proj) {
      fn(p + "mlp.shared_expert.gate_proj", L.shared_gate_proj);
      fn(p + "mlp.shared_expert.up_proj", L.shared_up_proj);
      fn(p + "mlp.shared_expert.down_proj", L.shared_down_proj);
    }
    // MoE layers: the router and the experts are not plain linear layers of the model (the
    // experts live inside their MoeMethod), so only dense MLPs are listed.
    if (!L.gate_proj) continue;
    fn(p + "mlp.gate_proj", L.gate_proj);
    fn(p + "mlp.up_proj", L.up_proj);
    fn(p + "mlp.down_proj", L.down_proj);
  }
  fn("lm_head", lm_head_);
}

void DecoderModel::for_each_moe(
    const std::function<void(const std::string& prefix, const LinearMethod& router, const MoeMethod& experts)>& fn)
    const {
  for (size_t i = 0; i < layers_.size(); ++i)
    if (layers_[i].experts)
      fn("model.layers." + std::to_string(i) + ".mlp.gate", *layers_[i].router, *layers_[i].experts);
}

std::vector<DecoderModel::ExpertTokens> DecoderModel::expert_token_counts() const {
  std::vector<ExpertTokens> out;
  for (size_t i = 0; i < layers_.size(); ++i)
    if (layers_[i].experts) out.push_back({int64_t(i), layers_[i].experts->expert_token_counts()});
  return out;
}

namespace {
// runtime_options().kv_cache_dtype → element type. "auto" follows the checkpoint's float type
// (its embedding matrix): BF16 for BF16/F16 checkpoints, F32 for F32 ones.
DType kv_cache_dtype(DType checkpoint_float) {
  const std::string& o = runtime_options().kv_cache_dtype;
  if (o == "f32") return DType::F32;
  if (o == "bf16") return DType::BF16;
  if (o == "fp8_e4m3") return DType::F8_E4M3;
  return checkpoint_float == DType::F32 ? DType::F32 : DType::BF16;
}
}  // namespace

KvCache DecoderModel::make_cache(int64_t num_slots, int64_t capacity, int64_t recurrent_slots) const {
  if (capacity > config_.max_position_embeddings)
    fail("context of {} tokens exceeds the model's max_position_embeddings ({})", capacity,
         config_.max_position_embeddings);
  const int64_t recurrent_layers = config_.num_linear_attention_layers();
  // Only attention layers keep KV, plus the MTP layer's when loaded (a model of linear-attention
  // layers alone still gets one layer, never read, so the pool's page accounting stays uniform).
  const int64_t kv_layers = config_.num_hidden_layers - recurrent_layers + (mtp_ ? 1 : 0);
  KvCache cache(std::max<int64_t>(1, kv_layers), local_.num_key_value_heads, config_.head_dim, num_slots, capacity,
                kv_cache_dtype(embed_tokens_.dtype));
  if (recurrent_layers > 0) {
    const LinearAttentionConfig& la = config_.linear_attention;
    const GdnShape shape{la.num_key_heads, la.num_value_heads, la.key_head_dim, la.value_head_dim, la.conv_kernel};
    cache.set_recurrent(RecurrentStates(recurrent_layers, recurrent_slots < 0 ? num_slots : recurrent_slots,
                                        shape.conv_state_floats(), shape.state_floats(), /*snapshots=*/mtp_ != nullptr));
  }
  if (tp_ && tp_group_->leader()) {
    // The other ranks make the same cache (their KV heads); it is dropped there with this one.
    const int64_t id = tp_group_->announce_make_cache(tp_id_, num_slots, capacity, recurrent_slots);
    TpGroup* group = tp_group_;
    const int64_t model = tp_id_;
    cache.set_tp_handle(id, std::shared_ptr<void>(nullptr, [group, model, id](void*) {
                          group->announce_drop_cache(model, id);
                        }));
  }
  return cache;
}

}  // namespace lowbit
