// Measures the machine limits declared in roofline.h: chooses each loop by CPU feature, runs
// it on every thread of the pool at once, times each thread by its own CPU time, and keeps
// the best of a few runs (the machine may be shared, and the best run is the one closest to
// what the hardware can do).
#include "kernels/roofline.h"

#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"
#include "core/thread_pool.h"

namespace lowbit {

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Results land here so no loop's work is dead code.
std::atomic<uint64_t> g_sink{0};

// Anonymous mapping, 2 MiB aligned and advised to huge pages where the kernel allows it: the
// read loop then measures DRAM, not page walks. Unmapped on destruction.
class MappedBuffer {
 public:
  explicit MappedBuffer(size_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("roofline: cannot map a {} MiB read buffer", bytes >> 20);
    madvise(p, bytes, MADV_HUGEPAGE);
    data_ = static_cast<uint8_t*>(p);
  }
  ~MappedBuffer() { munmap(data_, bytes_); }
  MappedBuffer(const MappedBuffer&) = delete;
  MappedBuffer& operator=(const MappedBuffer&) = delete;
  uint8_t* data() const { return data_; }

 private:
  size_t bytes_;
  uint8_t* data_;
};

using PeakLoop = double (*)(int64_t iters, uint64_t* sink);

template <class T, double (*Fn)(int64_t, T*)>
double adapt(int64_t iters, uint64_t* sink) {
  T s{};
  const double ops = Fn(iters, &s);
  uint64_t bits = 0;
  std::memcpy(&bits, &s, sizeof s);
  *sink ^= bits;
  return ops;
}

struct PeakChoice {
  PeakLoop loop = nullptr;
  std::string how, why_not;
};

PeakChoice choose(PeakKind kind, const CpuFeatures& cpu) {
  const Isa isa = cpu.max_isa();
  switch (kind) {
    case PeakKind::Fp32Fma:
      if (isa >= Isa::Avx512) return {adapt<float, roofline::fp32_fma_avx512>, "vfmadd231ps zmm, 16 chains", ""};
      if (isa >= Isa::Avx2) return {adapt<float, roofline::fp32_fma_avx2>, "vfmadd231ps ymm, 12 chains", ""};
      return {nullptr, "", "no FMA path at LOWBIT_MAX_ISA=scalar"};
    case PeakKind::Int8Vnni:
      if (cpu.vnni()) return {adapt<int32_t, roofline::int8_vnni_avx512>, "vpdpbusd zmm, 16 chains", ""};
      return {nullptr, "", "no AVX-512 VNNI in use"};
    case PeakKind::Bf16Dot:
      if (cpu.bf16()) return {adapt<float, roofline::bf16_dot_avx512>, "vdpbf16ps zmm, 16 chains", ""};
      return {nullptr, "", "no AVX512-BF16 in use"};
    case PeakKind::Int8Amx:
      if (isa >= Isa::Amx) return {adapt<int32_t, roofline::int8_amx>, "tdpbssd, 2x2 tiles", ""};
      return {nullptr, "", "no AMX in use"};
    case PeakKind::Bf16Amx:
      if (isa >= Isa::Amx) return {adapt<float, roofline::bf16_amx>, "tdpbf16ps, 2x2 tiles", ""};
      return {nullptr, "", "no AMX in use"};
  }
  return {};
}

}  // namespace

const char* peak_name(PeakKind kind) {
  switch (kind) {
    case PeakKind::Fp32Fma: return "fp32-fma";
    case PeakKind::Int8Vnni: return "int8-vnni";
    case PeakKind::Bf16Dot: return "bf16-dot";
    case PeakKind::Int8Amx: return "amx-int8";
    case PeakKind::Bf16Amx: return "amx-bf16";
  }
  return "?";
}

uint64_t roofline::read_portable(const uint8_t* p, size_t bytes) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 32 <= bytes; i += 32) {
    uint64_t v[4];
    std::memcpy(v, p + i, 32);
    a0 ^= v[0];
    a1 ^= v[1];
    a2 ^= v[2];
    a3 ^= v[3];
  }
  return a0 ^ a1 ^ a2 ^ a3;
}

double measure_read_bandwidth(ThreadPool& pool, const CpuFeatures& cpu, size_t bytes, int passes, std::string* how) {
  constexpr size_t kChunk = 2 << 20;  // threads split the buffer in 2 MiB (huge-page) pieces
  bytes = std::max(kChunk, bytes / kChunk * kChunk);
  uint64_t (*read)(const uint8_t*, size_t) = roofline::read_portable;
  const char* path = "64-bit scalar loads";
  if (cpu.max_isa() >= Isa::Avx512) {
    read = roofline::read_avx512;
    path = "avx512 loads";
  } else if (cpu.max_isa() >= Isa::Avx2) {
    read = roofline::read_avx2;
    path = "avx2 loads";
  }
  MappedBuffer buf(bytes);
  const int64_t chunks = int64_t(bytes / kChunk);
  // First touch by the thread that will read the range: on a NUMA machine its pages are then
  // local to that thread. A non-zero fill, so no page stays the shared zero page.
  // Each thread touches and later reads its own fixed range, all threads at once.
  const int threads = pool.size();
  auto range = [&](int t, int64_t& c0, int64_t& c1) {
    c0 = chunks * t / threads;
    c1 = chunks * (t + 1) / threads;
  };
  pool.on_each_thread([&](int t) {
    int64_t c0, c1;
    range(t, c0, c1);
    std::memset(buf.data() + size_t(c0) * kChunk, 0x5a, size_t(c1 - c0) * kChunk);
  });
  // A small (cache-sized) buffer is read several times per pass, so that a pass moves ≥ 256 MiB
  // and the pool's wake-up cost does not count as memory time.
  const int reps = int(std::max<size_t>(1, (size_t(256) << 20) / bytes));
  if (reps > 1) passes = std::max(passes, 10);  // cheap passes: more chances of a quiet one
  double best = 0;
  // As for the peaks, each thread's bytes over its own CPU time, summed: time a thread spends
  // descheduled on a shared machine is not memory time. (Threads time-sliced on one core
  // would each see more bandwidth than when running together; on a quiet machine, the case
  // that matters, every thread runs throughout and this equals bytes over wall time.)
  for (int pass = 0; pass < std::max(1, passes); ++pass) {
    std::atomic<uint64_t> x{0};
    std::atomic<double> rate{0};
    pool.on_each_thread([&](int t) {
      int64_t c0, c1;
      range(t, c0, c1);
      uint64_t v = 0;
      const double t0 = thread_cpu_seconds();
      for (int r = 0; r < reps; ++r) v ^= read(buf.data() + size_t(c0) * kChunk, size_t(c1 - c0) * kChunk);
      const double dt = thread_cpu_seconds() - t0;
      if (dt > 0) rate.fetch_add(double(c1 - c0) * double(kChunk) * reps / dt, std::memory_order_relaxed);
      x.fetch_xor(v, std::memory_order_relaxed);
    });
    g_sink.fetch_xor(x.load());
    best = std::max(best, rate.load());
  }
  if (how)
    *how = fmt::format("{}, {} MiB{}, best of {} passes, each thread timed by its CPU time", path, bytes >> 20,
                       reps > 1 ? fmt::format(" read {} times", reps) : "", std::max(1, passes));
  return best;
}

Peak measure_peak(PeakKind kind, ThreadPool& pool, const CpuFeatures& cpu, double seconds) {
  Peak peak{kind, 0, ""};
  const PeakChoice c = choose(kind, cpu);
  if (!c.loop) {
    peak.how = "skipped: " + c.why_not;
    return peak;
  }
  // Calibrate on one thread: double the iterations until a run takes ≥ 2 ms of CPU time, then
  // scale to the target time (which every thread then runs at once).
  uint64_t sink = 0;
  int64_t iters = 256;
  double t = 0;
  for (;;) {
    const double t0 = thread_cpu_seconds();
    c.loop(iters, &sink);
    t = thread_cpu_seconds() - t0;
    if (t >= 2e-3 || iters > (int64_t(1) << 40)) break;
    iters *= 2;
  }
  iters = std::max<int64_t>(1, int64_t(double(iters) * std::max(seconds, 1e-3) / t));
  // Each thread's rate is its operations over its own CPU time, summed over threads: a peak is
  // a property of the cores, and on a shared machine wall time would also count the time a
  // thread spent descheduled.
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    std::atomic<double> rate{0};
    pool.on_each_thread([&](int) {
      uint64_t s = 0;
      double done = 0;
      const double t0 = thread_cpu_seconds();
      done += c.loop(iters, &s);
      const double dt = thread_cpu_seconds() - t0;
      if (dt > 0) rate.fetch_add(done / dt, std::memory_order_relaxed);
      g_sink.fetch_xor(s, std::memory_order_relaxed);
    });
    best = std::max(best, rate.load());
  }
  g_sink.fetch_xor(sink);
  peak.ops_per_s = best;
  peak.how = c.how;
  return peak;
}

MachineLimits measure_machine_limits(ThreadPool& pool, const CpuFeatures& cpu, const RooflineOptions& o) {
  MachineLimits m;
  m.threads = pool.size();
  m.read_bytes_per_s = measure_read_bandwidth(pool, cpu, o.buffer_bytes, o.read_passes, &m.read_how);
  for (int k = 0; k < kNumPeakKinds; ++k) m.peaks.push_back(measure_peak(PeakKind(k), pool, cpu, o.seconds_per_peak));
  return m;
}

}  // namespace lowbit
