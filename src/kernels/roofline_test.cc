// The roofline loops (kernels/roofline.h) under every path this CPU runs: each peak is measured
// exactly when the CPU (capped by LOWBIT_MAX_ISA) has its instructions and skipped with a reason
// otherwise; the integer loops compute the exact sums their operation counts claim (so the
// instructions really ran as many times as counted); the read loops touch every byte of the
// range they are given.
#include "kernels/roofline.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/thread_pool.h"

namespace lowbit {
namespace {

bool expect_measured(PeakKind k, const CpuFeatures& cpu) {
  switch (k) {
    case PeakKind::Fp32Fma: return cpu.max_isa() >= Isa::Avx2;
    case PeakKind::Int8Vnni: return cpu.vnni();
    case PeakKind::Bf16Dot: return cpu.bf16();
    case PeakKind::Int8Amx:
    case PeakKind::Bf16Amx: return cpu.max_isa() >= Isa::Amx;
  }
  return false;
}

TEST(Roofline, PeaksMeasuredExactlyWhenTheCpuHasThem) {
  const CpuFeatures& cpu = cpu_features();
  ThreadPool pool(2);
  for (int i = 0; i < kNumPeakKinds; ++i) {
    const PeakKind k = PeakKind(i);
    const Peak p = measure_peak(k, pool, cpu, 0.002);
    EXPECT_EQ(p.kind, k);
    if (expect_measured(k, cpu)) {
      // Any CPU with these instructions does > 1 Gop/s per core; < 1e15 rules out a timer or
      // op-count blunder.
      EXPECT_GT(p.ops_per_s, 1e9) << peak_name(k);
      EXPECT_LT(p.ops_per_s, 1e15) << peak_name(k);
      EXPECT_EQ(p.how.find("skipped"), std::string::npos) << p.how;
    } else {
      EXPECT_EQ(p.ops_per_s, 0) << peak_name(k);
      EXPECT_EQ(p.how.rfind("skipped: ", 0), 0u) << p.how;
    }
  }
}

// acc starts at j in every lane of accumulator j and each vpdpbusd adds 4 products 1·3, so
// after `iters` iterations the lanes sum to 16·Σ_j (j + 12·iters) = 1920 + 3072·iters.
TEST(Roofline, VnniLoopComputesWhatItCounts) {
  if (!cpu_features().vnni()) GTEST_SKIP() << "no AVX-512 VNNI";
  for (int64_t iters : {1, 10, 1000}) {
    int32_t sink = 0;
    const double ops = roofline::int8_vnni_avx512(iters, &sink);
    EXPECT_EQ(ops, double(iters) * 16 * 64 * 2);
    EXPECT_EQ(sink, 1920 + 3072 * iters) << iters;
  }
}

// Float loops: the operation count is what the header documents and the result is finite
// (no overflow into inf/NaN, which some parts handle on a slow path).
TEST(Roofline, FloatLoopsCountAndStayFinite) {
  const CpuFeatures& cpu = cpu_features();
  float sink = 0;
  if (cpu.max_isa() >= Isa::Avx512) {
    EXPECT_EQ(roofline::fp32_fma_avx512(100000, &sink), 100000.0 * 16 * 16 * 2);
    EXPECT_TRUE(std::isfinite(sink));
  }
  if (cpu.max_isa() >= Isa::Avx2) {
    EXPECT_EQ(roofline::fp32_fma_avx2(100000, &sink), 100000.0 * 12 * 8 * 2);
    EXPECT_TRUE(std::isfinite(sink));
  }
  if (cpu.bf16()) {
    EXPECT_EQ(roofline::bf16_dot_avx512(100000, &sink), 100000.0 * 16 * 32 * 2);
    EXPECT_TRUE(std::isfinite(sink));
  }
}

// A zero buffer reads as 0; one set byte anywhere (first, middle, last) changes the result, so
// the loop covers the whole range.
TEST(Roofline, ReadLoopsTouchEveryByte) {
  const CpuFeatures& cpu = cpu_features();
  std::vector<std::pair<const char*, uint64_t (*)(const uint8_t*, size_t)>> loops = {
      {"portable", roofline::read_portable}};
  if (cpu.max_isa() >= Isa::Avx2) loops.push_back({"avx2", roofline::read_avx2});
  if (cpu.max_isa() >= Isa::Avx512) loops.push_back({"avx512", roofline::read_avx512});
  constexpr size_t kBytes = 64 * 1024;
  alignas(64) static uint8_t buf[kBytes];
  for (const auto& [name, read] : loops) {
    std::fill(buf, buf + kBytes, 0);
    EXPECT_EQ(read(buf, kBytes), 0u) << name;
    for (size_t at : {size_t(0), kBytes / 2 + 77, kBytes - 1}) {
      std::fill(buf, buf + kBytes, 0);
      buf[at] = 0x80;
      EXPECT_NE(read(buf, kBytes), 0u) << name << " missed byte " << at;
    }
  }
}

TEST(Roofline, ReadBandwidthIsMeasured) {
  ThreadPool pool(2);
  std::string how;
  const double bw = measure_read_bandwidth(pool, cpu_features(), size_t(64) << 20, 1, &how);
  EXPECT_GT(bw, 1e8);
  EXPECT_LT(bw, 1e13);
  EXPECT_NE(how.find("64 MiB"), std::string::npos) << how;
}

}  // namespace
}  // namespace lowbit
