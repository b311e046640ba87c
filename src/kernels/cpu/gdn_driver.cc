// gdn_conv and gdn_delta_rule (kernels/gdn.h): validation, the per-token preprocessing that
// every v-head shares (l2norm and scale of q and k once per k-head, g and β once per v-head),
// and the split into (sequence, v-head) tasks over the pool. No ISA-specific code: the work
// runs through the chosen backend's function pointers (gdn_kernels.h).
#include <algorithm>
#include <cmath>
#include <numeric>

#include <xmmintrin.h>  // MXCSR (every x86-64 has SSE)

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gdn_kernels.h"

namespace lowbit {

namespace {

// Channels per conv job, and the work (tokens × channels) below which the conv stays on the
// calling thread (waking a worker costs more than a decode token's conv).
constexpr int64_t kConvJobChannels = 1024;
constexpr int64_t kConvMinParallel = 32768;
// Tokens per preprocessing job.
constexpr int64_t kPrepTokens = 16;

void check_shape(const GdnShape& s, const char* op) {
  if (s.num_k_heads <= 0 || s.num_v_heads <= 0 || s.num_v_heads % s.num_k_heads != 0)
    fail("{}: linear_num_value_heads {} must be a positive multiple of linear_num_key_heads {}", op, s.num_v_heads,
         s.num_k_heads);
  if (s.k_dim <= 0 || s.v_dim <= 0)
    fail("{}: linear_key_head_dim {} and linear_value_head_dim {} must be positive", op, s.k_dim, s.v_dim);
  if (s.conv_kernel < 1 || s.conv_kernel > 8) fail("{}: linear_conv_kernel_dim {} is not in 1..8", op, s.conv_kernel);
}

// Denormal results flushed to zero (and denormal inputs read as zero) while a thread runs
// tasks: a head that decays fast multiplies tiny-but-normal decays e^{γ_r − γ_s} by O(0.1)
// values, and every denormal product costs a microcode assist (measured: the chunked form 2×
// slower on 64-token chunks). Only values below 2^-126 change, which §4.3 already lets
// underflow to 0. The caller's MXCSR is restored afterwards.
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned kFtzDaz = 0x8040;  // MXCSR bits FZ (15) and DAZ (6)
  unsigned saved_;
};

struct DeltaWorkspace {
  // per sequence and k-head, token after token: [q̃ (dk) | k̂ (dk)], so a head's task streams
  // one contiguous run (rows of all heads per token would put every token on new pages)
  std::vector<float> qk;
  std::vector<float> gb;  // per sequence: g [Hv][n], then β [Hv][n]
  std::vector<int64_t> token_base;
  std::vector<std::pair<int64_t, int64_t>> prep_jobs;  // (sequence, first token)
  std::vector<GdnHeadTask> tasks;
  std::vector<uint8_t> task_chunked;
  std::vector<size_t> order;
};

// σ(x) without exponentiating a positive number.
float sigmoid(float x) {
  const float e = std::exp(-std::fabs(x));
  return x < 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);
}

// g = −exp(A_log)·softplus(a + dt_bias), softplus with threshold 20 (log1p keeps precision
// where the result underflows towards no decay).
float log_decay(float a, float a_log, float dt_bias) {
  const float x = a + dt_bias;
  const float sp = x > 20.0f ? x : std::log1p(std::exp(x));
  return -std::exp(a_log) * sp;
}

// x ← x / sqrt(Σx² + 1e-6) · extra
void l2norm(const float* x, float* out, int64_t n, float extra) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = extra / std::sqrt(ss + 1e-6f);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv;
}

}  // namespace

std::vector<const GdnKernels*> gdn_kernel_sets(const CpuFeatures& cpu) {
  std::vector<const GdnKernels*> out;
  for (const GdnKernels* k : {&kGdnAvx512, &kGdnAvx2, &kGdnPortable})
    if (int(k->isa) <= int(cpu.max_isa())) out.push_back(k);
  return out;
}

const GdnKernels& gdn_kernels() {
  static const GdnKernels& k = *gdn_kernel_sets(cpu_features()).front();
  return k;
}

void run_gdn_conv(const GdnKernels& kernels, const GdnShape& shape, const GdnWeights& w,
                  std::span<const GdnSequence> batch, ThreadPool& pool) {
  check_shape(shape, "gdn_conv");
  const int64_t cd = shape.conv_dim();
  int64_t work = 0;
  for (const GdnSequence& s : batch) {
    if (s.n_tokens < 0) fail("gdn_conv: sequence of {} tokens", s.n_tokens);
    if (s.n_tokens > 0 &&
        (!s.conv_in || !s.conv_out || (!s.conv_state && shape.conv_kernel > 1) || s.conv_in_stride < cd))
      fail("gdn_conv: sequence needs conv_in (row stride {} ≥ conv_dim {}), conv_out and conv_state", s.conv_in_stride,
           cd);
    work += s.n_tokens * cd;
  }
  const int64_t blocks = (cd + kConvJobChannels - 1) / kConvJobChannels;
  const int64_t jobs = int64_t(batch.size()) * blocks;
  auto run = [&](int64_t j0, int64_t j1, int) {
    for (int64_t j = j0; j < j1; ++j) {
      const GdnSequence& s = batch[size_t(j / blocks)];
      if (s.n_tokens == 0) continue;
      const int64_t c0 = (j % blocks) * kConvJobChannels;
      kernels.conv(shape, w.conv_weight, s, c0, std::min(cd, c0 + kConvJobChannels));
    }
  };
  if (work < kConvMinParallel)
    run(0, jobs, 0);
  else
    pool.parallel_for(jobs, 1, [&](int64_t a, int64_t e, int th) { run(a, e, th); });
}

void run_gdn_delta_rule(const GdnKernels& kernels, const GdnShape& shape, const GdnWeights& w,
                        std::span<const GdnSequence> batch, ThreadPool& pool, GdnMode mode) {
  check_shape(shape, "gdn_delta_rule");
  const int64_t hk = shape.num_k_heads, hv = shape.num_v_heads, dk = shape.k_dim, dv = shape.v_dim;
  const int64_t kd = shape.key_dim(), cd = shape.conv_dim(), ratio = hv / hk;
  // Grow-only, per calling thread; the workers reach it through this reference (a thread_local
  // named inside the lambdas would be each worker's own).
  static thread_local DeltaWorkspace tls;
  DeltaWorkspace& ws = tls;
  ws.token_base.clear();
  ws.prep_jobs.clear();
  int64_t total = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const GdnSequence& s = batch[i];
    if (s.n_tokens < 0) fail("gdn_delta_rule: sequence of {} tokens", s.n_tokens);
    if (s.n_tokens > 0 &&
        (!s.conv_out || !s.a || !s.b || !s.state || !s.out || s.ab_stride < hv || s.out_stride < shape.value_dim()))
      fail(
          "gdn_delta_rule: sequence needs conv_out, a and b (row stride {} ≥ {} v-heads), state and out "
          "(row stride {} ≥ value_dim {})",
          s.ab_stride, hv, s.out_stride, shape.value_dim());
    ws.token_base.push_back(total);
    for (int64_t t = 0; t < s.n_tokens; t += kPrepTokens) ws.prep_jobs.push_back({int64_t(i), t});
    total += s.n_tokens;
  }
  if (total == 0) return;
  if (int64_t(ws.qk.size()) < total * 2 * kd) ws.qk.resize(size_t(total * 2 * kd));
  if (int64_t(ws.gb.size()) < total * 2 * hv) ws.gb.resize(size_t(total * 2 * hv));

  // 1. Per token: q̃, k̂ of each k-head; g, β of each v-head.
  const float q_scale = float(1.0 / std::sqrt(double(dk)));
  auto prep = [&](int64_t j0, int64_t j1, int) {
    for (int64_t j = j0; j < j1; ++j) {
      const auto [i, t0] = ws.prep_jobs[size_t(j)];
      const GdnSequence& s = batch[size_t(i)];
      const int64_t base = ws.token_base[size_t(i)], n = s.n_tokens;
      float* g = ws.gb.data() + 2 * hv * base;
      float* beta = g + hv * n;
      for (int64_t t = t0; t < std::min(n, t0 + kPrepTokens); ++t) {
        const float* row = s.conv_out + t * cd;
        for (int64_t h = 0; h < hk; ++h) {
          float* qk = ws.qk.data() + (base * hk + h * n + t) * 2 * dk;
          l2norm(row + h * dk, qk, dk, q_scale);
          l2norm(row + kd + h * dk, qk + dk, dk, 1.0f);
        }
        const float* a = s.a + t * s.ab_stride;
        const float* b = s.b + t * s.ab_stride;
        for (int64_t h = 0; h < hv; ++h) {
          g[h * n + t] = log_decay(a[h], w.a_log[h], w.dt_bias[h]);
          beta[h * n + t] = sigmoid(b[h]);
        }
      }
    }
  };
  const int64_t n_prep = int64_t(ws.prep_jobs.size());
  if (total * hv < 512)
    prep(0, n_prep, 0);
  else
    pool.parallel_for(n_prep, 1, [&](int64_t a, int64_t e, int th) { prep(a, e, th); });

  // 2. One task per (sequence, v-head), longest sequences first so the pool's last claims
  // are the short ones.
  auto& order = ws.order;
  order.resize(batch.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {  // ties by index: deterministic, no buffer
    return batch[x].n_tokens != batch[y].n_tokens ? batch[x].n_tokens > batch[y].n_tokens : x < y;
  });
  ws.tasks.clear();
  ws.task_chunked.clear();
  for (size_t i : order) {
    const GdnSequence& s = batch[i];
    if (s.n_tokens == 0) continue;
    const int64_t base = ws.token_base[i], n = s.n_tokens;
    const bool chunk = mode == GdnMode::kChunked || (mode == GdnMode::kAuto && n >= kernels.chunked_min_tokens);
    for (int64_t j = 0; j < hv; ++j) {
      GdnHeadTask task;
      task.n = n;
      const float* qk = ws.qk.data() + (base * hk + (j / ratio) * n) * 2 * dk;
      task.q = qk;
      task.k = qk + dk;
      task.qk_stride = 2 * dk;
      task.v = s.conv_out + 2 * kd + j * dv;
      task.v_stride = cd;
      task.g = ws.gb.data() + 2 * hv * base + j * n;
      task.beta = task.g + hv * n;
      task.state = s.state + j * dk * dv;
      task.out = s.out + j * dv;
      task.out_stride = s.out_stride;
      ws.tasks.push_back(task);
      ws.task_chunked.push_back(chunk);
    }
  }
  auto run = [&](int64_t t0, int64_t t1, int) {
    const FlushDenormals ftz;
    for (int64_t t = t0; t < t1; ++t)
      (ws.task_chunked[size_t(t)] ? kernels.chunked : kernels.recurrent)(ws.tasks[size_t(t)], dk, dv);
  };
  pool.parallel_for(int64_t(ws.tasks.size()), 1, [&](int64_t a, int64_t e, int th) { run(a, e, th); });
}

void gdn_conv(const GdnShape& shape, const GdnWeights& w, std::span<const GdnSequence> batch, ThreadPool& pool) {
  run_gdn_conv(gdn_kernels(), shape, w, batch, pool);
}

void gdn_delta_rule(const GdnShape& shape, const GdnWeights& w, std::span<const GdnSequence> batch, ThreadPool& pool,
                    GdnMode mode) {
  run_gdn_delta_rule(gdn_kernels(), shape, w, batch, pool, mode);
}

}  // namespace lowbit
