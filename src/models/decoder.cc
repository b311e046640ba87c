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
#include "models/ops.h"
#include "schemes/make_linear.h"

namespace lowbit {

struct DecoderModel::Layer {
  std::vector<float> input_norm, post_attention_norm, q_norm, k_norm;
  std::unique_ptr<LinearMethod> q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  // MoE layers (ArchTraits::load_moe_experts): router logits [T, E], then the experts; the
  // dense gate/up/down above are then null.
  std::unique_ptr<LinearMethod> router;
  std::unique_ptr<MoeMethod> experts;
};

// Activation buffers, grown to the largest batch seen and then reused: no per-token allocation.
struct DecoderModel::Workspace {
  int64_t tokens = 0;
  std::vector<float> x, xn, q, k, v, attn, tmp, gate, up, router_logits;
  std::vector<int64_t> chunk_of, pos_of;  // per token of the batch
  std::vector<AttentionSeq> attn_seqs;    // per chunk of the batch
  AttentionWorkspace attn_ws;
  std::vector<float> head_rows;           // final-normed rows that need logits
};

namespace {
SchemeSpec float_spec(const char* origin) {
  SchemeSpec s;
  s.origin = origin;
  return s;
}

}  // namespace

DecoderModel::DecoderModel(ModelConfig config, std::unique_ptr<Checkpoint> checkpoint)
    : config_(std::move(config)),
      traits_(arch_traits(config_.arch)),
      checkpoint_(std::move(checkpoint)),
      rope_(config_, 1),
      ws_(std::make_unique<Workspace>()) {}

DecoderModel::~DecoderModel() = default;

std::unique_ptr<DecoderModel> DecoderModel::load(const std::filesystem::path& dir, LoadProgress progress,
                                                 std::string_view quantization) {
  ModelConfig config = load_model_config(dir);
  auto checkpoint = std::make_unique<Checkpoint>(dir);
  auto format = detect_format(*checkpoint, config);
  // MoE routers stay as the checkpoint stores them (float unless it quantized them): online
  // quantization applies to the experts and the other linear layers only.
  std::unique_ptr<Format> online;
  if (!quantization.empty()) online = make_online_quant_format(detect_format(*checkpoint, config), quantization);
  std::unique_ptr<DecoderModel> model(new DecoderModel(std::move(config), std::move(checkpoint)));
  model->load_layers(online ? *online : *format, *format, progress);
  return model;
}

std::vector<float> DecoderModel::norm_weight(const std::string& name, int64_t size) const {
  return tensor_to_f32(checkpoint_->get(name, {DType::BF16, DType::F16, DType::F32}, {size}));
}

void DecoderModel::load_layers(const Format& format, const Format& router_format, LoadProgress& progress) {
  const auto& c = config_;
  const int64_t h = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim,
                kv_dim = c.num_key_value_heads * c.head_dim, inter = c.intermediate_size;
  const CpuFeatures& cpu = cpu_features();
  auto linear = [&](const std::string& prefix, int64_t in, int64_t out, bool bias, const Format* fmt = nullptr) {
    const Format& f = fmt ? *fmt : format;
    LinearTensors t = f.tensors_for(prefix, bias);
    prefault(t.weight.data, t.weight.nbytes());
    std::unique_ptr<LinearMethod> method;
    try {
      method = make_linear(f.spec_for(prefix), t, {in, out}, cpu);
    } catch (const Error& e) {
      // Schemes name the layer and tensor; the file is known here.
      const std::string file = checkpoint_->has(t.weight.name) ? checkpoint_->file_of(t.weight.name) : "";
      if (file.empty()) throw;
      fail("{}: {}", (checkpoint_->dir() / file).string(), e.what());
    }
    // A quantized scheme keeps its own packed copy: the checkpoint's pages would otherwise stay
    // resident beside it (the second copy of every weight that streaming load must avoid).
    if (!method->reads_checkpoint_in_place()) release_pages(t.weight.data, t.weight.nbytes());
    return method;
  };
  embed_tokens_ = checkpoint_->get("model.embed_tokens.weight", {DType::BF16, DType::F16, DType::F32}, {c.vocab_size, h});
  layers_.resize(size_t(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer& L = layers_[size_t(i)];
    L.input_norm = norm_weight(p + "input_layernorm.weight", h);
    L.post_attention_norm = norm_weight(p + "post_attention_layernorm.weight", h);
    if (traits_.qk_norm) {
      L.q_norm = norm_weight(p + "self_attn.q_norm.weight", c.head_dim);
      L.k_norm = norm_weight(p + "self_attn.k_norm.weight", c.head_dim);
    }
    L.q_proj = linear(p + "self_attn.q_proj", h, q_dim, c.attention_bias);
    L.k_proj = linear(p + "self_attn.k_proj", h, kv_dim, c.attention_bias);
    L.v_proj = linear(p + "self_attn.v_proj", h, kv_dim, c.attention_bias);
    L.o_proj = linear(p + "self_attn.o_proj", q_dim, h, c.attention_bias);
    if (traits_.load_moe_experts && c.is_moe_layer(i)) {
      L.router = linear(p + "mlp.gate", h, c.moe.num_experts, false, &router_format);
      L.experts = traits_.load_moe_experts(*checkpoint_, format, p + "mlp.", c, cpu);
    } else {
      L.gate_proj = linear(p + "mlp.gate_proj", h, inter, c.mlp_bias);
      L.up_proj = linear(p + "mlp.up_proj", h, inter, c.mlp_bias);
      L.down_proj = linear(p + "mlp.down_proj", inter, h, c.mlp_bias);
    }
    if (progress) progress(i + 1, c.num_hidden_layers);
  }
  final_norm_ = norm_weight("model.norm.weight", h);
  load_lm_head(cpu);
}

void DecoderModel::load_lm_head(const CpuFeatures& cpu) {
  const auto& c = config_;
  const int64_t h = c.hidden_size;
  const bool tied = c.tie_word_embeddings;
  LinearTensors t{tied ? "lm_head (tied to model.embed_tokens)" : "lm_head",
                  tied ? embed_tokens_
                       : checkpoint_->get("lm_head.weight", {DType::BF16, DType::F16, DType::F32}, {c.vocab_size, h}),
                  std::nullopt, {}};
  if (!runtime_options().quantize_lm_head) {
    // The head reads its float weights in place: tied weights are never duplicated.
    lm_head_ = make_linear(float_spec(tied ? "tied" : "hf:float"), t, {h, c.vocab_size}, cpu);
    prefault(embed_tokens_.data, embed_tokens_.nbytes());
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
  lm_head_ = make_linear(spec, t, {h, c.vocab_size}, cpu);
  release_pages(t.weight.data, t.weight.nbytes());
}

std::string DecoderModel::describe() const {
  std::string moe;
  for (const auto& L : layers_)
    if (L.experts) {
      moe = "; experts: " + L.experts->describe();
      break;
    }
  return fmt::format("{}: {} layers, hidden {}, heads {}/{} × {}, vocab {}; linear: {}{}", config_.architecture_name,
                     config_.num_hidden_layers, config_.hidden_size, config_.num_attention_heads,
                     config_.num_key_value_heads, config_.head_dim, config_.vocab_size,
                     layers_.empty() ? "-" : layers_[0].q_proj->describe(), moe);
}

size_t DecoderModel::weight_bytes() const {
  size_t total = embed_tokens_.nbytes();
  for (const auto& L : layers_) {
    for (const auto* m :
         {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj, &L.router})
      if (*m) total += (*m)->weight_bytes();
    if (L.experts) total += L.experts->weight_bytes();
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
    fn(p + "self_attn.q_proj", L.q_proj);
    fn(p + "self_attn.k_proj", L.k_proj);
    fn(p + "self_attn.v_proj", L.v_proj);
    fn(p + "self_attn.o_proj", L.o_proj);
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

KvCache DecoderModel::make_cache(int64_t num_slots, int64_t capacity) const {
  if (capacity > config_.max_position_embeddings)
    fail("context of {} tokens exceeds the model's max_position_embeddings ({})", capacity,
         config_.max_position_embeddings);
  return KvCache(config_.num_hidden_layers, config_.num_key_value_heads, config_.head_dim, num_slots, capacity,
                 kv_cache_dtype(embed_tokens_.dtype));
}

void DecoderModel::attention(const Layer& L, int64_t li, std::span<const SequenceChunk> batch, KvCache& cache,
                             ThreadPool& pool) {
  const auto& c = config_;
  Workspace& w = *ws_;
  const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t q_dim = nh * hd, kv_dim = nkv * hd;
  const float eps = float(c.rms_norm_eps);

  // 1. One pass over each token's q, k, v rows: per head q/k RMSNorm (Qwen3) and RoPE in place
  //    (the head row stays in L1 between the two), then k and v encoded straight into the
  //    cache in its dtype. Same fp32 operations, in the same order, as transformers.
  pool.parallel_for(w.tokens, 1, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const KvSeq seq = batch[size_t(w.chunk_of[size_t(t)])].kv();
      const int64_t pos = w.pos_of[size_t(t)];
      float* q = w.q.data() + t * q_dim;
      float* k = w.k.data() + t * kv_dim;
      const float* v = w.v.data() + t * kv_dim;
      for (int64_t h = 0; h < nh; ++h) {
        if (traits_.qk_norm) rms_norm(q + h * hd, L.q_norm.data(), eps, q + h * hd, hd);
        rope_.apply(q + h * hd, pos);
      }
      for (int64_t h = 0; h < nkv; ++h) {
        if (traits_.qk_norm) rms_norm(k + h * hd, L.k_norm.data(), eps, k + h * hd, hd);
        rope_.apply(k + h * hd, pos);
        cache.store(li, seq, 0, pos, h, k + h * hd);
        cache.store(li, seq, 1, pos, h, v + h * hd);
      }
    }
  });

  // 2. Causal GQA attention of every chunk over its slot's cache (kernels/attention.h: flash
  //    tiles for prefill, GQA-group decode tiles with split-K for long contexts).
  w.attn_seqs.clear();
  int64_t t0 = 0;
  for (const SequenceChunk& ch : batch) {
    const int64_t n = int64_t(ch.tokens.size());
    w.attn_seqs.push_back({cache.view(li, ch.kv()), ch.start_pos, n, w.q.data() + t0 * q_dim, w.attn.data() + t0 * q_dim});
    t0 += n;
  }
  AttentionBatch ab;
  ab.num_heads = nh;
  ab.num_kv_heads = nkv;
  ab.head_dim = hd;
  ab.scale = 1.0f / std::sqrt(float(hd));
  ab.ldq = ab.ldo = q_dim;
  ab.seqs = w.attn_seqs;
  run_attention(attention_kernels(), ab, pool, w.attn_ws);
}

void DecoderModel::forward(std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool,
                           std::vector<float>& logits) {
  const auto& c = config_;
  Workspace& w = *ws_;
  const int64_t h = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim,
                kv_dim = c.num_key_value_heads * c.head_dim, inter = c.intermediate_size;

  // Lay the batch out token by token and validate it before touching the cache.
  int64_t T = 0, rows = 0, max_pos = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& ch = batch[i];
    if (ch.tokens.empty()) fail("forward: empty chunk for slot {}", ch.slot);
    const int64_t end = ch.start_pos + int64_t(ch.tokens.size());
    if (!ch.pages.empty()) {
      if (!cache.pageable()) fail("forward: a page table needs a paged cache (pages of {} positions)", cache.page_size());
      if (ch.start_pos < 0 || end > int64_t(ch.pages.size()) * cache.page_size())
        fail("forward: a sequence would hold {} tokens, its {} pages hold {}", end, ch.pages.size(),
             int64_t(ch.pages.size()) * cache.page_size());
      for (int32_t p : ch.pages)
        if (p < 0 || p >= cache.num_pages()) fail("forward: page {} outside cache of {} pages", p, cache.num_pages());
    } else {
      if (ch.slot < 0 || ch.slot >= cache.num_slots())
        fail("forward: slot {} outside cache of {} slots", ch.slot, cache.num_slots());
      for (size_t j = 0; j < i; ++j)
        if (batch[j].pages.empty() && batch[j].slot == ch.slot) fail("forward: slot {} appears twice in one batch", ch.slot);
      if (ch.start_pos < 0 || end > cache.capacity())
        fail("forward: slot {} would hold {} tokens, cache capacity is {}", ch.slot, end, cache.capacity());
    }
    for (int32_t id : ch.tokens)
      if (id < 0 || id >= c.vocab_size) fail("forward: token id {} outside vocabulary of {}", id, c.vocab_size);
    T += int64_t(ch.tokens.size());
    rows += ch.all_logits ? int64_t(ch.tokens.size()) : 1;
    max_pos = std::max(max_pos, ch.start_pos + int64_t(ch.tokens.size()));
  }
  if (T == 0) return;
  rope_.ensure(max_pos);

  w.tokens = T;
  auto grow = [](std::vector<float>& v, int64_t n) {
    if (int64_t(v.size()) < n) v.resize(size_t(n));
  };
  grow(w.x, T * h);
  grow(w.xn, T * h);
  grow(w.tmp, T * h);
  grow(w.q, T * q_dim);
  grow(w.attn, T * q_dim);
  grow(w.k, T * kv_dim);
  grow(w.v, T * kv_dim);
  grow(w.gate, T * inter);
  grow(w.up, T * inter);
  grow(w.router_logits, T * c.moe.num_experts);
  grow(w.head_rows, rows * h);
  grow(logits, rows * c.vocab_size);
  w.chunk_of.resize(size_t(T));
  w.pos_of.resize(size_t(T));

  int64_t t = 0;
  for (size_t ci = 0; ci < batch.size(); ++ci) {
    const auto& ch = batch[ci];
    for (size_t i = 0; i < ch.tokens.size(); ++i, ++t) {
      w.chunk_of[size_t(t)] = int64_t(ci);
      w.pos_of[size_t(t)] = ch.start_pos + int64_t(i);
      convert_to_f32(embed_tokens_.dtype,
                     static_cast<const uint8_t*>(embed_tokens_.data) + size_t(ch.tokens[i]) * h * dtype_size(embed_tokens_.dtype),
                     w.x.data() + t * h, size_t(h));
    }
  }

  const float eps = float(c.rms_norm_eps);
  auto norm_rows = [&](const std::vector<float>& weight) {
    pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
      for (int64_t i = a; i < b; ++i) rms_norm(w.x.data() + i * h, weight.data(), eps, w.xn.data() + i * h, h);
    });
  };
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    norm_rows(L.input_norm);
    L.q_proj->apply(w.xn.data(), h, T, w.q.data(), q_dim, pool);
    L.k_proj->apply(w.xn.data(), h, T, w.k.data(), kv_dim, pool);
    L.v_proj->apply(w.xn.data(), h, T, w.v.data(), kv_dim, pool);
    attention(L, int64_t(li), batch, cache, pool);
    L.o_proj->apply(w.attn.data(), q_dim, T, w.tmp.data(), h, pool);
    add_inplace(w.x.data(), w.tmp.data(), T * h);

    norm_rows(L.post_attention_norm);
    if (L.experts) {
      const int64_t E = c.moe.num_experts;
      L.router->apply(w.xn.data(), h, T, w.router_logits.data(), E, pool);
      L.experts->apply(w.xn.data(), h, T, w.router_logits.data(), E, w.tmp.data(), h, pool);
      add_inplace(w.x.data(), w.tmp.data(), T * h);
      continue;
    }
    L.gate_proj->apply(w.xn.data(), h, T, w.gate.data(), inter, pool);
    L.up_proj->apply(w.xn.data(), h, T, w.up.data(), inter, pool);
    pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
      for (int64_t i = a; i < b; ++i) silu_mul(w.gate.data() + i * inter, w.up.data() + i * inter, inter);
    });
    L.down_proj->apply(w.gate.data(), inter, T, w.tmp.data(), h, pool);
    add_inplace(w.x.data(), w.tmp.data(), T * h);
  }

  // Final norm only on the rows whose logits are wanted, then the head.
  int64_t r = 0;
  t = 0;
  for (const auto& ch : batch) {
    const int64_t n = int64_t(ch.tokens.size());
    for (int64_t i = ch.all_logits ? 0 : n - 1; i < n; ++i, ++r)
      rms_norm(w.x.data() + (t + i) * h, final_norm_.data(), eps, w.head_rows.data() + r * h, h);
    t += n;
  }
  lm_head_->apply(w.head_rows.data(), h, rows, logits.data(), c.vocab_size, pool);
}

}  // namespace lowbit
