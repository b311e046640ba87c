// The measuring instrument of the scheme search (scheme_search.h): the float model with a
// switch on every linear layer, so that any set of layers can be swapped for fake-quantized
// replacements and the KL divergence of the result from the float model measured on a fixed
// set of calibration windows, scored as `lowbit eval kld` scores them.
//
// Cost: the float run records every o_proj and down_proj output (all that reaches the residual
// stream; hidden × 2 floats per token per layer). A later run whose first swapped layer is the
// i-th in execution order replays those outputs for the layers before it and skips the q/k/v
// and gate/up products that only feed them (their outputs are zero-filled: attention over zero
// q/k/v yields zeros that the replayed o_proj output then ignores), so nothing upstream of the
// swap is recomputed. Dense Llama / Qwen3 only (that residual structure).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "schemes/linear_method.h"

namespace lowbit {
class DecoderModel;
class ThreadPool;
}  // namespace lowbit

namespace lowbit::quantize {

// exp(x) for x ≤ 0 in float, to ~3e-7 relative (Cody–Waite reduction, degree-7 polynomial);
// written so the compiler vectorises it: the KL of every pass runs it over rows × vocab.
float exp_nonpositive(float x);

// Mean over rows of KL(p ‖ softmax(logits)) from the base's probabilities p and its
// Σ p·log p per row: KL = Σp·log p − Σ p·logit + (Σp)·logsumexp(logits).
double row_kl(const float* p, double p_log_p, double p_sum, const float* logits, int64_t vocab);

class KldProbe {
 public:
  // Loads the float model from `ckpt` (sharing its mapping) and runs it over `tokens` in
  // windows of `ctx`.
  KldProbe(std::shared_ptr<const Checkpoint> ckpt, std::vector<int32_t> tokens, int64_t ctx, int threads);
  ~KldProbe();

  // Mean KL(float ‖ model with `swaps` installed) over the scored tokens; swaps maps a layer
  // prefix to its replacement (owned by the caller, used only during the call).
  double kld(const std::map<std::string, const LinearMethod*>& swaps);

  int64_t scored_tokens() const;
  int64_t passes() const { return passes_; }

 private:
  struct State;
  std::unique_ptr<State> s_;
  int64_t passes_ = 0;
};

}  // namespace lowbit::quantize
