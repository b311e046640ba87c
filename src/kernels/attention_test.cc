// Every attention backend this CPU runs against the double-precision oracle (attention_ref),
// both reading the same encoded cache (F32, BF16, FP8 E4M3 with per-row scales), over GQA
// ratios 1-4, several head dims, contexts 1..300 and one long one, chunks starting mid-sequence
// and ragged batches; plus the properties the model relies on: a sequence's output does not
// depend on what else is in the batch, on the thread count, or (prefill) on how it was chunked.
//
// Tolerance, per output element (t, h, c), from the oracle's own quantities:
//   |out − ref| ≤ 2 · A · (2·E_s + 2·γ_n + 16ε),  A = Σ_j p_j |V[j, c]|,  ε = 2^-24,
//   E_s = max_j (γ_d · scale · Σ_i |q_i K[j, i]| + 4ε (|s_j| + max_k |s_k|)).
// E_s bounds the fp32 error of a score s_j (a d-term dot product accumulated in fp32, then
// scaled to base 2 and shifted by the running max), which perturbs p_j = exp(s_j − m) by the
// same relative amount; the weights enter both Σ p_j V[j] and Σ p_j, hence 2·E_s. γ_n covers
// the n-term fp32 sums over keys (and the online-softmax rescales), 16ε the exp polynomial,
// the FP8 dequantisation product and the final division. The outer 2 is headroom, not slack
// for errors: an off-by-one key, a wrong head or a dropped rescale is off by ~A.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace lowbit {
namespace {

constexpr double kEps = 0x1p-24;
double gamma(int64_t n) { return double(n) * kEps / (1 - double(n) * kEps); }

// One slot of one layer, filled with random rows through kv_encode_row. head_major picks the
// layout [head][pos][d] (the model's) or [pos][head][d], so both stride directions are tested.
struct TestCache {
  DType dtype;
  int64_t nkv, d, cap;
  bool head_major;
  std::vector<uint8_t> k, v;
  std::vector<float> ks, vs;

  TestCache(DType dt, int64_t nkv_, int64_t d_, int64_t cap_, bool hm, std::mt19937& rng, float kmag = 1.0f)
      : dtype(dt), nkv(nkv_), d(d_), cap(cap_), head_major(hm) {
    const size_t es = dtype_size(dt);
    k.resize(size_t(nkv * cap * d) * es);
    v.resize(size_t(nkv * cap * d) * es);
    ks.assign(size_t(nkv * cap), 0.0f);
    vs.assign(size_t(nkv * cap), 0.0f);
    std::normal_distribution<float> n01(0, 1);
    std::uniform_real_distribution<float> mag(0.01f, 3.0f);
    std::vector<float> row(static_cast<size_t>(d));
    for (int64_t pos = 0; pos < cap; ++pos)
      for (int64_t h = 0; h < nkv; ++h) {
        // Per-row magnitudes spread over two decades so FP8 scales differ; every 37th value
        // row is zero (an all-zero FP8 row has scale 0).
        const float km = kmag * mag(rng), vm = (pos % 37 == 5) ? 0.0f : mag(rng);
        for (auto& x : row) x = km * n01(rng);
        kv_encode_row(dt, row.data(), d, k.data() + elem(pos, h) * es, &ks[size_t(scale_at(pos, h))]);
        for (auto& x : row) x = vm * n01(rng);
        kv_encode_row(dt, row.data(), d, v.data() + elem(pos, h) * es, &vs[size_t(scale_at(pos, h))]);
      }
  }
  int64_t pos_stride() const { return head_major ? d : nkv * d; }
  int64_t head_stride() const { return head_major ? cap * d : d; }
  size_t elem(int64_t pos, int64_t h) const { return size_t(pos * pos_stride() + h * head_stride()); }
  int64_t scale_at(int64_t pos, int64_t h) const { return head_major ? h * cap + pos : pos * nkv + h; }
  KvView view() const {
    KvView kv;
    kv.dtype = dtype;
    kv.k = k.data();
    kv.v = v.data();
    kv.pos_stride = pos_stride();
    kv.head_stride = head_stride();
    kv.k_scale = ks.data();
    kv.v_scale = vs.data();
    kv.scale_pos_stride = head_major ? 1 : nkv;
    kv.scale_head_stride = head_major ? cap : 1;
    return kv;
  }
  double value(bool key, int64_t pos, int64_t h, int64_t i) const {
    const uint8_t* base = (key ? k.data() : v.data()) + elem(pos, h) * dtype_size(dtype);
    const double s = dtype == DType::F8_E4M3 ? double((key ? ks : vs)[size_t(scale_at(pos, h))]) : 1.0;
    return double(kv_decode_element(dtype, base, i)) * s;
  }
};

struct Chunk {
  int64_t start, n;
};

struct Problem {
  int64_t nh, nkv, d;
  std::vector<TestCache> caches;  // one per chunk
  std::vector<Chunk> chunks;
  std::vector<std::vector<float>> q;
  float scale;

  AttentionBatch batch(std::vector<AttentionSeq>& seqs, std::vector<std::vector<float>>& out) const {
    seqs.clear();
    out.resize(chunks.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      out[i].assign(size_t(chunks[i].n * nh * d), NAN);
      seqs.push_back({caches[i].view(), chunks[i].start, chunks[i].n, q[i].data(), out[i].data()});
    }
    AttentionBatch b;
    b.num_heads = nh;
    b.num_kv_heads = nkv;
    b.head_dim = d;
    b.scale = scale;
    b.ldq = b.ldo = nh * d;
    b.seqs = seqs;
    return b;
  }
};

Problem make_problem(DType dt, int64_t nh, int64_t nkv, int64_t d, const std::vector<Chunk>& chunks, uint32_t seed,
                     float qmag = 1.0f, float kmag = 1.0f) {
  std::mt19937 rng(seed);
  Problem p{nh, nkv, d, {}, chunks, {}, float(1.0 / std::sqrt(double(d)))};
  std::normal_distribution<float> n01(0, 1);
  for (size_t i = 0; i < chunks.size(); ++i) {
    p.caches.emplace_back(dt, nkv, d, chunks[i].start + chunks[i].n, i % 2 == 0, rng, kmag);
    p.q.emplace_back(size_t(chunks[i].n * nh * d));
    for (auto& x : p.q.back()) x = qmag * n01(rng);
  }
  return p;
}

// Checks `got` against the oracle with the bound in the file comment; returns the worst
// error / bound ratio.
double check(const Problem& p, const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& ref,
             const std::string& what) {
  const int64_t g = p.nh / p.nkv, d = p.d;
  double worst = 0;
  for (size_t ci = 0; ci < p.chunks.size(); ++ci) {
    const Chunk& ch = p.chunks[ci];
    const TestCache& c = p.caches[ci];
    const int64_t n_all = ch.start + ch.n;
    // Decoded cache, [head][pos][i].
    std::vector<double> kd(size_t(p.nkv * n_all * d)), vd(kd.size());
    for (int64_t h = 0; h < p.nkv; ++h)
      for (int64_t j = 0; j < n_all; ++j)
        for (int64_t i = 0; i < d; ++i) {
          kd[size_t((h * n_all + j) * d + i)] = c.value(true, j, h, i);
          vd[size_t((h * n_all + j) * d + i)] = c.value(false, j, h, i);
        }
    std::vector<double> s, w, a(static_cast<size_t>(d));
    for (int64_t t = 0; t < ch.n; ++t) {
      const int64_t n = ch.start + t + 1;
      for (int64_t h = 0; h < p.nh; ++h) {
        const float* q = p.q[ci].data() + (t * p.nh + h) * d;
        const double* kh = kd.data() + (h / g) * n_all * d;
        const double* vh = vd.data() + (h / g) * n_all * d;
        s.assign(size_t(n), 0.0);
        w.assign(size_t(n), 0.0);
        double mx = -INFINITY, es = 0, sum = 0, smax = 0;
        for (int64_t j = 0; j < n; ++j) {
          double dot = 0, ad = 0;
          for (int64_t i = 0; i < d; ++i) {
            dot += q[i] * kh[j * d + i];
            ad += std::fabs(q[i] * kh[j * d + i]);
          }
          s[size_t(j)] = dot * p.scale;
          es = std::max(es, gamma(d) * ad * p.scale);
          mx = std::max(mx, s[size_t(j)]);
          smax = std::max(smax, std::fabs(s[size_t(j)]));
        }
        double es_shift = 0;
        for (int64_t j = 0; j < n; ++j) {
          es_shift = std::max(es_shift, 4 * kEps * (std::fabs(s[size_t(j)]) + smax));
          sum += (w[size_t(j)] = std::exp(s[size_t(j)] - mx));
        }
        const double rel = 2 * (es + es_shift) + 2 * gamma(n) + 16 * kEps;
        std::fill(a.begin(), a.end(), 0.0);
        for (int64_t j = 0; j < n; ++j)
          for (int64_t i = 0; i < d; ++i) a[size_t(i)] += w[size_t(j)] / sum * std::fabs(vh[j * d + i]);
        for (int64_t i = 0; i < d; ++i) {
          const double tol = 2 * a[size_t(i)] * rel + 1e-37;
          const size_t at = size_t((t * p.nh + h) * d + i);
          const double err = std::fabs(double(got[ci][at]) - double(ref[ci][at]));
          worst = std::max(worst, err / tol);
          if (!(err <= tol)) {
            ADD_FAILURE() << what << ": chunk " << ci << " (start " << ch.start << ", n " << ch.n << ") token " << t
                          << " head " << h << " elem " << i << ": got " << got[ci][at] << " want " << ref[ci][at]
                          << " tol " << tol;
            return worst;
          }
        }
      }
    }
  }
  return worst;
}

std::string label(const AttentionKernels& k, DType dt, int64_t nh, int64_t nkv, int64_t d) {
  return std::string(k.name) + " " + std::string(dtype_name(dt)) + " heads " + std::to_string(nh) + "/" +
         std::to_string(nkv) + " d " + std::to_string(d);
}

void compare_all(const Problem& p, ThreadPool& pool, DType dt) {
  std::vector<AttentionSeq> seqs;
  std::vector<std::vector<float>> ref, got;
  attention_ref(p.batch(seqs, ref));
  for (const AttentionKernels* k : attention_kernel_sets(cpu_features())) {
    AttentionWorkspace ws;
    run_attention(*k, p.batch(seqs, got), pool, ws);
    const double w = check(p, got, ref, label(*k, dt, p.nh, p.nkv, p.d));
    // ATTN_VERBOSE=1 prints how much of the bound each case uses (typically 0.1-20 %).
    if (std::getenv("ATTN_VERBOSE")) printf("%s worst %.3g\n", label(*k, dt, p.nh, p.nkv, p.d).c_str(), w);
  }
}

const DType kDtypes[] = {DType::F32, DType::BF16, DType::F8_E4M3};

// Contexts 1..300: first tokens, partition edges (256), key-block edges (16, 32), prefill
// chunks from 0 and from the middle, 2-token chunks.
const std::vector<Chunk> kMixed = {{0, 1},  {0, 37}, {45, 19}, {16, 1},  {15, 1}, {255, 1},
                                   {256, 1}, {299, 1}, {250, 50}, {7, 2}, {31, 2}, {100, 1}};

TEST(Attention, KernelsMatchReference) {
  ThreadPool pool(2);
  struct Shape {
    int64_t nh, nkv, d;
  };
  for (const Shape& s : {Shape{4, 4, 64}, Shape{4, 2, 128}, Shape{8, 2, 64}, Shape{6, 2, 128}, Shape{3, 1, 40},
                         Shape{16, 1, 32}})
    for (DType dt : kDtypes) compare_all(make_problem(dt, s.nh, s.nkv, s.d, kMixed, 11), pool, dt);
}

TEST(Attention, LongContext) {
  ThreadPool pool(2);
  for (DType dt : kDtypes) {
    compare_all(make_problem(dt, 4, 2, 128, {{2047, 1}, {2000, 24}, {1030, 1}}, 5), pool, dt);
    compare_all(make_problem(dt, 3, 1, 64, {{4000, 1}}, 6), pool, dt);
  }
}

// Peaked softmax (scores of ±80 and more) and flat softmax (q = 0: uniform weights).
TEST(Attention, ExtremeScores) {
  ThreadPool pool(2);
  for (DType dt : kDtypes) {
    compare_all(make_problem(dt, 4, 2, 64, kMixed, 21, 8.0f, 4.0f), pool, dt);
    compare_all(make_problem(dt, 4, 2, 64, kMixed, 22, 0.0f), pool, dt);
  }
}

// The same chunk alone, in a ragged batch, on 1-3 threads, and (prefill) split into smaller
// chunks: bit-identical outputs, since tiles are cut per sequence and rows are independent.
TEST(Attention, BatchThreadAndChunkInvariance) {
  ThreadPool pool1(1), pool2(2), pool3(3);
  for (DType dt : kDtypes) {
    const Problem p = make_problem(dt, 8, 2, 128, kMixed, 31);
    for (const AttentionKernels* k : attention_kernel_sets(cpu_features())) {
      std::vector<AttentionSeq> seqs;
      std::vector<std::vector<float>> all;
      AttentionWorkspace ws;
      run_attention(*k, p.batch(seqs, all), pool2, ws);
      for (ThreadPool* pool : {&pool1, &pool3}) {
        std::vector<std::vector<float>> again;
        run_attention(*k, p.batch(seqs, again), *pool, ws);
        EXPECT_EQ(again, all) << k->name << " threads " << pool->size();
      }
      for (size_t i = 0; i < p.chunks.size(); ++i) {
        Problem one{p.nh, p.nkv, p.d, {p.caches[i]}, {p.chunks[i]}, {p.q[i]}, p.scale};
        std::vector<std::vector<float>> alone;
        run_attention(*k, one.batch(seqs, alone), pool2, ws);
        EXPECT_EQ(alone[0], all[i]) << k->name << " chunk " << i;
      }
      // Prefill rows of chunk {250, 50} recomputed as chunks {250, 7} + {257, 43}.
      const size_t c = 8;
      ASSERT_EQ(p.chunks[c].n, 50);
      const int64_t row = p.nh * p.d;
      Problem split{p.nh, p.nkv, p.d, {p.caches[c], p.caches[c]}, {{250, 7}, {257, 43}},
                    {std::vector<float>(p.q[c].begin(), p.q[c].begin() + 7 * row),
                     std::vector<float>(p.q[c].begin() + 7 * row, p.q[c].end())}, p.scale};
      std::vector<std::vector<float>> parts;
      run_attention(*k, split.batch(seqs, parts), pool2, ws);
      std::vector<float> joined = parts[0];
      joined.insert(joined.end(), parts[1].begin(), parts[1].end());
      EXPECT_EQ(joined, all[c]) << k->name << " " << dtype_name(dt) << " prefill split";
    }
  }
  // Group 3: a 64-token chunk is cut into query blocks of 21, 21, 21 and 1 token; the lone
  // token is still a prefill row, equal to the same row of the whole 176-token chunk.
  for (DType dt : kDtypes) {
    const Problem p = make_problem(dt, 9, 3, 64, {{0, 176}}, 33);
    for (const AttentionKernels* k : attention_kernel_sets(cpu_features())) {
      std::vector<AttentionSeq> seqs;
      std::vector<std::vector<float>> whole, parts;
      AttentionWorkspace ws;
      run_attention(*k, p.batch(seqs, whole), pool2, ws);
      const int64_t row = p.nh * p.d;
      Problem split{p.nh, p.nkv, p.d, {p.caches[0], p.caches[0]}, {{0, 64}, {64, 112}},
                    {std::vector<float>(p.q[0].begin(), p.q[0].begin() + 64 * row),
                     std::vector<float>(p.q[0].begin() + 64 * row, p.q[0].end())}, p.scale};
      run_attention(*k, split.batch(seqs, parts), pool2, ws);
      std::vector<float> joined = parts[0];
      joined.insert(joined.end(), parts[1].begin(), parts[1].end());
      EXPECT_EQ(joined, whole[0]) << k->name << " " << dtype_name(dt) << " 64-token chunk";
    }
  }
}

// The same rows scattered over shuffled pages of a paged view (KvView::pages) give bit-identical
// outputs for every backend and for the oracle: kernels must address rows only through the
// view, never by one stride from a base. Pages of 32 and 64 positions, with spare pages between.
struct PagedCopy {
  std::vector<uint8_t> k, v;
  std::vector<float> ks, vs;
  std::vector<int32_t> table;
  KvView view;

  PagedCopy(const TestCache& c, int64_t page_size, std::mt19937& rng) {
    const int64_t used = (c.cap + page_size - 1) / page_size, total = 2 * used + 1;
    std::vector<int32_t> ids(static_cast<size_t>(total));
    for (int64_t i = 0; i < total; ++i) ids[size_t(i)] = int32_t(i);
    std::shuffle(ids.begin(), ids.end(), rng);
    table.assign(ids.begin(), ids.begin() + used);
    const size_t es = dtype_size(c.dtype), page_rows = size_t(c.nkv * page_size);
    k.assign(size_t(total) * page_rows * size_t(c.d) * es, 0xAB);  // junk in unused rows
    v.assign(k.size(), 0xCD);
    ks.assign(size_t(total) * page_rows, NAN);
    vs.assign(ks.size(), NAN);
    view.dtype = c.dtype;
    view.k = k.data();
    view.v = v.data();
    view.pos_stride = c.d;
    view.head_stride = page_size * c.d;
    view.k_scale = ks.data();
    view.v_scale = vs.data();
    view.scale_pos_stride = 1;
    view.scale_head_stride = page_size;
    view.pages = table.data();
    view.page_shift = std::countr_zero(uint64_t(page_size));
    view.page_stride = int64_t(page_rows) * c.d;
    view.scale_page_stride = int64_t(page_rows);
    for (int64_t pos = 0; pos < c.cap; ++pos)
      for (int64_t h = 0; h < c.nkv; ++h) {
        const size_t from = c.elem(pos, h) * es, to = size_t(view.row(pos, h)) * es;
        std::memcpy(k.data() + to, c.k.data() + from, size_t(c.d) * es);
        std::memcpy(v.data() + to, c.v.data() + from, size_t(c.d) * es);
        ks[size_t(view.scale_at(pos, h))] = c.ks[size_t(c.scale_at(pos, h))];
        vs[size_t(view.scale_at(pos, h))] = c.vs[size_t(c.scale_at(pos, h))];
      }
  }
};

TEST(Attention, PagedViewMatchesContiguous) {
  ThreadPool pool(2);
  std::mt19937 rng(41);
  std::vector<Chunk> chunks = kMixed;
  chunks.push_back({700, 1});
  chunks.push_back({600, 90});
  for (DType dt : kDtypes)
    for (int64_t page_size : {32, 64}) {
      const Problem p = make_problem(dt, 8, 2, 128, chunks, 51);
      std::vector<PagedCopy> paged;
      for (const TestCache& c : p.caches) paged.emplace_back(c, page_size, rng);
      auto paged_batch = [&](std::vector<AttentionSeq>& seqs, std::vector<std::vector<float>>& out) {
        AttentionBatch b = p.batch(seqs, out);
        for (size_t i = 0; i < seqs.size(); ++i) seqs[i].kv = paged[i].view;
        return b;
      };
      std::vector<AttentionSeq> seqs;
      std::vector<std::vector<float>> want, got;
      attention_ref(p.batch(seqs, want));
      attention_ref(paged_batch(seqs, got));
      EXPECT_EQ(got, want) << "reference " << dtype_name(dt) << " pages of " << page_size;
      for (const AttentionKernels* k : attention_kernel_sets(cpu_features())) {
        AttentionWorkspace ws;
        run_attention(*k, p.batch(seqs, want), pool, ws);
        run_attention(*k, paged_batch(seqs, got), pool, ws);
        EXPECT_EQ(got, want) << k->name << " " << dtype_name(dt) << " pages of " << page_size;
      }
    }
}

TEST(Attention, EncodeRoundTrip) {
  std::mt19937 rng(3);
  std::normal_distribution<float> n01(0, 1);
  std::vector<float> x(200);
  for (auto& v : x) v = n01(rng) * 1e-3f;
  x[17] = 0.0f;
  std::vector<uint8_t> buf(x.size() * 4);
  float scale = -1;
  kv_encode_row(DType::F32, x.data(), int64_t(x.size()), buf.data(), &scale);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(kv_decode_element(DType::F32, buf.data(), int64_t(i)), x[i]);
  // BF16: round to nearest, error ≤ half an ulp ≤ 2^-8 relative.
  kv_encode_row(DType::BF16, x.data(), int64_t(x.size()), buf.data(), &scale);
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_LE(std::fabs(kv_decode_element(DType::BF16, buf.data(), int64_t(i)) - x[i]), std::ldexp(std::fabs(x[i]), -8));
  // FP8: scale = max|x|/448; error ≤ half an e4m3 step: 2^-4 relative, or 2^-10·scale below the normals.
  kv_encode_row(DType::F8_E4M3, x.data(), int64_t(x.size()), buf.data(), &scale);
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  EXPECT_EQ(scale, amax / 448.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    const float back = kv_decode_element(DType::F8_E4M3, buf.data(), int64_t(i)) * scale;
    EXPECT_LE(std::fabs(back - x[i]), std::max(std::ldexp(std::fabs(x[i]), -4), std::ldexp(scale, -10)) * 1.0001f) << i;
  }
  std::vector<float> zeros(64, 0.0f);
  kv_encode_row(DType::F8_E4M3, zeros.data(), 64, buf.data(), &scale);
  EXPECT_EQ(scale, 0.0f);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(buf[size_t(i)], 0);
}

}  // namespace
}  // namespace lowbit
