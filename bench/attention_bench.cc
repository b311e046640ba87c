// Every attention set attention_kernel_sets() lists for this CPU, through the driver the model
// uses (run_attention), at Qwen3-1.7B's head layout (16 query heads, 8 KV heads, head_dim 128):
// decode of one token over 512 and 4096 cached positions, and a 512-token prefill, for each KV
// cache type. Bytes counted: K and V of every position read (and FP8's per-row scales);
// operations: 4·heads·head_dim per (query, key) pair.
#include <cmath>
#include <memory>
#include <string>

#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"

namespace lowbit::bench {

namespace {

constexpr int64_t kHeads = 16, kKvHeads = 8, kHeadDim = 128;

ThreadPool& pool() {
  static ThreadPool p(bench_threads());
  return p;
}

// One layer and slot of a cache, [kv_head][pos][d] as the model lays it out, and the queries.
struct AttnData {
  DType dtype;
  int64_t cap;
  std::vector<uint8_t> k, v;
  std::vector<float> ks, vs, q, out;
  AttentionWorkspace ws;

  AttnData(DType dt, int64_t capacity, int64_t tokens) : dtype(dt), cap(capacity) {
    const size_t es = dtype_size(dt), rows = size_t(kKvHeads * cap);
    k.resize(rows * kHeadDim * es);
    v.resize(rows * kHeadDim * es);
    ks.assign(rows, 0.0f);
    vs.assign(rows, 0.0f);
    std::vector<float> row(kHeadDim);
    for (size_t r = 0; r < rows; ++r) {
      fill_uniform(row.data(), row.size(), -1.0f, 1.0f);
      kv_encode_row(dt, row.data(), kHeadDim, k.data() + r * kHeadDim * es, &ks[r]);
      fill_uniform(row.data(), row.size(), -1.0f, 1.0f);
      kv_encode_row(dt, row.data(), kHeadDim, v.data() + r * kHeadDim * es, &vs[r]);
    }
    q.resize(size_t(tokens * kHeads * kHeadDim));
    fill_uniform(q.data(), q.size(), -1.0f, 1.0f);
    out.assign(q.size(), 0.0f);
  }
  KvView view() const {
    KvView kv;
    kv.dtype = dtype;
    kv.k = k.data();
    kv.v = v.data();
    kv.pos_stride = kHeadDim;
    kv.head_stride = cap * kHeadDim;
    kv.k_scale = ks.data();
    kv.v_scale = vs.data();
    kv.scale_pos_stride = 1;
    kv.scale_head_stride = cap;
    return kv;
  }
};

void run(const AttentionKernels& kernels, AttnData& d, int64_t start, int64_t tokens) {
  const AttentionSeq seq{d.view(), start, tokens, d.q.data(), d.out.data()};
  AttentionBatch b;
  b.num_heads = kHeads;
  b.num_kv_heads = kKvHeads;
  b.head_dim = kHeadDim;
  b.scale = float(1.0 / std::sqrt(double(kHeadDim)));
  b.ldq = b.ldo = kHeads * kHeadDim;
  b.seqs = std::span<const AttentionSeq>(&seq, 1);
  run_attention(kernels, b, pool(), d.ws);
}

double kv_bytes(DType dt, int64_t positions) {
  const double per_row = double(kHeadDim * dtype_size(dt)) + (dt == DType::F8_E4M3 ? 4.0 : 0.0);
  return 2.0 * double(kKvHeads) * double(positions) * per_row;
}

}  // namespace

void register_attention() {
  for (const AttentionKernels* k : attention_kernel_sets(cpu_features()))
    for (DType dt : {DType::BF16, DType::F32, DType::F8_E4M3}) {
      const std::string base = std::string("attention/") + k->name + "/" + std::string(dtype_name(dt));
      for (int64_t ctx : {int64_t(512), int64_t(4096)})
        add(base + "/decode/ctx" + std::to_string(ctx), [=](benchmark::State& st) {
          auto d = std::make_shared<AttnData>(dt, ctx, 1);
          for (auto _ : st) run(*k, *d, ctx - 1, 1);
          set_throughput(st, kv_bytes(dt, ctx), 4.0 * double(kHeads * kHeadDim) * double(ctx));
        });
      constexpr int64_t p = kPrefillRows;
      add(base + "/prefill/p" + std::to_string(p), [=](benchmark::State& st) {
        auto d = std::make_shared<AttnData>(dt, p, p);
        for (auto _ : st) run(*k, *d, 0, p);
        set_throughput(st, kv_bytes(dt, p), 4.0 * double(kHeads * kHeadDim) * double(p) * double(p + 1) / 2.0);
      });
    }
}

}  // namespace lowbit::bench
