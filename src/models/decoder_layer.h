// DecoderModel's private parts shared by its files: decoder.cc (loading), decoder_forward.cc
// (the forward pass) and mtp_head.cc (Qwen3-Next's draft head). Not for other users.
#pragma once

#include <memory>
#include <vector>

#include "kernels/attention.h"
#include "models/decoder.h"
#include "models/gated_delta_net.h"
#include "schemes/linear_method.h"
#include "schemes/moe_method.h"

namespace lowbit {

struct DecoderModel::Layer {
  std::vector<float> input_norm, post_attention_norm, q_norm, k_norm;
  // Attention layers: the projections (q_proj also yields the output gate with
  // ArchTraits::attention_output_gate) and the layer's index in the KV cache.
  std::unique_ptr<LinearMethod> q_proj, k_proj, v_proj, o_proj;
  int64_t kv_layer = -1;
  // Linear-attention layers (Qwen3-Next) instead: the Gated DeltaNet and its recurrent layer index.
  std::unique_ptr<GatedDeltaNet> linear_attn;
  int64_t recurrent_layer = -1;
  std::unique_ptr<LinearMethod> gate_proj, up_proj, down_proj;
  // MoE layers (ArchTraits::load_moe_experts): router logits [T, E], then the experts; the
  // dense gate/up/down above are then null.
  std::unique_ptr<LinearMethod> router;
  std::unique_ptr<MoeMethod> experts;
  // Qwen3-Next's shared expert: a SwiGLU added to the experts' sum times σ(shared_expert_gate · x).
  std::unique_ptr<LinearMethod> shared_gate_proj, shared_up_proj, shared_down_proj, shared_expert_gate;
};

// Qwen3-Next's MTP head (../shared/spec/qwen3-moe-next.md §3.1-3.2): for a row at position p,
// u = fc([N_e(embed(t_{p+1})) ; N_h(h_p)]), one decoder layer (gated attention at position p
// with its own KV layer, MoE with shared expert), then lm_head(N_final(u')). Embedding and head
// are the main model's.
struct DecoderModel::MtpHead {
  std::unique_ptr<Checkpoint> checkpoint;  // the draft folder's, when not the main checkpoint
  std::vector<float> norm_embedding, norm_hidden, final_norm;
  std::unique_ptr<LinearMethod> fc;  // [H, 2H]
  Layer layer;
};

// Activation buffers, grown to the largest batch seen and then reused: no per-token allocation.
struct DecoderModel::Workspace {
  int64_t tokens = 0, rows = 0;  // of the current batch: tokens, rows that need logits
  std::vector<float> x, xn, q, k, v, attn, tmp, gate, up, router_logits;
  std::vector<float> q_gated, shared, shared_weight;  // Qwen3-Next: q_proj output with gates, shared expert
  std::vector<float> mtp_in;                           // MTP: [T, 2H] normed embedding | hidden
  std::vector<int64_t> state_slots;                    // per chunk: recurrent slot
  GdnWorkspace gdn;
  std::vector<int64_t> chunk_of, pos_of;  // per token of the batch
  std::vector<AttentionSeq> attn_seqs;    // per chunk of the batch
  AttentionWorkspace attn_ws;
  std::vector<float> head_rows;           // final-normed rows that need logits
  std::vector<float> local_logits;        // tensor parallelism: this rank's vocab slice
  bool extend = false;                    // the batch holds a prompt chunk
};

}  // namespace lowbit
