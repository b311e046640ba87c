// Inside gdn_conv / gdn_delta_rule (kernels/gdn.h): the per-ISA pieces and the driver that
// runs them. The driver (gdn_driver.cc, ISA-free) normalises q and k, computes g and β once per
// (token, head), then hands each (sequence, v-head) to one backend's recurrent or chunked
// kernel; the conv goes to the backend's conv rows. Backends: plain C++ compiled for baseline
// x86-64 and for AVX2 (gdn_plain.inc), hand-written AVX-512 (gdn_avx512.cc); the chunked form
// (gdn_chunked.inc) is shared and calls its backend's GEMM.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/gdn.h"

namespace lowbit {

// One (sequence, v-head): n tokens from `state` ([dk, dv], updated in place).
struct GdnHeadTask {
  int64_t n = 0;
  const float* q = nullptr;  // token t: q + t·qk_stride, already l2-normed and scaled by 1/sqrt(dk)
  const float* k = nullptr;  // token t: k + t·qk_stride, l2-normed
  int64_t qk_stride = 0;
  const float* v = nullptr;  // token t: v + t·v_stride
  int64_t v_stride = 0;
  const float* g = nullptr;     // n log-decays (≤ 0)
  const float* beta = nullptr;  // n write strengths
  float* state = nullptr;
  float* out = nullptr;  // token t: out + t·out_stride (dv floats)
  int64_t out_stride = 0;
};

struct GdnKernels {
  const char* name;
  Isa isa;
  // Conv of channels [c0, c1) of one sequence (gdn_conv's contract restricted to those channels).
  void (*conv)(const GdnShape& shape, const float* weight, const GdnSequence& seq, int64_t c0, int64_t c1);
  // The fused recurrence (§2.5.5): one read+write pass over the state per token.
  void (*recurrent)(const GdnHeadTask& task, int64_t dk, int64_t dv);
  // The chunked form (§2.5.6), chunks of kGdnChunk tokens.
  void (*chunked)(const GdnHeadTask& task, int64_t dk, int64_t dv);
  // GdnMode::kAuto runs the chunked form for sequence chunks of at least this many tokens
  // (measured per backend: see kGdnNeverChunked).
  int64_t chunked_min_tokens;
};

// kAuto never picks the chunked form on these backends: the fused recurrence was as fast or
// faster at every length measured. Sapphire Rapids Xeon, 2 vCPUs, 80B shape (Hv 32, dk = dv = 128),
// one thread, CPU time, load average ~2.7 from other jobs:
//   LOWBIT_BENCH_THREADS=1 build/kernel_bench --benchmark_filter='gdn/gdn_avx512/(tokens|prefill)'
//   T            8     16     32     64    128    256   2048
//   chunked    0.71   1.02   1.95   3.91   6.96   16.4   139 ms
//   recurrent  0.53   0.84   1.43   3.36   5.56   14.5   128 ms
// (the AVX2 and portable backends: recurrence ~2× faster, their plain-C++ GEMM being slower).
// Why: both forms do ~4 multiply-adds per state element per token (the chunked form's three
// state GEMMs plus its C×C work against the recurrence's decay, u, update and o), and the
// recurrence keeps each 64-column state panel in L1 across tokens (gdn_avx512.cc), so it is
// compute-bound as well: the chunked form has no work to save at dk = dv = 128.
inline constexpr int64_t kGdnNeverChunked = INT64_MAX;

inline constexpr int64_t kGdnChunk = 64;

extern const GdnKernels kGdnPortable;
extern const GdnKernels kGdnAvx2;
extern const GdnKernels kGdnAvx512;

// Every backend the CPU runs (capped by LOWBIT_MAX_ISA), fastest first; and the first of them,
// chosen once per process.
std::vector<const GdnKernels*> gdn_kernel_sets(const CpuFeatures& cpu);
const GdnKernels& gdn_kernels();

// gdn_conv / gdn_delta_rule with a given backend (tests and benchmarks run each one).
void run_gdn_conv(const GdnKernels& kernels, const GdnShape& shape, const GdnWeights& w,
                  std::span<const GdnSequence> batch, ThreadPool& pool);
void run_gdn_delta_rule(const GdnKernels& kernels, const GdnShape& shape, const GdnWeights& w,
                        std::span<const GdnSequence> batch, ThreadPool& pool, GdnMode mode);

// e^x for x ≤ 0 (also −inf → 0), plain arithmetic so loops over it vectorise: Cody–Waite
// reduction x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-7 Taylor polynomial (truncation
// < 2e-9 relative, below half an ulp), 2^n through the exponent bits; results below 2^-126
// flush to 0 (a decay that small is no contribution at all).
inline float gdn_exp_nonpositive(float x) {
  const bool under = !(x >= -87.0f);
  x = under ? -87.0f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
  float p = 1.9841269841269841e-4f;  // 1/7!
  p = p * r + 1.3888888888888889e-3f;
  p = p * r + 8.3333333333333333e-3f;
  p = p * r + 4.1666666666666667e-2f;
  p = p * r + 1.6666666666666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t e = std::max(int32_t(n) + 127, int32_t(1));
  const float two_n = std::bit_cast<float>(uint32_t(e) << 23);
  return under ? 0.0f : p * two_n;
}

// silu(x) = x·σ(x) with σ from e^{−|x|} only (never exponentiates a positive number).
// Selects only, one unconditional division: loops over it vectorise without AVX-512 masks.
inline float gdn_silu(float x) {
  const float e = gdn_exp_nonpositive(-std::fabs(x));
  const float num = x < 0 ? e : 1.0f;
  return x * (num / (1.0f + e));
}

}  // namespace lowbit
