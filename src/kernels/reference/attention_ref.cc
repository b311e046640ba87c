// Attention written from the math, in double: for every token t and head h of every chunk,
//   s_j = scale · Σ_i q[t, h, i] · K[j, i],  p = softmax(s) over j ≤ pos(t),  out = Σ_j p_j · V[j]
// with K, V the cache's decoded values (kv_decode_element times the row's FP8 scale). No
// tiling, no online softmax: the oracle for every attention kernel.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"

namespace lowbit {

namespace {

const void* row_at(const void* base, DType dtype, const KvView& kv, int64_t pos, int64_t head) {
  return static_cast<const uint8_t*>(base) + size_t(kv.row(pos, head)) * dtype_size(dtype);
}

double row_scale(const float* scales, const KvView& kv, int64_t pos, int64_t head) {
  return kv.dtype == DType::F8_E4M3 ? double(scales[kv.scale_at(pos, head)]) : 1.0;
}

}  // namespace

void attention_ref(const AttentionBatch& b) {
  LOWBIT_CHECK(b.num_kv_heads > 0 && b.num_heads % b.num_kv_heads == 0, "{} heads over {} kv heads", b.num_heads,
               b.num_kv_heads);
  const int64_t group = b.num_heads / b.num_kv_heads, d = b.head_dim;
  std::vector<double> s, acc(static_cast<size_t>(d));
  for (const AttentionSeq& seq : b.seqs) {
    const KvView& kv = seq.kv;
    for (int64_t t = 0; t < seq.n_tokens; ++t) {
      const int64_t n_ctx = seq.start_pos + t + 1;
      s.assign(size_t(n_ctx), 0.0);
      for (int64_t h = 0; h < b.num_heads; ++h) {
        const int64_t kvh = h / group;
        const float* q = seq.q + t * b.ldq + h * d;
        double mx = -INFINITY;
        for (int64_t j = 0; j < n_ctx; ++j) {
          const void* k = row_at(kv.k, kv.dtype, kv, j, kvh);
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += double(q[i]) * double(kv_decode_element(kv.dtype, k, i));
          s[size_t(j)] = dot * row_scale(kv.k_scale, kv, j, kvh) * double(b.scale);
          mx = std::max(mx, s[size_t(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j < n_ctx; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < n_ctx; ++j) {
          const void* v = row_at(kv.v, kv.dtype, kv, j, kvh);
          const double w = s[size_t(j)] / sum * row_scale(kv.v_scale, kv, j, kvh);
          for (int64_t i = 0; i < d; ++i) acc[size_t(i)] += w * double(kv_decode_element(kv.dtype, v, i));
        }
        float* out = seq.out + t * b.ldo + h * d;
        for (int64_t i = 0; i < d; ++i) out[i] = float(acc[size_t(i)]);
      }
    }
  }
}

}  // namespace lowbit
