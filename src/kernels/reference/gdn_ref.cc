#include "kernels/reference/gdn_ref.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace lowbit {

double gdn_beta_ref(double b) { return b >= 0 ? 1.0 / (1.0 + std::exp(-b)) : std::exp(b) / (1.0 + std::exp(b)); }

double gdn_log_decay_ref(double a, double a_log, double dt_bias) {
  const double x = a + dt_bias;
  const double softplus = x > 20.0 ? x : std::log1p(std::exp(x));
  return -std::exp(a_log) * softplus;
}

namespace {
double silu(double x) { return x * gdn_beta_ref(x); }
}  // namespace

void gdn_conv_ref(const GdnShape& shape, const GdnWeights& w, std::span<const GdnSequence> batch) {
  const int64_t cd = shape.conv_dim(), kc = shape.conv_kernel, hist = kc - 1;
  for (const GdnSequence& s : batch) {
    // rows[0, hist) = the window, rows[hist, hist + T) = the new raw rows.
    std::vector<float> rows(size_t((hist + s.n_tokens) * cd));
    for (int64_t r = 0; r < hist; ++r)
      for (int64_t c = 0; c < cd; ++c) rows[size_t(r * cd + c)] = s.conv_state[r * cd + c];
    for (int64_t t = 0; t < s.n_tokens; ++t)
      for (int64_t c = 0; c < cd; ++c) rows[size_t((hist + t) * cd + c)] = s.conv_in[t * s.conv_in_stride + c];
    for (int64_t t = 0; t < s.n_tokens; ++t)
      for (int64_t c = 0; c < cd; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < kc; ++j) acc += double(w.conv_weight[c * kc + j]) * rows[size_t((t + j) * cd + c)];
        s.conv_out[t * cd + c] = float(silu(acc));
      }
    for (int64_t r = 0; r < hist; ++r)
      for (int64_t c = 0; c < cd; ++c) s.conv_state[r * cd + c] = rows[size_t((s.n_tokens + r) * cd + c)];
  }
}

void gdn_delta_rule_ref(const GdnShape& shape, const GdnWeights& w, std::span<const GdnSequence> batch) {
  const int64_t hk = shape.num_k_heads, hv = shape.num_v_heads, dk = shape.k_dim, dv = shape.v_dim;
  LOWBIT_CHECK(hk > 0 && hv % hk == 0, "gdn: {} v-heads over {} k-heads", hv, hk);
  const int64_t ratio = hv / hk, cd = shape.conv_dim();
  std::vector<double> S(static_cast<size_t>(dk * dv)), q(static_cast<size_t>(dk)), k(static_cast<size_t>(dk)),
      u(static_cast<size_t>(dv));
  for (const GdnSequence& s : batch)
    for (int64_t j = 0; j < hv; ++j) {
      const int64_t h = j / ratio;  // the k-head of v-head j (repeat_interleave)
      float* state = s.state + j * dk * dv;
      for (int64_t i = 0; i < dk * dv; ++i) S[size_t(i)] = state[i];
      for (int64_t t = 0; t < s.n_tokens; ++t) {
        const float* row = s.conv_out + t * cd;
        double qq = 0, kk = 0;
        for (int64_t i = 0; i < dk; ++i) {
          q[size_t(i)] = row[h * dk + i];
          k[size_t(i)] = row[shape.key_dim() + h * dk + i];
          qq += q[size_t(i)] * q[size_t(i)];
          kk += k[size_t(i)] * k[size_t(i)];
        }
        const double qs = 1.0 / std::sqrt(qq + 1e-6) / std::sqrt(double(dk)), ks = 1.0 / std::sqrt(kk + 1e-6);
        for (int64_t i = 0; i < dk; ++i) {
          q[size_t(i)] *= qs;
          k[size_t(i)] *= ks;
        }
        const float* v = row + 2 * shape.key_dim() + j * dv;
        const double beta = gdn_beta_ref(s.b[t * s.ab_stride + j]);
        const double g = gdn_log_decay_ref(s.a[t * s.ab_stride + j], w.a_log[j], w.dt_bias[j]);
        const double decay = std::exp(g);
        for (double& x : S) x *= decay;
        for (int64_t e = 0; e < dv; ++e) {
          double acc = 0;
          for (int64_t i = 0; i < dk; ++i) acc += S[size_t(i * dv + e)] * k[size_t(i)];
          u[size_t(e)] = beta * (v[e] - acc);  // δ
        }
        for (int64_t i = 0; i < dk; ++i)
          for (int64_t e = 0; e < dv; ++e) S[size_t(i * dv + e)] += k[size_t(i)] * u[size_t(e)];
        for (int64_t e = 0; e < dv; ++e) {
          double acc = 0;
          for (int64_t i = 0; i < dk; ++i) acc += S[size_t(i * dv + e)] * q[size_t(i)];
          s.out[t * s.out_stride + j * dv + e] = float(acc);
        }
      }
      for (int64_t i = 0; i < dk * dv; ++i) state[i] = float(S[size_t(i)]);
    }
}

}  // namespace lowbit
