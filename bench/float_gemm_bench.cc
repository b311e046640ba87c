// Every float GEMM float_gemm_kernels() lists for this CPU, for each weight type (BF16, F16,
// F32) and activation type (F32, BF16), at Qwen3-1.7B's shapes, decode and prefill rows.
// Bytes counted: the [N, K] weight as stored; operations: 2·m·n·k.
#include <cstring>
#include <memory>

#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/float_gemm.h"

namespace lowbit::bench {

namespace {

ThreadPool& pool() {
  static ThreadPool p(bench_threads());
  return p;
}

struct FloatData {
  std::vector<uint8_t> w;
  std::vector<float> x, y;
};

std::shared_ptr<FloatData> make_float_data(DType wtype, const GemmShape& s, int64_t m) {
  auto d = std::make_shared<FloatData>();
  std::vector<float> wf(size_t(s.n * s.k));
  fill_uniform(wf.data(), wf.size(), -0.05f, 0.05f);
  d->w.resize(wf.size() * dtype_size(wtype));
  for (size_t i = 0; i < wf.size(); ++i) {
    uint8_t* p = d->w.data() + i * dtype_size(wtype);
    switch (wtype) {
      case DType::BF16: {
        const uint16_t b = f32_to_bf16(wf[i]);
        std::memcpy(p, &b, 2);
        break;
      }
      case DType::F16: {
        const uint16_t h = f32_to_f16(wf[i]);
        std::memcpy(p, &h, 2);
        break;
      }
      default: std::memcpy(p, &wf[i], 4);
    }
  }
  d->x.resize(size_t(m * s.k));
  fill_uniform(d->x.data(), d->x.size(), -1.0f, 1.0f);
  d->y.assign(size_t(m * s.n), 0.0f);
  return d;
}

std::shared_ptr<FloatData> cached(const std::string& key, DType wtype, const GemmShape& s, int64_t m) {
  static std::string current;
  static std::shared_ptr<FloatData> data;
  if (key != current) {
    data.reset();
    data = make_float_data(wtype, s, m);
    current = key;
  }
  return data;
}

}  // namespace

void register_float_gemm() {
  const CpuFeatures& cpu = cpu_features();
  for (const GemmShape& s : qwen3_shapes())
    for (int64_t m : {kDecodeRows, int64_t(4), int64_t(8), kPrefillRows})
      for (DType wtype : {DType::BF16, DType::F16, DType::F32}) {
        // Batched decode (the server's steps, speculative verification): BF16 weights only.
        if (m != kDecodeRows && m != kPrefillRows && wtype != DType::BF16) continue;
        const std::string key = std::string(dtype_name(wtype)) + "/" + shape_name(s, m);
        for (FloatAct act : {FloatAct::F32, FloatAct::BF16})
          for (const FloatGemmKernel* k : float_gemm_kernels(wtype, act, cpu)) {
            const FloatGemmFn fn = k->run;
            add(std::string("float/") + k->name + "/" + shape_name(s, m), [=](benchmark::State& st) {
              auto d = cached(key, wtype, s, m);
              for (auto _ : st)
                pool().parallel_for(s.n, 64, [&](int64_t n0, int64_t n1, int) {
                  fn(FloatGemmArgs{d->x.data(), s.k, d->w.data(), s.k, d->y.data(), s.n, m, s.k, n0, n1});
                });
              set_throughput(st, double(d->w.size()), 2.0 * double(m) * double(s.n) * double(s.k));
            });
          }
      }
}

}  // namespace lowbit::bench
