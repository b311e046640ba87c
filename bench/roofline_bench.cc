// The register-only compute peaks and the streaming read bandwidth of kernels/roofline.h, per
// thread count, so kernel results can be read against the machine's limits in one report
// (e.g. quant/amx/int_gemm_large at 512 rows against roofline/amx-int8).
#include <memory>
#include <string>

#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/roofline.h"

namespace lowbit::bench {

void register_roofline() {
  const CpuFeatures& cpu = cpu_features();
  const int threads = bench_threads();
  const std::string suffix = "/threads:" + std::to_string(threads);
  for (int i = 0; i < kNumPeakKinds; ++i) {
    const PeakKind kind = PeakKind(i);
    add(std::string("roofline/") + peak_name(kind) + suffix, [=, &cpu](benchmark::State& st) {
      ThreadPool pool(threads);
      Peak p{kind, 0, ""};
      for (auto _ : st) p = measure_peak(kind, pool, cpu, 0.01);
      if (!p.measured()) st.SkipWithError(p.how.c_str());
      st.counters["ops_per_s"] = p.ops_per_s;
    });
  }
  add("roofline/read_bandwidth" + suffix, [=, &cpu](benchmark::State& st) {
    ThreadPool pool(threads);
    double bw = 0;
    for (auto _ : st) bw = measure_read_bandwidth(pool, cpu, size_t(1) << 30, 2);
    st.counters["bytes_per_s"] = bw;
  });
}

}  // namespace lowbit::bench
