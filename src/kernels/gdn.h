// The Gated DeltaNet kernel seam (Qwen3-Next's linear-attention layers,
// ../shared/spec/qwen3-moe-next.md §2.5): the causal depthwise conv with its rolling window,
// and the gated delta rule over a ragged batch of sequences, each from its own fp32 state.
//
// Layouts (ours, documented here once):
//   conv input / output row of a token: mixed_qkv = [Q_all (Hk·dk) | K_all (Hk·dk) | V_all (Hv·dv)]
//   conv window of a sequence: [Kc−1, conv_dim] fp32, oldest row first (raw pre-conv rows)
//   conv weight: [conv_dim, Kc] fp32, w[c, Kc−1] multiplies the current token
//   recurrent state of a sequence: [Hv, dk, dv] fp32 row-major, S_j[i][e] (HF/FLA's layout)
//   a, b rows: Hv floats each (the raw in_proj_ba outputs, de-interleaved)
//   output row: [Hv·dv] fp32, o_j at column j·dv (before the gated norm)
// All math in fp32. v-head j reads k-head j / (Hv/Hk).
#pragma once

#include <cstdint>
#include <span>

namespace lowbit {

class ThreadPool;

struct GdnShape {
  int64_t num_k_heads = 0, num_v_heads = 0;  // Hk, Hv; Hv % Hk == 0
  int64_t k_dim = 0, v_dim = 0;              // dk, dv
  int64_t conv_kernel = 4;                   // Kc
  int64_t key_dim() const { return num_k_heads * k_dim; }
  int64_t value_dim() const { return num_v_heads * v_dim; }
  int64_t conv_dim() const { return 2 * key_dim() + value_dim(); }
  int64_t state_floats() const { return num_v_heads * k_dim * v_dim; }
  int64_t conv_state_floats() const { return (conv_kernel - 1) * conv_dim(); }
};

// One sequence's chunk of T new tokens.
struct GdnSequence {
  int64_t n_tokens = 0;
  // conv: raw mixed_qkv rows in, conv+silu rows out (may not alias)
  const float* conv_in = nullptr;
  int64_t conv_in_stride = 0;
  float* conv_out = nullptr;  // [T, conv_dim], row stride conv_dim
  float* conv_state = nullptr;  // [Kc−1, conv_dim], updated in place
  // delta rule: a/b rows (stride ab_stride, a at a, b at b), state updated in place
  const float* a = nullptr;
  const float* b = nullptr;
  int64_t ab_stride = 0;
  float* state = nullptr;  // [Hv, dk, dv]
  float* out = nullptr;    // [T, Hv·dv], row stride out_stride
  int64_t out_stride = 0;
};

// Per-layer constants, fp32 (converted once at load).
struct GdnWeights {
  const float* conv_weight = nullptr;  // [conv_dim, Kc]
  const float* a_log = nullptr;        // [Hv]
  const float* dt_bias = nullptr;      // [Hv]
};

// The chunked form's block: C = 64 as upstream (FLA, HF, llama.cpp).
inline constexpr int64_t kGdnChunkTokens = 64;

enum class GdnMode { kAuto, kRecurrent, kChunked };

// y_t = silu(Σ_j w[c, j] · x_{t−(Kc−1)+j}[c]) with x_{<0} from the window; the window then
// holds the last Kc−1 raw rows of [window ; x_0..x_{T−1}]. Parallel over channel blocks.
void gdn_conv(const GdnShape& shape, const GdnWeights& w, std::span<const GdnSequence> batch, ThreadPool& pool);

// From the conv outputs: β = σ(b), g = −exp(A_log)·softplus(a + dt_bias), q̂, k̂ L2-normed
// (eps 1e-6 inside the sqrt), q scaled by 1/sqrt(dk); then the gated delta rule from each
// sequence's state, outputs o (using the updated state) and the final state. Both forms give
// the same result to rounding. kAuto picks per backend from measurements (cpu/gdn_kernels.h):
// today the fused recurrence everywhere, which keeps each state panel in L1 across tokens and
// measured faster than the chunked form at every length. A backend whose chunked form wins
// must apply it to whole blocks of kGdnChunkTokens aligned to the chunk's start, so a token's
// arithmetic depends only on where its block starts; the serving scheduler cuts recurrent
// models' prompts on that grid, so batching would still not change outputs.
// Parallel over (sequence, v-head).
void gdn_delta_rule(const GdnShape& shape, const GdnWeights& w, std::span<const GdnSequence> batch, ThreadPool& pool,
                    GdnMode mode = GdnMode::kAuto);

}  // namespace lowbit
