// This machine's limits, measured at run time for rooflines (`lowbit bench`, kernel_bench):
// streaming read bandwidth over a buffer far larger than the caches, and arithmetic peaks
// from register-only loops (no memory traffic) for each instruction family our kernels use.
// A peak the CPU lacks (or LOWBIT_MAX_ISA caps off) is skipped and says why; the per-ISA
// loops live in kernels/cpu/roofline_*.cc, each compiled with its own ISA's flags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cpu_features.h"

namespace lowbit {

class ThreadPool;

// Arithmetic peaks, in operations per second (one multiply-add = 2 operations).
enum class PeakKind {
  Fp32Fma,   // vfmadd231ps (zmm, or ymm on AVX2 machines)
  Int8Vnni,  // vpdpbusd zmm (AVX-512 VNNI)
  Bf16Dot,   // vdpbf16ps zmm (AVX512-BF16)
  Int8Amx,   // tdpbssd (AMX-INT8)
  Bf16Amx,   // tdpbf16ps (AMX-BF16)
};
inline constexpr int kNumPeakKinds = 5;
const char* peak_name(PeakKind kind);  // "fp32-fma", "int8-vnni", "bf16-dot", "amx-int8", "amx-bf16"

struct Peak {
  PeakKind kind;
  double ops_per_s = 0;  // 0 when skipped
  std::string how;       // "vfmadd231ps zmm, 16 accumulators" or why it was skipped
  bool measured() const { return ops_per_s > 0; }
};

struct MachineLimits {
  int threads = 0;
  double read_bytes_per_s = 0;
  std::string read_how;  // "avx512 loads, 1024 MiB, best of 3 passes, ..."
  std::vector<Peak> peaks;  // one per PeakKind, in enum order
  const Peak& peak(PeakKind kind) const { return peaks.at(size_t(kind)); }
};

struct RooflineOptions {
  size_t buffer_bytes = size_t(1) << 30;  // ≥ 4× L3 (260 MB on the Xeons here)
  int read_passes = 3;                    // best of
  double seconds_per_peak = 0.05;         // per timed run; best of 5 runs
};

// Everything, multithreaded over `pool` (every thread runs the same loop; the peak is the
// total over threads). The CPU features decide which loops may run.
MachineLimits measure_machine_limits(ThreadPool& pool, const CpuFeatures& cpu, const RooflineOptions& options = {});
// Bytes per second of a streaming read of `bytes` (first-touched by the same threads that
// read it, so each thread reads pages it faulted in), best of `passes`.
double measure_read_bandwidth(ThreadPool& pool, const CpuFeatures& cpu, size_t bytes, int passes, std::string* how = nullptr);
Peak measure_peak(PeakKind kind, ThreadPool& pool, const CpuFeatures& cpu, double seconds);

// Per-ISA loops. Each peak loop runs `iters` iterations of independent dependency chains
// (enough accumulators to cover the instruction's latency) and returns the operations it did;
// the accumulators are folded into *sink so nothing can be optimised away.
namespace roofline {
uint64_t read_portable(const uint8_t* p, size_t bytes);
uint64_t read_avx2(const uint8_t* p, size_t bytes);    // p 64-byte aligned, bytes % 256 == 0
uint64_t read_avx512(const uint8_t* p, size_t bytes);  // same
double fp32_fma_avx2(int64_t iters, float* sink);
double fp32_fma_avx512(int64_t iters, float* sink);
double int8_vnni_avx512(int64_t iters, int32_t* sink);
double bf16_dot_avx512(int64_t iters, float* sink);
double int8_amx(int64_t iters, int32_t* sink);
double bf16_amx(int64_t iters, float* sink);
}  // namespace roofline

}  // namespace lowbit
