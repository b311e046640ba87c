// kernel_bench: Google Benchmark over every kernel the registries list for this CPU (honouring
// LOWBIT_MAX_ISA), plus the machine's roofline loops. Benchmarks are registered at run time
// from the registries, so a newly registered kernel is measured with no edit here.
//   kernel_bench --benchmark_filter='quant/.*/m1$'       decode GEMVs only
//   LOWBIT_BENCH_THREADS=2 kernel_bench                  kernels split over 2 threads
#include <cstdio>
#include <cstdlib>

#include "bench/bench_util.h"
#include "core/cpu_features.h"

namespace lowbit::bench {

int bench_threads() {
  const char* v = std::getenv("LOWBIT_BENCH_THREADS");
  const int n = v ? std::atoi(v) : 1;
  return n > 0 ? n : 1;
}

}  // namespace lowbit::bench

int main(int argc, char** argv) {
  using namespace lowbit::bench;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::fprintf(stderr, "%s\nthreads per kernel: %d\n", lowbit::cpu_features().report().c_str(), bench_threads());
  register_roofline();
  register_quant_gemm();
  register_float_gemm();
  register_small_ops();
  register_attention();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
