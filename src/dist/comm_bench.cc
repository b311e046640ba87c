// comm_bench: times the TP all-reduce of an M×H fp32 partial sum (fp32, INT8 all-gather,
// INT8 reduce-scatter + all-gather) under mpirun, and prints what --quantize-tp-communications
// auto would choose from its start-up link model. Each sample is the slowest rank's time of one
// all-reduce (ranks start together after a barrier). scripts/bench_tp_comm.sh runs it over
// rate-limited veth links and shared memory; --quick is the CI smoke run.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/compressed_allreduce.h"
#include "dist/int8_rows.h"
#include "dist/link_model.h"

namespace lowbit::dist {
namespace {

struct Args {
  std::vector<int64_t> rows = {512, 2048, 8192};
  int64_t hidden = 2048;
  int reps = 10, warmup = 2;
  std::string label = "link";
  bool header = true;
  bool watchdog = true;     // false: blocking MPI collectives without a deadline
  std::string collectives;  // "blocking" / "polled" (MpiOptions::collectives)
};

std::vector<int64_t> parse_list(const std::string& s, const char* flag) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      out.push_back(std::stoll(item));
    } catch (const std::exception&) {
      fail("{}: {:?} is not a comma-separated list of integers", flag, s);
    }
  }
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("{} needs a value", f);
      return argv[++i];
    };
    if (f == "--rows") a.rows = parse_list(value(), "--rows");
    else if (f == "--hidden") a.hidden = std::stoll(value());
    else if (f == "--reps") a.reps = std::stoi(value());
    else if (f == "--warmup") a.warmup = std::stoi(value());
    else if (f == "--label") a.label = value();
    else if (f == "--no-header") a.header = false;
    else if (f == "--no-watchdog") a.watchdog = false;
    else if (f == "--collectives") a.collectives = value();
    else if (f == "--quick") a.rows = {16, 128}, a.hidden = 256, a.reps = 3, a.warmup = 1;
    else fail("comm_bench: unknown flag {} (flags: --rows A,B --hidden H --reps N --warmup N --label S --no-header --no-watchdog --collectives blocking|polled --quick)", f);
  }
  if (a.rows.empty() || a.hidden <= 0 || a.reps <= 0) fail("comm_bench: --rows, --hidden and --reps must be positive");
  return a;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

int run(int argc, char** argv) {
  const Args args = parse(argc, argv);
  auto comm = make_mpi_communicator({.timeout_ms = args.watchdog ? 0 : -1, .collectives = args.collectives});
  const int p = comm->size();
  TpAllReduce ar(*comm);
  const bool root = comm->rank() == 0;

  LinkProbe probe;
  probe.hidden = args.hidden;
  if (args.hidden < 2048) probe.rows = {4, 32, 128};
  const LinkModel model = LinkModel::measure(ar, probe);
  if (root) {
    std::printf("# %s: %d ranks, H=%lld, row kernels %s, %s collectives, load average %s\n", args.label.c_str(), p,
                (long long)args.hidden, int8_row_kernels().name,
                !args.watchdog ? "blocking unwatched" : args.collectives == "polled" ? "polled non-blocking" : "watched blocking", loadavg().c_str());
    std::printf("# link model: %s\n", model.describe().c_str());
    if (args.header)
      std::printf("%-10s %6s %-15s %10s %9s %9s %9s %8s %-15s %-15s\n", "link", "M", "method", "MB/rank", "min_ms",
                  "med_ms", "max_ms", "GB/s", "auto", "fastest");
  }

  const int64_t h = args.hidden;
  const int64_t max_rows = *std::max_element(args.rows.begin(), args.rows.end());
  std::vector<float> data(size_t(max_rows * h)), work(data.size());
  std::mt19937 rng(99u + unsigned(comm->rank()));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : data) v = dist(rng);

  constexpr TpReduce kMethods[] = {TpReduce::Fp32, TpReduce::Int8AllGather, TpReduce::Int8ReduceScatter};
  for (int64_t m : args.rows) {
    std::vector<double> times(3 * size_t(args.reps));
    for (int mi = 0; mi < 3; ++mi)
      for (int rep = -args.warmup; rep < args.reps; ++rep) {
        std::memcpy(work.data(), data.data(), size_t(m * h) * sizeof(float));
        comm->barrier();
        const auto t0 = std::chrono::steady_clock::now();
        ar.run(kMethods[mi], work.data(), m, h);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep >= 0) times[size_t(mi * args.reps + rep)] = dt;
      }
    comm->all_reduce_max(times.data(), int64_t(times.size()));
    if (!root) continue;
    double best_median = 1e300;
    TpReduce fastest = TpReduce::Fp32;
    std::vector<std::string> lines;
    for (int mi = 0; mi < 3; ++mi) {
      std::vector<double> t(times.begin() + mi * args.reps, times.begin() + (mi + 1) * args.reps);
      std::sort(t.begin(), t.end());
      const double med = t[t.size() / 2], bytes = tp_reduce_bytes_per_rank(kMethods[mi], m, h, p);
      if (med < best_median) best_median = med, fastest = kMethods[mi];
      lines.push_back(fmt::format("{:<10} {:>6} {:<15} {:>10.2f} {:>9.3f} {:>9.3f} {:>9.3f} {:>8.2f}", args.label, m,
                                  tp_reduce_name(kMethods[mi]), bytes / 1e6, t.front() * 1e3, med * 1e3,
                                  t.back() * 1e3, bytes / med / 1e9));
    }
    for (const std::string& l : lines)
      std::printf("%s %-15s %-15s\n", l.c_str(), tp_reduce_name(model.choose(m, h)), tp_reduce_name(fastest));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace lowbit::dist

int main(int argc, char** argv) {
  try {
    return lowbit::dist::run(argc, argv);
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "comm_bench: %s\n", e.what());
    return 1;
  }
}
