// DecoderModel's forward pass (models/decoder.h): batch layout and checks, the per-layer
// mixers (attention, Gated DeltaNet) and MLPs (dense, routed experts, shared expert), the head.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"
#include "models/decoder.h"
#include "models/decoder_layer.h"
#include "models/ops.h"
#include "models/tensor_parallel.h"

namespace lowbit {

namespace {
float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

void DecoderModel::prepare_recurrent(std::span<const SequenceChunk> batch, KvCache& cache) {
  RecurrentStates& states = cache.recurrent();
  auto& slots = ws_->state_slots;
  slots.clear();
  for (const SequenceChunk& ch : batch) {
    const int64_t s = ch.state_slot();
    if (s < 0 || s >= states.num_slots())
      fail("forward: recurrent slot {} outside the {} slots of the cache", s, states.num_slots());
    if (std::find(slots.begin(), slots.end(), s) != slots.end())
      fail("forward: recurrent slot {} appears twice in one batch", s);
    if (ch.start_pos != 0 && states.length(s) != ch.start_pos)
      fail("forward: the recurrent state in slot {} holds {} tokens but the chunk starts at position {} "
           "(a recurrent layer cannot skip or revisit positions)",
           s, states.length(s), ch.start_pos);
    if (ch.verify && !states.has_snapshots())
      fail("forward: a draft to verify needs a cache made with rollback snapshots (make_cache(..., speculative))");
    slots.push_back(s);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].start_pos == 0) states.reset(slots[i]);
    states.set_length(slots[i], batch[i].start_pos + int64_t(batch[i].tokens.size()));
  }
}

int64_t DecoderModel::begin_batch(std::span<const SequenceChunk> batch, const KvCache& cache) {
  const auto& c = local_;
  Workspace& w = *ws_;
  const int64_t h = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim,
                kv_dim = c.num_key_value_heads * c.head_dim;
  // The MLP buffers also hold the shared expert's activations.
  const int64_t mlp_width = std::max(c.intermediate_size, c.shared_expert_intermediate_size);

  // Lay the batch out token by token and validate it before touching the cache.
  int64_t T = 0, rows = 0, max_pos = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& ch = batch[i];
    if (ch.tokens.empty()) fail("forward: empty chunk for slot {}", ch.slot);
    if (ch.verify && (ch.tokens.size() != 2 || ch.start_pos == 0 || !ch.all_logits))
      fail("forward: a draft to verify is 2 tokens after at least one, with all logits (got {} at position {})",
           ch.tokens.size(), ch.start_pos);
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
  if (T == 0) return 0;
  rope_.ensure(max_pos);

  w.tokens = T;
  w.rows = rows;
  w.extend = false;  // a prompt chunk (prefill/extend), as opposed to decode tokens and drafts
  for (const auto& ch : batch) w.extend |= ch.tokens.size() > 1 && !ch.verify;
  grow(w.x, T * h);
  grow(w.xn, T * h);
  grow(w.tmp, T * h);
  grow(w.q, T * q_dim);
  grow(w.attn, T * q_dim);
  grow(w.k, T * kv_dim);
  grow(w.v, T * kv_dim);
  grow(w.gate, T * mlp_width);
  grow(w.up, T * mlp_width);
  grow(w.router_logits, T * c.moe.num_experts);
  if (traits_.attention_output_gate) grow(w.q_gated, T * 2 * q_dim);
  if (c.shared_expert_intermediate_size > 0) {
    grow(w.shared, T * h);
    grow(w.shared_weight, T);
  }
  grow(w.head_rows, rows * h);
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
  return T;
}

void DecoderModel::attention(const Layer& L, std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool) {
  const auto& c = local_;
  Workspace& w = *ws_;
  const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t q_dim = nh * hd, kv_dim = nkv * hd, li = L.kv_layer;
  const float eps = float(c.rms_norm_eps);
  const bool gated = traits_.attention_output_gate;

  if (gated) {
    // q_proj wrote [q_h | gate_h] per head: q to w.q for the kernels, the gates stay put.
    L.q_proj->apply(w.xn.data(), c.hidden_size, w.tokens, w.q_gated.data(), 2 * q_dim, pool);
    pool.parallel_for(w.tokens, 1, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t h = 0; h < nh; ++h)
          std::copy_n(w.q_gated.data() + t * 2 * q_dim + h * 2 * hd, hd, w.q.data() + t * q_dim + h * hd);
    });
  } else {
    L.q_proj->apply(w.xn.data(), c.hidden_size, w.tokens, w.q.data(), q_dim, pool);
  }
  L.k_proj->apply(w.xn.data(), c.hidden_size, w.tokens, w.k.data(), kv_dim, pool);
  L.v_proj->apply(w.xn.data(), c.hidden_size, w.tokens, w.v.data(), kv_dim, pool);

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
  //    tiles for prefill, GQA-group decode tiles with split-K for long contexts). A draft to
  //    verify goes token by token, as the decode steps it stands for would.
  w.attn_seqs.clear();
  int64_t t0 = 0;
  for (const SequenceChunk& ch : batch) {
    const int64_t n = int64_t(ch.tokens.size());
    const KvView view = cache.view(li, ch.kv());
    if (ch.verify) {
      for (int64_t i = 0; i < n; ++i)
        w.attn_seqs.push_back({view, ch.start_pos + i, 1, w.q.data() + (t0 + i) * q_dim, w.attn.data() + (t0 + i) * q_dim});
    } else {
      w.attn_seqs.push_back({view, ch.start_pos, n, w.q.data() + t0 * q_dim, w.attn.data() + t0 * q_dim});
    }
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

  if (gated)  // o ⊙ σ(gate), elementwise over each token's nq·d values
    pool.parallel_for(w.tokens, 1, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t h = 0; h < nh; ++h) {
          float* o = w.attn.data() + t * q_dim + h * hd;
          const float* g = w.q_gated.data() + t * 2 * q_dim + h * 2 * hd + hd;
          for (int64_t i = 0; i < hd; ++i) o[i] *= sigmoid(g[i]);
        }
    });
  L.o_proj->apply(w.attn.data(), q_dim, w.tokens, w.tmp.data(), c.hidden_size, pool);
}

void DecoderModel::moe(const Layer& L, ThreadPool& pool) {
  const auto& c = local_;
  Workspace& w = *ws_;
  const int64_t h = c.hidden_size, E = c.moe.num_experts, T = w.tokens;
  L.router->apply(w.xn.data(), h, T, w.router_logits.data(), E, pool);
  L.experts->apply(w.xn.data(), h, T, w.router_logits.data(), E, w.tmp.data(), h, pool);
  if (!L.shared_gate_proj) return;
  // tmp += σ(w_sg · x) · SwiGLU_shared(x), the order of transformers' Qwen3NextSparseMoeBlock.
  const int64_t fs = c.shared_expert_intermediate_size;
  L.shared_gate_proj->apply(w.xn.data(), h, T, w.gate.data(), fs, pool);
  L.shared_up_proj->apply(w.xn.data(), h, T, w.up.data(), fs, pool);
  L.shared_expert_gate->apply(w.xn.data(), h, T, w.shared_weight.data(), 1, pool);
  pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
    for (int64_t i = a; i < b; ++i) silu_mul(w.gate.data() + i * fs, w.up.data() + i * fs, fs);
  });
  L.shared_down_proj->apply(w.gate.data(), fs, T, w.shared.data(), h, pool);
  pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
    for (int64_t i = a; i < b; ++i) {
      const float g = sigmoid(w.shared_weight[size_t(i)]);
      for (int64_t j = 0; j < h; ++j) w.tmp[size_t(i * h + j)] += g * w.shared[size_t(i * h + j)];
    }
  });
}

void DecoderModel::run_layer(const Layer& L, std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool) {
  const auto& c = local_;
  Workspace& w = *ws_;
  const int64_t h = c.hidden_size, inter = c.intermediate_size, T = w.tokens;
  const float eps = float(c.rms_norm_eps);
  auto norm_rows = [&](const std::vector<float>& weight) {
    pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
      for (int64_t i = a; i < b; ++i) rms_norm(w.x.data() + i * h, weight.data(), eps, w.xn.data() + i * h, h);
    });
  };
  norm_rows(L.input_norm);
  if (L.linear_attn)
    L.linear_attn->forward(w.xn.data(), T, batch, w.state_slots, cache.recurrent(), L.recurrent_layer, pool, w.gdn,
                           w.tmp.data());
  else
    attention(L, batch, cache, pool);
  add_residual(w.tmp.data(), T);

  norm_rows(L.post_attention_norm);
  if (L.experts) {
    moe(L, pool);
  } else {
    L.gate_proj->apply(w.xn.data(), h, T, w.gate.data(), inter, pool);
    L.up_proj->apply(w.xn.data(), h, T, w.up.data(), inter, pool);
    pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
      for (int64_t i = a; i < b; ++i) silu_mul(w.gate.data() + i * inter, w.up.data() + i * inter, inter);
    });
    L.down_proj->apply(w.gate.data(), inter, T, w.tmp.data(), h, pool);
  }
  add_residual(w.tmp.data(), T);
}

void DecoderModel::add_residual(float* partial, int64_t tokens) {
  if (tp_)
    tp_->reduce_add(partial, ws_->x.data(), tokens, ws_->extend);
  else
    add_inplace(ws_->x.data(), partial, tokens * local_.hidden_size);
}

void DecoderModel::head(std::span<const SequenceChunk> batch, const std::vector<float>& norm, ThreadPool& pool,
                        std::vector<float>& logits, std::vector<float>* hidden, size_t logit_chunks) {
  const auto& c = local_;
  Workspace& w = *ws_;
  const int64_t h = c.hidden_size, T = w.tokens;
  const float eps = float(c.rms_norm_eps);
  if (hidden) {  // every token's normed row (MTP reads them), the head's rows copied from it
    hidden->resize(size_t(T * h));
    pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
      for (int64_t i = a; i < b; ++i) rms_norm(w.x.data() + i * h, norm.data(), eps, hidden->data() + i * h, h);
    });
  }
  // Final norm only on the rows whose logits are wanted, then the head.
  int64_t r = 0, t = 0;
  for (const auto& ch : batch.first(std::min(logit_chunks, batch.size()))) {
    const int64_t n = int64_t(ch.tokens.size());
    for (int64_t i = ch.all_logits ? 0 : n - 1; i < n; ++i, ++r) {
      float* row = w.head_rows.data() + r * h;
      if (hidden)
        std::copy_n(hidden->data() + (t + i) * h, h, row);
      else
        rms_norm(w.x.data() + (t + i) * h, norm.data(), eps, row, h);
    }
    t += n;
  }
  const int64_t rows = r;  // w.rows when every chunk wants logits
  if (rows == 0) return;
  grow(logits, rows * c.vocab_size);
  if (tp_) {  // vocab-parallel head: this rank's columns of the logits, then gathered
    const int64_t v = lm_head_->out_features();
    grow(w.local_logits, rows * v);
    lm_head_->apply(w.head_rows.data(), h, rows, w.local_logits.data(), v, pool);
    tp_->gather_vocab(w.local_logits.data(), rows, logits);
    return;
  }
  lm_head_->apply(w.head_rows.data(), h, rows, logits.data(), c.vocab_size, pool);
}

void DecoderModel::forward(std::span<const SequenceChunk> batch, KvCache& cache, ThreadPool& pool,
                           std::vector<float>& logits, std::vector<float>* hidden) {
  if (begin_batch(batch, cache) == 0) return;
  // Rank 0 of a tensor-parallel job: the other ranks run this same step (after the checks).
  if (tp_ && tp_group_->leader()) tp_group_->announce_forward(tp_id_, cache.tp_id(), batch);
  if (has_recurrent_state()) prepare_recurrent(batch, cache);
  for (const Layer& L : layers_) run_layer(L, batch, cache, pool);
  head(batch, final_norm_, pool, logits, hidden);
}

namespace {
// The layer-at-a-time calls (decoder.h) keep no recurrent state and announce nothing to other ranks.
void check_layer_stepping(const DecoderModel& m, const char* what) {
  if (m.tensor_parallel()) fail("{}: not available under tensor parallelism", what);
  if (m.has_recurrent_state()) fail("{}: not available for models with recurrent layers", what);
}
}  // namespace

void DecoderModel::embed(std::span<const SequenceChunk> batch, const KvCache& cache, std::vector<float>& x) {
  check_layer_stepping(*this, "embed");
  const int64_t T = begin_batch(batch, cache), h = local_.hidden_size;
  x.assign(ws_->x.begin(), ws_->x.begin() + T * h);
}

void DecoderModel::forward_layer(int64_t index, std::span<const SequenceChunk> batch, KvCache& cache,
                                 ThreadPool& pool, std::vector<float>& x) {
  check_layer_stepping(*this, "forward_layer");
  if (index < 0 || index >= int64_t(layers_.size()))
    fail("forward_layer: layer {} outside the model's {} layers", index, layers_.size());
  const int64_t T = begin_batch(batch, cache), h = local_.hidden_size;
  if (int64_t(x.size()) != T * h) fail("forward_layer: {} values for {} tokens of {}", x.size(), T, h);
  std::copy(x.begin(), x.end(), ws_->x.begin());
  run_layer(layers_[size_t(index)], batch, cache, pool);
  std::copy_n(ws_->x.begin(), T * h, x.begin());
}

void DecoderModel::forward_head(std::span<const SequenceChunk> batch, const KvCache& cache,
                                const std::vector<float>& x, ThreadPool& pool, std::vector<float>& logits) {
  check_layer_stepping(*this, "forward_head");
  const int64_t T = begin_batch(batch, cache), h = local_.hidden_size;
  if (int64_t(x.size()) != T * h) fail("forward_head: {} values for {} tokens of {}", x.size(), T, h);
  std::copy(x.begin(), x.end(), ws_->x.begin());
  head(batch, final_norm_, pool, logits, nullptr);
}

void DecoderModel::forward_mtp(std::span<const SequenceChunk> batch, std::span<const float> hidden, KvCache& cache,
                               ThreadPool& pool, std::vector<float>& logits, size_t logit_chunks) {
  if (!mtp_) fail("forward_mtp: the model was loaded without its MTP head");
  const int64_t T = begin_batch(batch, cache), h = local_.hidden_size;
  if (T == 0) return;
  for (const SequenceChunk& ch : batch)
    if (ch.verify) fail("forward_mtp: the MTP head takes no draft to verify");
  if (int64_t(hidden.size()) != T * h)
    fail("forward_mtp: {} hidden rows for {} tokens", int64_t(hidden.size()) / h, T);
  Workspace& w = *ws_;
  const float eps = float(config_.rms_norm_eps);
  // u = fc([N_e(embed(t_{p+1})) ; N_h(h_p)]): embedding first (§3.2); h_p is normed again.
  grow(w.mtp_in, T * 2 * h);
  pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
    for (int64_t i = a; i < b; ++i) {
      rms_norm(w.x.data() + i * h, mtp_->norm_embedding.data(), eps, w.mtp_in.data() + i * 2 * h, h);
      rms_norm(hidden.data() + i * h, mtp_->norm_hidden.data(), eps, w.mtp_in.data() + i * 2 * h + h, h);
    }
  });
  mtp_->fc->apply(w.mtp_in.data(), 2 * h, T, w.x.data(), h, pool);
  run_layer(mtp_->layer, batch, cache, pool);
  head(batch, mtp_->final_norm, pool, logits, nullptr, logit_chunks);
}

}  // namespace lowbit
