// Shared pieces of kernel_bench: the Qwen3-1.7B GEMM shapes, deterministic random fills, and
// the throughput counters every benchmark reports. Each registry file registers one benchmark
// per entry its registry lists for this CPU, so a new kernel shows up here with no edit.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace lowbit::bench {

// Weight shapes [N out, K in] of Qwen3-1.7B's linears: gate/up (6144×2048), down (2048×6144),
// q/o (2048×2048); k/v (1024×2048) behave like q at half the width.
struct GemmShape {
  int64_t n, k;
};
inline const std::vector<GemmShape>& qwen3_shapes() {
  static const std::vector<GemmShape> s = {{2048, 6144}, {6144, 2048}, {2048, 2048}};
  return s;
}
// Decode (one token per forward), a server's decode step of 8 requests, and prefill (a
// 512-token prompt).
inline constexpr int64_t kDecodeRows = 1, kBatchDecodeRows = 8, kPrefillRows = 512;

inline std::string shape_name(const GemmShape& s, int64_t m) {
  return std::to_string(s.n) + "x" + std::to_string(s.k) + "/m" + std::to_string(m);
}

inline std::mt19937& rng() {
  static std::mt19937 r(1234);
  return r;
}
inline void fill_uniform(float* p, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  for (size_t i = 0; i < n; ++i) p[i] = d(rng());
}
template <class T>
inline void fill_int(T* p, size_t n, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  for (size_t i = 0; i < n; ++i) p[i] = T(d(rng()));
}

// Bytes each call must move from memory (weights for a GEMM) and operations it does (a
// multiply-add counts 2), reported per second: "bytes_per_s" against the read bandwidth,
// "ops_per_s" against the compute peaks of `lowbit bench`.
inline void set_throughput(benchmark::State& state, double bytes_per_call, double ops_per_call) {
  state.counters["bytes_per_s"] = benchmark::Counter(bytes_per_call, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["ops_per_s"] = benchmark::Counter(ops_per_call, benchmark::Counter::kIsIterationInvariantRate);
}

// Registers a benchmark that captures its state by value (std::function keeps it alive).
inline void add(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), [fn](benchmark::State& st) { fn(st); })
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
}

// Worker threads for the GEMM benchmarks (LOWBIT_BENCH_THREADS, default 1: one core's kernel).
int bench_threads();

void register_quant_gemm();
void register_float_gemm();
void register_small_ops();
void register_attention();
void register_roofline();

}  // namespace lowbit::bench
