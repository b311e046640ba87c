// The CPU MoeMethod: route every token of the batch at once, group the (token, choice) slots
// by expert, then run each selected expert once over all its tokens: one gate_up GEMM
// [n, H] → [n, 2F], silu(gate)·up in place, one down GEMM [n, F] → [n, H]; finally each
// token's k expert outputs are summed with their routing weights. Experts nobody chose are
// never touched, so decode reads only the k selected experts' weights. Threads split over
// experts when there are at least two per thread, else over each GEMM's output tiles (the
// expert's LinearMethod splits them), so both cores stay busy even with one token per expert.
//
// Batch invariance: a token's output sums its experts in its own choice order, and each expert
// GEMM computes a row the same way whatever else is in the batch (and on however many
// threads), so a sequence gets the same result alone or in a ragged batch.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "schemes/moe_method.h"

namespace lowbit {

void route_tokens(const float* logits, int64_t ldr, int64_t m, const MoeRouting& r, RoutePlan& plan) {
  const int64_t E = r.num_experts, k = r.top_k;
  if (E <= 0 || k <= 0 || k > E) fail("route_tokens: top_k {} must be in [1, num_experts = {}]", k, E);
  plan.expert.resize(size_t(m * k));
  plan.weight.resize(size_t(m * k));
  plan.offsets.assign(size_t(E + 1), 0);
  plan.order.resize(size_t(m * k));
  for (int64_t t = 0; t < m; ++t) {
    const float* z = logits + t * ldr;
    // softmax in fp32 over all E experts (max subtracted), then the k largest.
    float mx = -INFINITY;
    for (int64_t e = 0; e < E; ++e) mx = std::fmax(mx, z[e]);
    float sum = 0.0f;
    for (int64_t e = 0; e < E; ++e) sum += std::exp(z[e] - mx);
    int32_t* ids = plan.expert.data() + t * k;
    float* w = plan.weight.data() + t * k;
    // Selection by insertion into a sorted top-k list (k is small: 8 of 128 in 30B-A3B).
    // Comparing logits picks the same experts as comparing probabilities (exp is monotonic)
    // and keeps ties exact; strict > keeps the lower id first among equal logits.
    int64_t filled = 0;
    for (int64_t e = 0; e < E; ++e) {
      if (filled == k && !(z[e] > z[ids[k - 1]])) continue;
      int64_t pos = std::min(filled, k - 1);
      while (pos > 0 && z[e] > z[ids[pos - 1]]) {
        ids[pos] = ids[pos - 1];
        --pos;
      }
      ids[pos] = int32_t(e);
      filled = std::min(filled + 1, k);
    }
    float kept = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      w[j] = std::exp(z[ids[j]] - mx) / sum;
      kept += w[j];
    }
    if (r.normalize)
      for (int64_t j = 0; j < k; ++j) w[j] /= kept;
    for (int64_t j = 0; j < k; ++j) ++plan.offsets[size_t(ids[j]) + 1];
  }
  for (int64_t e = 0; e < E; ++e) plan.offsets[size_t(e + 1)] += plan.offsets[size_t(e)];
  // Counting sort by expert; slots are visited in token order, so tokens stay ascending.
  std::vector<int64_t>& fill = plan.offsets;  // reuse: advance a cursor, then shift back
  for (int64_t s = 0; s < m * k; ++s) plan.order[size_t(fill[size_t(plan.expert[size_t(s)])]++)] = int32_t(s);
  for (int64_t e = E; e > 0; --e) fill[size_t(e)] = fill[size_t(e - 1)];
  fill[0] = 0;
}

namespace {

class RoutedExperts final : public MoeMethod {
 public:
  RoutedExperts(const std::string& prefix, MoeRouting routing, std::vector<ExpertLinears> experts,
                std::shared_ptr<void> storage)
      : routing_(routing),
        experts_(std::move(experts)),
        storage_(std::move(storage)),
        token_counts_(size_t(std::max<int64_t>(routing_.num_experts, 0))) {
    if (int64_t(experts_.size()) != routing_.num_experts)
      fail("{}: {} experts built, the config says num_experts = {}", prefix, experts_.size(), routing_.num_experts);
    if (routing_.top_k <= 0 || routing_.top_k > routing_.num_experts)
      fail("{}: num_experts_per_tok {} must be in [1, {}]", prefix, routing_.top_k, routing_.num_experts);
    for (size_t e = 0; e < experts_.size(); ++e) {
      const ExpertLinears& x = experts_[e];
      if (!x.down || (!x.gate_up && (!x.gate || !x.up))) fail("{}: expert {} is missing a projection", prefix, e);
      const int64_t h = x.down->out_features(), f = x.down->in_features();
      const bool ok = x.gate_up ? x.gate_up->in_features() == h && x.gate_up->out_features() == 2 * f
                                : x.gate->in_features() == h && x.up->in_features() == h &&
                                      x.gate->out_features() == f && x.up->out_features() == f;
      if (!ok)
        fail("{}: expert {}: gate/up/down shapes do not form an [H={}] → [F={}] → [H] SwiGLU expert", prefix, e, h, f);
      if (e == 0) {
        hidden_ = h;
        inter_ = f;
      } else if (h != hidden_ || f != inter_) {
        fail("{}: expert {} is [H={}, F={}], expert 0 is [H={}, F={}]: experts of one layer must agree", prefix, e, h,
             f, hidden_, inter_);
      }
      size_t bytes = x.down->weight_bytes();
      for (const auto* m : {&x.gate_up, &x.gate, &x.up})
        if (*m) bytes += (*m)->weight_bytes();
      weight_bytes_ += bytes;
    }
    expert_bytes_ = experts_.empty() ? 0 : weight_bytes_ / experts_.size();
  }

  void apply(const float* x, int64_t ldx, int64_t m, const float* router_logits, int64_t ldr, float* y, int64_t ldy,
             ThreadPool& pool) const override {
    if (m <= 0) return;
    Scratch& s = scratch_;
    route_tokens(router_logits, ldr, m, routing_, s.plan);
    const int64_t H = hidden_, F = inter_, k = routing_.top_k, slots = m * k;
    grow(s.xg, slots * H);
    grow(s.gu, slots * 2 * F);
    grow(s.out, slots * H);
    s.pos.resize(size_t(slots));
    s.active.clear();
    for (int64_t e = 0; e < routing_.num_experts; ++e) {
      const int64_t tokens = s.plan.offsets[size_t(e + 1)] - s.plan.offsets[size_t(e)];
      if (tokens == 0) continue;
      s.active.push_back(int32_t(e));
      token_counts_[size_t(e)].fetch_add(tokens, std::memory_order_relaxed);
    }

    // Gather every slot's token row in expert order: expert e's rows are then one contiguous
    // block [offsets[e], offsets[e+1]) of xg, gu and out, for its GEMMs.
    pool.parallel_for(slots, 16, [&](int64_t a, int64_t b, int) {
      for (int64_t i = a; i < b; ++i) {
        const int32_t slot = s.plan.order[size_t(i)];
        s.pos[size_t(slot)] = i;
        std::memcpy(s.xg.data() + i * H, x + (slot / k) * ldx, size_t(H) * sizeof(float));
      }
    });

    // Threads over experts when there are enough of them to share out (decode with top-8 on
    // few cores, prefill), each expert's GEMMs then running inline on its thread; otherwise
    // experts one after another, each GEMM's output tiles split over the pool.
    const int threads = pool.size();
    if (threads > 1 && int64_t(s.active.size()) >= 2 * threads) {
      if (int(inline_pools_.size()) < threads)
        for (int t = int(inline_pools_.size()); t < threads; ++t)
          inline_pools_.push_back(std::make_unique<ThreadPool>(1));
      pool.parallel_for(int64_t(s.active.size()), 1, [&](int64_t a, int64_t b, int t) {
        for (int64_t i = a; i < b; ++i) run_expert(s.active[size_t(i)], *inline_pools_[size_t(t)]);
      });
    } else {
      for (int32_t e : s.active) run_expert(e, pool);
    }

    // y = Σ_j w_j · out[slot j], in the token's choice order whatever else is in the batch.
    pool.parallel_for(m, 4, [&](int64_t a, int64_t b, int) {
      for (int64_t t = a; t < b; ++t) {
        float* yr = y + t * ldy;
        for (int64_t j = 0; j < k; ++j) {
          const float w = s.plan.weight[size_t(t * k + j)];
          const float* o = s.out.data() + s.pos[size_t(t * k + j)] * H;
          if (j == 0)
            for (int64_t c = 0; c < H; ++c) yr[c] = w * o[c];
          else
            for (int64_t c = 0; c < H; ++c) yr[c] += w * o[c];
        }
      }
    });
  }

  int64_t hidden_size() const override { return hidden_; }
  const MoeRouting& routing() const override { return routing_; }
  size_t weight_bytes() const override { return weight_bytes_; }
  size_t expert_weight_bytes() const override { return expert_bytes_; }
  std::vector<int64_t> expert_token_counts() const override {
    std::vector<int64_t> out(token_counts_.size());
    for (size_t e = 0; e < out.size(); ++e) out[e] = token_counts_[e].load(std::memory_order_relaxed);
    return out;
  }
  std::string describe() const override {
    const ExpertLinears& x = experts_.front();
    return fmt::format("{} experts top-{}{} [H {}, F {}], gate_up {}: {}", routing_.num_experts, routing_.top_k,
                       routing_.normalize ? " (renormalised)" : "", hidden_, inter_, x.gate_up ? "fused" : "separate",
                       x.down->describe());
  }

 private:
  struct Scratch {
    RoutePlan plan;
    std::vector<float> xg, gu, out;  // [m·k rows] in expert order: gathered x, gate|up, down output
    std::vector<int64_t> pos;        // row of each slot in that order
    std::vector<int32_t> active;     // experts with at least one token
  };

  // Expert e over its block of rows: gate_up GEMM, silu(gate)·up in place, down GEMM.
  void run_expert(int32_t e, ThreadPool& pool) const {
    Scratch& s = scratch_;
    const int64_t H = hidden_, F = inter_;
    const int64_t begin = s.plan.offsets[size_t(e)], n = s.plan.offsets[size_t(e) + 1] - begin;
    const ExpertLinears& ex = experts_[size_t(e)];
    const float* xg = s.xg.data() + begin * H;
    float* gu = s.gu.data() + begin * 2 * F;
    if (ex.gate_up) {
      ex.gate_up->apply(xg, H, n, gu, 2 * F, pool);
    } else {
      ex.gate->apply(xg, H, n, gu, 2 * F, pool);
      ex.up->apply(xg, H, n, gu + F, 2 * F, pool);
    }
    pool.parallel_for(n, 4, [&](int64_t a, int64_t b, int) {
      for (int64_t i = a; i < b; ++i) {
        float* g = gu + i * 2 * F;
        const float* u = g + F;
        for (int64_t j = 0; j < F; ++j) g[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];  // silu(g)·u, as models/ops
      }
    });
    ex.down->apply(gu, 2 * F, n, s.out.data() + begin * H, H, pool);
  }
  static void grow(std::vector<float>& v, int64_t n) {
    if (int64_t(v.size()) < n) v.resize(size_t(n));
  }

  MoeRouting routing_;
  std::vector<ExpertLinears> experts_;
  std::shared_ptr<void> storage_;
  mutable std::vector<std::atomic<int64_t>> token_counts_;  // per expert, since load
  int64_t hidden_ = 0, inter_ = 0;
  size_t weight_bytes_ = 0, expert_bytes_ = 0;
  mutable Scratch scratch_;  // one forward at a time, like the decoder's workspace
  mutable std::vector<std::unique_ptr<ThreadPool>> inline_pools_;  // size-1 pools: GEMMs run on the calling thread
};

}  // namespace

std::unique_ptr<MoeMethod> make_routed_experts(const std::string& prefix, MoeRouting routing,
                                               std::vector<ExpertLinears> experts, std::shared_ptr<void> storage) {
  return std::make_unique<RoutedExperts>(prefix, routing, std::move(experts), std::move(storage));
}

}  // namespace lowbit
