// The AVX-512 Gated DeltaNet backend: hand-written GEMM micro-kernel (for the chunked form)
// and fused recurrence; the conv is the plain one compiled with AVX-512 flags.
//
// Both walk dv (the contiguous dimension) in panels of 64 columns = 4 zmm, masked at the edge,
// so any dv or chunk length works; dk = dv = 128 is two full panels. The `#pragma GCC unroll`
// on the small loops over vectors and rows is what keeps the __m512 arrays in registers: without
// it GCC 12 stores every accumulator to the stack once per iteration (measured 3× slower).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#define GDN_NAMESPACE gdn_avx512
#include "kernels/cpu/gdn_conv.inc"

namespace lowbit::gdn_avx512 {

namespace {

constexpr int64_t kPanel = 64;
// From this many tokens the recurrence works on a contiguous copy of each panel.
constexpr int64_t kRecurrentCopyTokens = 4;

// Masks of the 4 vectors of a panel starting at column e0 of n.
struct PanelMasks {
  __mmask16 m[4];
  PanelMasks(int64_t e0, int64_t n) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const int64_t left = n - e0 - 16 * j;
      m[j] = left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
    }
  }
};

// Rows [0, R) of C (the first NV vectors of one panel) += A·B over k.
template <int R, int NV>
void gemm_panel(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                const PanelMasks& pm) {
  __m512 acc[R][NV];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_maskz_loadu_ps(pm.m[j], c + r * ldc + 16 * j);
  for (int64_t p = 0; p < k; ++p) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = _mm512_maskz_loadu_ps(pm.m[j], b + p * ldb + 16 * j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r * lda + p]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(ar, bv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) _mm512_mask_storeu_ps(c + r * ldc + 16 * j, pm.m[j], acc[r][j]);
}

// A panel whose last nv vectors are empty (narrow C: the chunk's triangular blocks) skips them.
template <int R>
void gemm_rows(int64_t nv, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
               const PanelMasks& pm) {
  switch (nv) {
    case 1: return gemm_panel<R, 1>(k, a, lda, b, ldb, c, ldc, pm);
    case 2: return gemm_panel<R, 2>(k, a, lda, b, ldb, c, ldc, pm);
    case 3: return gemm_panel<R, 3>(k, a, lda, b, ldb, c, ldc, pm);
    default: return gemm_panel<R, 4>(k, a, lda, b, ldb, c, ldc, pm);
  }
}

// One token's pass over one panel of the state: S ← d·S + k δᵀ row by row, o = Sᵀq, and
// (kNext) next_u = Sᵀk_next from each updated row while it is in registers.
template <bool kNext>
void update_panel(float* state, int64_t dk, int64_t ld, const PanelMasks& pm, __m512 d, const float* k, const float* q,
                  const float* k_next, const __m512 delta[4], __m512 o[4], __m512 next_u[4]) {
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) o[j] = next_u[j] = _mm512_setzero_ps();
  for (int64_t i = 0; i < dk; ++i) {
    float* row = state + i * ld;
    const __m512 ki = _mm512_set1_ps(k[i]), qi = _mm512_set1_ps(q[i]);
    const __m512 kn = kNext ? _mm512_set1_ps(k_next[i]) : _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512 s = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(pm.m[j], row + 16 * j), _mm512_mul_ps(ki, delta[j]));
      _mm512_mask_storeu_ps(row + 16 * j, pm.m[j], s);
      o[j] = _mm512_fmadd_ps(qi, s, o[j]);
      if (kNext) next_u[j] = _mm512_fmadd_ps(kn, s, next_u[j]);
    }
  }
}

}  // namespace

void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
          int64_t ldc) {
  for (int64_t e0 = 0; e0 < n; e0 += kPanel) {
    const PanelMasks pm(e0, n);
    const int64_t nv = std::min<int64_t>(4, (n - e0 + 15) / 16);
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) gemm_rows<4>(nv, k, a + r * lda, lda, b + e0, ldb, c + r * ldc + e0, ldc, pm);
    switch (m - r) {
      case 3: gemm_rows<3>(nv, k, a + r * lda, lda, b + e0, ldb, c + r * ldc + e0, ldc, pm); break;
      case 2: gemm_rows<2>(nv, k, a + r * lda, lda, b + e0, ldb, c + r * ldc + e0, ldc, pm); break;
      case 1: gemm_rows<1>(nv, k, a + r * lda, lda, b + e0, ldb, c + r * ldc + e0, ldc, pm); break;
      default: break;
    }
  }
}

// Token rows are far apart (q, k in the driver's rows of 2·key_dim floats, v in conv_out rows),
// so each token's rows start on new pages: fetch them a few tokens ahead.
constexpr int64_t kPrefetchTokens = 6;
void prefetch_token(const GdnHeadTask& t, int64_t n, int64_t dk, int64_t e0) {
  const char* k = reinterpret_cast<const char*>(t.k + n * t.qk_stride);
  const char* q = reinterpret_cast<const char*>(t.q + n * t.qk_stride);
  for (int64_t b = 0; b < dk * 4; b += 64) {
    _mm_prefetch(k + b, _MM_HINT_T0);
    _mm_prefetch(q + b, _MM_HINT_T0);
  }
  const char* v = reinterpret_cast<const char*>(t.v + n * t.v_stride + e0);
  for (int64_t b = 0; b < kPanel * 4; b += 64) _mm_prefetch(v + b, _MM_HINT_T0);
}

// State columns never mix in the recurrence (u_e, δ_e, the update and o_e of column e read
// only column e), so each 64-column panel runs through all n tokens on its own: its 32 KiB
// (dk = 128) stay in L1 from token to token, and each token is one read+write pass over it;
// u stays in registers from one pass to the next. For more than a few tokens the panel is
// first copied to a contiguous buffer: in place, rows dv·4 = 512 bytes apart fall into half of
// L1's sets and evict each other (measured 2× slower).
void recurrent_panels(const GdnHeadTask& t, int64_t dk, int64_t dv) {
  thread_local std::vector<float> panel;
  const bool copy = t.n >= kRecurrentCopyTokens;
  if (copy && int64_t(panel.size()) < dk * kPanel) panel.resize(size_t(dk * kPanel));
  for (int64_t e0 = 0; e0 < dv; e0 += kPanel) {
    const PanelMasks pm(e0, dv);
    float* state = copy ? panel.data() : t.state + e0;
    const int64_t ld = copy ? kPanel : dv;
    if (copy)
      for (int64_t i = 0; i < dk; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j)
          _mm512_storeu_ps(state + i * ld + 16 * j, _mm512_maskz_loadu_ps(pm.m[j], t.state + i * dv + e0 + 16 * j));
    __m512 u[4], o[4], next_u[4], delta[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) u[j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < dk; ++i) {  // u = Sᵀk_0 (undecayed)
      const __m512 ki = _mm512_set1_ps(t.k[i]);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)
        u[j] = _mm512_fmadd_ps(ki, _mm512_maskz_loadu_ps(pm.m[j], state + i * ld + 16 * j), u[j]);
    }
    for (int64_t n = 0; n < t.n; ++n) {
      if (n + kPrefetchTokens < t.n) prefetch_token(t, n + kPrefetchTokens, dk, e0);
      const __m512 d = _mm512_set1_ps(std::exp(t.g[n])), beta = _mm512_set1_ps(t.beta[n]);
      const float* v = t.v + n * t.v_stride + e0;
      const float* k = t.k + n * t.qk_stride;
      const float* q = t.q + n * t.qk_stride;
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)  // δ = β (v − d·u)
        delta[j] = _mm512_mul_ps(beta, _mm512_fnmadd_ps(d, u[j], _mm512_maskz_loadu_ps(pm.m[j], v + 16 * j)));
      if (n + 1 < t.n)
        update_panel<true>(state, dk, ld, pm, d, k, q, k + t.qk_stride, delta, o, next_u);
      else
        update_panel<false>(state, dk, ld, pm, d, k, q, nullptr, delta, o, next_u);
      float* out = t.out + n * t.out_stride + e0;
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        _mm512_mask_storeu_ps(out + 16 * j, pm.m[j], o[j]);
        u[j] = next_u[j];
      }
    }
    if (copy)
      for (int64_t i = 0; i < dk; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j)
          _mm512_mask_storeu_ps(t.state + i * dv + e0 + 16 * j, pm.m[j], _mm512_loadu_ps(state + i * ld + 16 * j));
  }
}

// Decode (a few tokens) with dv ≤ 16·NV: per token two passes over whole rows, u = Sᵀk (the
// state's one trip from cache or memory, a sequential stream) then S ← d·S + kδᵀ with o = Sᵀq
// (from L2, where the first pass left it), all dv columns in registers.
template <int NV>
void recurrent_rows(const GdnHeadTask& t, int64_t dk, int64_t dv) {
  __mmask16 m[NV];
  for (int j = 0; j < NV; ++j) {
    const int64_t left = dv - 16 * j;
    m[j] = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
  }
  for (int64_t n = 0; n < t.n; ++n) {
    const float* k = t.k + n * t.qk_stride;
    const float* q = t.q + n * t.qk_stride;
    const float* v = t.v + n * t.v_stride;
    __m512 acc[NV], delta[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < dk; ++i) {
      const float* row = t.state + i * dv;
      const __m512 ki = _mm512_set1_ps(k[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[j] = _mm512_fmadd_ps(ki, _mm512_maskz_loadu_ps(m[j], row + 16 * j), acc[j]);
    }
    const __m512 d = _mm512_set1_ps(std::exp(t.g[n])), beta = _mm512_set1_ps(t.beta[n]);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {  // δ = β (v − d·u)
      delta[j] = _mm512_mul_ps(beta, _mm512_fnmadd_ps(d, acc[j], _mm512_maskz_loadu_ps(m[j], v + 16 * j)));
      acc[j] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < dk; ++i) {
      float* row = t.state + i * dv;
      const __m512 ki = _mm512_set1_ps(k[i]), qi = _mm512_set1_ps(q[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        const __m512 s = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m[j], row + 16 * j), _mm512_mul_ps(ki, delta[j]));
        _mm512_mask_storeu_ps(row + 16 * j, m[j], s);
        acc[j] = _mm512_fmadd_ps(qi, s, acc[j]);
      }
    }
    float* o = t.out + n * t.out_stride;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) _mm512_mask_storeu_ps(o + 16 * j, m[j], acc[j]);
  }
}

void recurrent(const GdnHeadTask& t, int64_t dk, int64_t dv) {
  if (t.n < kRecurrentCopyTokens && dv <= 128) {
    switch ((dv + 15) / 16) {
      case 8: return recurrent_rows<8>(t, dk, dv);
      case 7: return recurrent_rows<7>(t, dk, dv);
      case 6: return recurrent_rows<6>(t, dk, dv);
      case 5: return recurrent_rows<5>(t, dk, dv);
      case 4: return recurrent_rows<4>(t, dk, dv);
      case 3: return recurrent_rows<3>(t, dk, dv);
      case 2: return recurrent_rows<2>(t, dk, dv);
      default: return recurrent_rows<1>(t, dk, dv);
    }
  }
  recurrent_panels(t, dk, dv);
}

}  // namespace lowbit::gdn_avx512

#include "kernels/cpu/gdn_chunked.inc"

namespace lowbit {
const GdnKernels kGdnAvx512 = {"gdn_avx512", Isa::Avx512, gdn_avx512::conv_rows, gdn_avx512::recurrent,
                               gdn_avx512::chunked, kGdnNeverChunked};
}  // namespace lowbit
