// The output of `lowbit bench`: a header (CPU, kernel path, measured limits, what the rooflines
// count), then one table row per scheme, in llama-bench's markdown style; or the same as one
// JSON document.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/roofline.h"
#include "tools/bench/bench_stats.h"
#include "tools/bench/model_costs.h"

namespace lowbit {

struct BenchSetup {
  std::string model_path, model, cpu_name, kernels;  // kernels: cpu_features().report()
  int threads = 0;
  int64_t prompt = 0, gen = 0, depth = 0;
  int reps = 0;
  MachineLimits limits;
};

// A tensor-parallel model's all-reduces during one timed prefill (its cumulative counters
// differenced around each prefill). With `auto`, the counts by method are what it chose.
struct TpPrefillComm {
  std::string setting;  // TensorParallel::describe(): ranks, split, compression (auto: what it measured)
  int64_t fp32 = 0, int8_allgather = 0, int8_rs_ag = 0;  // all-reduces per prefill, by method
  double bytes = 0;                                       // sent per rank per prefill, as the spec counts them
  Stats seconds;  // in all-reduces per prefill, rank 0's wall time (includes waiting for the slower rank)
};

struct BenchRow {
  std::string scheme, linear;  // linear: the first layer's LinearMethod::describe()
  double weight_bytes = 0, load_seconds = 0, kv_element_bytes = 0;
  Stats prefill_tps, decode_tps;
  PrefillOps prefill_ops;
  DecodeBytes decode_bytes;
  PeakKind peak = PeakKind::Fp32Fma;
  double peak_ops_per_s = 0;
  // Roofline tokens/s and the median's fraction of it (0 when the limit was not measured).
  double prefill_roofline_tps = 0, decode_roofline_tps = 0, prefill_fraction = 0, decode_fraction = 0;
  // Read bandwidth the decode roofline divides: the mean of the probes just before and after
  // the row (with -n 0, the probe before it).
  double read_bytes_per_s = 0;
  // NEXTN (--speculative-algorithm): greedy generation of -n tokens after the -p prompt without
  // the MTP head, drafting every step, and adaptively (alternating); acceptance over the
  // every-step runs (< 0: not run).
  Stats plain_generate_tps, nextn_generate_tps, adaptive_generate_tps;
  double nextn_acceptance = -1;
  std::optional<TpPrefillComm> tp;  // set when the model is tensor-parallel and -p > 0
  // MoE models: each MoE layer's tokens per expert over the whole run (warm-up included).
  std::vector<std::vector<int64_t>> expert_tokens;
};

// Fills the roofline fields of `row` from its costs, the compute peaks in `limits` and
// row.read_bytes_per_s (set by the caller from the probes around the row).
void apply_rooflines(BenchRow& row, const MachineLimits& limits);

// "Intel(R) Xeon(R) Platinum 8480+" from /proc/cpuinfo, or "unknown CPU".
std::string cpu_model_name();

void print_header(std::FILE* out, const BenchSetup& s);
void print_table_head(std::FILE* out, const BenchSetup& s);
void print_row(std::FILE* out, const BenchSetup& s, const BenchRow& r);
void print_footer(std::FILE* out, const std::vector<BenchRow>& rows);
nlohmann::json bench_json(const BenchSetup& s, const std::vector<BenchRow>& rows);

}  // namespace lowbit
