// What a model sees of a routed mixture-of-experts FFN (Qwen3-MoE; Qwen3-Next adds its shared
// expert beside it): y = Σ_{j<k} w_j · E_{I_j}(x), with (w, I) the top-k of softmax(router
// logits) and E_e(x) = W_down,e · (silu(W_gate,e x) ⊙ W_up,e x). The model computes the router
// logits (a LinearMethod, float unless the checkpoint says otherwise) and hands them over; it
// never knows how the experts are stored. Each expert's matrices are LinearMethods built by the
// checkpoint's Format, so every scheme (and online --quantization) works on experts.
// ../shared/spec/qwen3-moe-next.md §1.4 has the math.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "schemes/linear_method.h"

namespace lowbit {

class ThreadPool;

struct MoeRouting {
  int64_t num_experts = 0, top_k = 0;
  bool normalize = false;  // norm_topk_prob: divide the k kept probabilities by their sum
};

class MoeMethod {
 public:
  virtual ~MoeMethod() = default;
  // x: m rows of hidden_size() floats, ldx apart; router_logits: m rows of num_experts floats,
  // ldr apart; y: m rows of hidden_size(), ldy apart, overwritten. Grows its scratch to the
  // largest batch seen, then does not allocate.
  virtual void apply(const float* x, int64_t ldx, int64_t m, const float* router_logits, int64_t ldr, float* y,
                     int64_t ldy, ThreadPool& pool) const = 0;
  virtual int64_t hidden_size() const = 0;
  virtual const MoeRouting& routing() const = 0;
  // Bytes of all experts' weights (memory reports), and of one expert (decode rooflines: a
  // token reads top_k experts).
  virtual size_t weight_bytes() const = 0;
  virtual size_t expert_weight_bytes() const = 0;
  virtual std::string describe() const = 0;
  // Tokens routed to each expert since load (each of a token's top-k choices counts once):
  // the load-balance view users tuning MoE ask for (`serve --enable-expert-distribution-metrics`,
  // `bench`). Safe to read from another thread while apply() runs.
  virtual std::vector<int64_t> expert_token_counts() const = 0;
};

// One expert's projections. Gate and up are one [2F, H] matrix (rows [0, F) gate, [F, 2F) up:
// one GEMM over the expert's tokens) whenever the checkpoint allows it; a quantized checkpoint
// whose gate and up carry their own scales keeps them as two matrices.
struct ExpertLinears {
  std::unique_ptr<LinearMethod> gate_up;   // [2F, H], or null when gate and up are separate
  std::unique_ptr<LinearMethod> gate, up;  // [F, H] each, only when gate_up is null
  std::unique_ptr<LinearMethod> down;      // [H, F]
};

// The CPU implementation (schemes/routed_experts.cc). `storage` keeps alive memory the
// experts' LinearMethods read in place (float experts repacked from per-expert tensors into
// one [E, 2F, H] buffer); may be null. Errors name `prefix` when the experts disagree in shape.
std::unique_ptr<MoeMethod> make_routed_experts(const std::string& prefix, MoeRouting routing,
                                               std::vector<ExpertLinears> experts, std::shared_ptr<void> storage);

// Routing of a batch, grouped by expert: the step the CPU implementation runs first, exposed
// for tests. Slot s = token·k + j is the token's j-th choice (descending probability; ties go
// to the lower expert id, torch.topk leaves them unspecified).
struct RoutePlan {
  std::vector<int32_t> expert;   // [m·k] expert of each slot
  std::vector<float> weight;     // [m·k] its routing weight (fp32)
  std::vector<int64_t> offsets;  // [E + 1]: expert e's slots are order[offsets[e], offsets[e+1])
  std::vector<int32_t> order;    // [m·k] slots grouped by expert, tokens ascending within one
};
void route_tokens(const float* router_logits, int64_t ldr, int64_t m, const MoeRouting& routing, RoutePlan& plan);

// Mean over max of tokens per expert (SGLang's EPLB balancedness, over experts instead of
// GPUs): 1 when every expert got the same share, 1/E when one expert got them all; 1 before
// any token.
inline double expert_balancedness(const std::vector<int64_t>& tokens) {
  int64_t sum = 0, max = 0;
  for (int64_t t : tokens) {
    sum += t;
    max = t > max ? t : max;
  }
  return max > 0 ? double(sum) / double(tokens.size()) / double(max) : 1.0;
}

}  // namespace lowbit
