#include "models/gated_delta_net.h"

#include <cmath>

#include "core/error.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "models/decoder.h"
#include "models/ops.h"
#include "models/recurrent_state.h"

namespace lowbit {

namespace {

std::vector<float> float_tensor(const Checkpoint& ckpt, const std::string& name, std::vector<int64_t> shape) {
  return tensor_to_f32(ckpt.get(name, {DType::BF16, DType::F16, DType::F32}, std::move(shape)));
}

}  // namespace

GatedDeltaNet::GatedDeltaNet(const Checkpoint& ckpt, const std::string& p, const ModelConfig& c,
                             const LinearBuilder& linear)
    : hidden_(c.hidden_size), eps_(float(c.rms_norm_eps)) {
  const LinearAttentionConfig& la = c.linear_attention;
  shape_ = GdnShape{la.num_key_heads, la.num_value_heads, la.key_head_dim, la.value_head_dim, la.conv_kernel};
  const int64_t Hk = shape_.num_k_heads, Hv = shape_.num_v_heads, dk = shape_.k_dim, dv = shape_.v_dim;
  const int64_t r = Hv / Hk, key_dim = shape_.key_dim(), value_dim = shape_.value_dim(), conv_dim = shape_.conv_dim();
  const int64_t Kc = shape_.conv_kernel;

  in_proj_qkvz_ = linear(p + "in_proj_qkvz", hidden_, 2 * key_dim + 2 * value_dim);
  in_proj_ba_ = linear(p + "in_proj_ba", hidden_, 2 * Hv);
  out_proj_ = linear(p + "out_proj", value_dim, hidden_);
  conv_weight_ = float_tensor(ckpt, p + "conv1d.weight", {conv_dim, 1, Kc});  // [conv_dim, Kc] as laid out
  a_log_ = float_tensor(ckpt, p + "A_log", {Hv});
  dt_bias_ = float_tensor(ckpt, p + "dt_bias", {Hv});
  norm_ = float_tensor(ckpt, p + "norm.weight", {dv});  // the plain flavour: w, not 1 + w (§2.2)

  // §2.5.1: rows of group g (G = 2·dk + 2·r·dv of in_proj_qkvz, 2·r of in_proj_ba) hold
  // q_g | k_g | v heads g·r.. | z heads g·r..; b heads g·r.. | a heads g·r...
  const int64_t G = 2 * dk + 2 * r * dv;
  mixed_src_.resize(size_t(conv_dim));
  for (int64_t ch = 0; ch < conv_dim; ++ch) {
    int64_t src;
    if (ch < key_dim) {
      src = (ch / dk) * G + ch % dk;
    } else if (ch < 2 * key_dim) {
      const int64_t c2 = ch - key_dim;
      src = (c2 / dk) * G + dk + c2 % dk;
    } else {
      const int64_t c2 = ch - 2 * key_dim;
      src = (c2 / (r * dv)) * G + 2 * dk + c2 % (r * dv);
    }
    mixed_src_[size_t(ch)] = int32_t(src);
  }
  z_src_.resize(size_t(value_dim));
  for (int64_t ch = 0; ch < value_dim; ++ch) z_src_[size_t(ch)] = int32_t((ch / (r * dv)) * G + 2 * dk + r * dv + ch % (r * dv));
  b_src_.resize(size_t(Hv));
  a_src_.resize(size_t(Hv));
  for (int64_t j = 0; j < Hv; ++j) {
    b_src_[size_t(j)] = int32_t((j / r) * 2 * r + j % r);
    a_src_[size_t(j)] = int32_t((j / r) * 2 * r + r + j % r);
  }
}

void GatedDeltaNet::forward(const float* xn, int64_t T, std::span<const SequenceChunk> batch,
                            std::span<const int64_t> slots, RecurrentStates& states, int64_t layer, ThreadPool& pool,
                            GdnWorkspace& ws, float* out) const {
  const int64_t Hv = shape_.num_v_heads, dv = shape_.v_dim, conv_dim = shape_.conv_dim(),
                value_dim = shape_.value_dim(), qkvz_dim = in_proj_qkvz_->out_features();
  grow(ws.qkvz, T * qkvz_dim);
  grow(ws.ba, T * 2 * Hv);
  grow(ws.mixed, T * conv_dim);
  grow(ws.conv, T * conv_dim);
  grow(ws.z, T * value_dim);
  grow(ws.a, T * Hv);
  grow(ws.b, T * Hv);
  grow(ws.core, T * value_dim);
  in_proj_qkvz_->apply(xn, hidden_, T, ws.qkvz.data(), qkvz_dim, pool);
  in_proj_ba_->apply(xn, hidden_, T, ws.ba.data(), 2 * Hv, pool);

  pool.parallel_for(T, 1, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* qkvz = ws.qkvz.data() + t * qkvz_dim;
      const float* ba = ws.ba.data() + t * 2 * Hv;
      float* mixed = ws.mixed.data() + t * conv_dim;
      float* z = ws.z.data() + t * value_dim;
      for (int64_t ch = 0; ch < conv_dim; ++ch) mixed[ch] = qkvz[mixed_src_[size_t(ch)]];
      for (int64_t ch = 0; ch < value_dim; ++ch) z[ch] = qkvz[z_src_[size_t(ch)]];
      for (int64_t j = 0; j < Hv; ++j) {
        ws.b[size_t(t * Hv + j)] = ba[b_src_[size_t(j)]];
        ws.a[size_t(t * Hv + j)] = ba[a_src_[size_t(j)]];
      }
    }
  });

  // A draft to verify runs token by token, saving the state after its first token for a
  // rollback (SequenceChunk::verify); everything else runs in one call.
  const GdnWeights weights{conv_weight_.data(), a_log_.data(), dt_bias_.data()};
  auto piece = [&](size_t i, int64_t first, int64_t n) {
    const int64_t t = first;
    GdnSequence s;
    s.n_tokens = n;
    s.conv_in = ws.mixed.data() + t * conv_dim;
    s.conv_in_stride = conv_dim;
    s.conv_out = ws.conv.data() + t * conv_dim;
    s.conv_state = states.conv(layer, slots[i]);
    s.a = ws.a.data() + t * Hv;
    s.b = ws.b.data() + t * Hv;
    s.ab_stride = Hv;
    s.state = states.state(layer, slots[i]);
    s.out = ws.core.data() + t * value_dim;
    s.out_stride = value_dim;
    ws.seqs.push_back(s);
  };
  auto run = [&] {
    gdn_conv(shape_, weights, ws.seqs, pool);
    gdn_delta_rule(shape_, weights, ws.seqs, pool);
    ws.seqs.clear();
  };
  ws.seqs.clear();
  bool verify = false;
  for (int64_t i = 0, t0 = 0; i < int64_t(batch.size()); t0 += int64_t(batch[size_t(i)].tokens.size()), ++i) {
    verify = verify || batch[size_t(i)].verify;
    piece(size_t(i), t0, batch[size_t(i)].verify ? 1 : int64_t(batch[size_t(i)].tokens.size()));
  }
  run();
  if (verify) {
    for (int64_t i = 0, t0 = 0; i < int64_t(batch.size()); t0 += int64_t(batch[size_t(i)].tokens.size()), ++i) {
      const SequenceChunk& ch = batch[size_t(i)];
      if (!ch.verify) continue;
      states.save(layer, slots[size_t(i)]);
      for (int64_t k = 1; k < int64_t(ch.tokens.size()); ++k) piece(size_t(i), t0 + k, 1);
    }
    run();
  }

  // §2.5.7: per v-head, w ⊙ RMSNorm(o) ⊙ silu(z), eps = rms_norm_eps, the weight shared by heads.
  pool.parallel_for(T, 1, [&](int64_t a, int64_t b, int) {
    for (int64_t t = a; t < b; ++t)
      for (int64_t j = 0; j < Hv; ++j) {
        float* o = ws.core.data() + t * value_dim + j * dv;
        const float* z = ws.z.data() + t * value_dim + j * dv;
        rms_norm(o, norm_.data(), eps_, o, dv);
        for (int64_t e = 0; e < dv; ++e) o[e] *= z[e] / (1.0f + std::exp(-z[e]));
      }
  });
  out_proj_->apply(ws.core.data(), value_dim, T, out, hidden_, pool);
}

void GatedDeltaNet::for_each_linear(const std::string& p,
                                    const std::function<void(const std::string&, std::unique_ptr<LinearMethod>&)>& fn) {
  fn(p + "in_proj_qkvz", in_proj_qkvz_);
  fn(p + "in_proj_ba", in_proj_ba_);
  fn(p + "out_proj", out_proj_);
}

size_t GatedDeltaNet::weight_bytes() const {
  return in_proj_qkvz_->weight_bytes() + in_proj_ba_->weight_bytes() + out_proj_->weight_bytes() +
         (conv_weight_.size() + a_log_.size() + dt_bias_.size() + norm_.size()) * sizeof(float);
}

size_t GatedDeltaNet::state_bytes() const {
  return size_t(shape_.conv_state_floats() + shape_.state_floats()) * sizeof(float);
}

}  // namespace lowbit
