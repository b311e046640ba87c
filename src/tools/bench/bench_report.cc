#include "tools/bench/bench_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "schemes/moe_method.h"

namespace lowbit {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

std::string test_name(const char* kind, int64_t tokens, int64_t depth) {
  return depth > 0 ? fmt::format("{}{} @ d{}", kind, tokens, depth) : fmt::format("{}{}", kind, tokens);
}

std::string ops_rate(double ops) {
  if (ops >= 1e12) return fmt::format("{:.2f} Top/s", ops / 1e12);
  return fmt::format("{:.1f} Gop/s", ops / 1e9);
}

std::string tps3(const Stats& s) { return fmt::format("{:.2f} / {:.2f} / {:.2f}", s.min, s.median, s.max); }

std::string percent(double fraction, const char* of) {
  if (fraction <= 0) return "-";
  return of ? fmt::format("{:.1f} % {}", 100.0 * fraction, of) : fmt::format("{:.1f} %", 100.0 * fraction);
}

nlohmann::json stats_json(const Stats& s) {
  return {{"min", s.min}, {"median", s.median}, {"max", s.max}, {"samples", s.samples}};
}

// Column widths of the table (text after the leading "| ").
constexpr int kScheme = 10, kWeights = 11, kTps = 27, kPpRoof = 18, kMiBTok = 9, kTgRoof = 11;

}  // namespace

void apply_rooflines(BenchRow& r, const MachineLimits& limits) {
  const double ops = r.prefill_ops.total(), bytes = r.decode_bytes.total();
  r.peak_ops_per_s = limits.peaks.size() > size_t(r.peak) ? limits.peak(r.peak).ops_per_s : 0.0;
  r.prefill_roofline_tps = ops > 0 && r.peak_ops_per_s > 0 ? r.peak_ops_per_s / ops : 0.0;
  r.decode_roofline_tps = bytes > 0 && r.read_bytes_per_s > 0 ? r.read_bytes_per_s / bytes : 0.0;
  r.prefill_fraction = r.prefill_roofline_tps > 0 ? r.prefill_tps.median / r.prefill_roofline_tps : 0.0;
  r.decode_fraction = r.decode_roofline_tps > 0 ? r.decode_tps.median / r.decode_roofline_tps : 0.0;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "unknown CPU" : line.substr(start);
  }
  return "unknown CPU";
}

void print_header(std::FILE* out, const BenchSetup& s) {
  const MachineLimits& m = s.limits;
  std::string peaks;
  for (const Peak& p : m.peaks)
    peaks += fmt::format("\n  {:<10} {}", peak_name(p.kind),
                         p.measured() ? fmt::format("{} ({})", ops_rate(p.ops_per_s), p.how) : p.how);
  fmt::print(out,
             "lowbit bench: {}\n  {}\n"
             "cpu: {}; {} threads\n"
             "{}\n"
             "read bandwidth: {:.2f} GB/s ({})\n"
             "compute peaks (register-only loops on every thread, each timed by its CPU time):{}\n"
             "tg roofline = read bandwidth (the mean of probes just before and after the row: a shared "
             "machine's bandwidth drifts over minutes) / bytes per decoded token, counting every "
             "decoder-layer linear's weights as packed at load (LinearMethod::weight_bytes; MoE layers: "
             "the router and top_k experts), the lm_head's, one embedding row, K+V of every attention layer "
             "over the mean context of the timed steps (depth + (n+1)/2 positions, at the KV cache's bytes "
             "per element), and recurrent (Gated DeltaNet) "
             "state read and written; activations and norms not counted.\n"
             "pp roofline = the scheme's compute peak / operations per prompt token: 2 x (decoder-layer linear "
             "parameters) + 4 x layers x heads x head_dim x (depth + (p+1)/2) for attention + 2 x lm_head "
             "parameters / p (logits of the last token only).\n",
             s.model_path, s.model, s.cpu_name, s.threads, s.kernels, m.read_bytes_per_s / 1e9, m.read_how, peaks);
}

void print_table_head(std::FILE* out, const BenchSetup& s) {
  const std::string pp = test_name("pp", s.prompt, s.depth), tg = test_name("tg", s.gen, s.depth);
  fmt::print(out, "\n| {:<{}} | {:>{}} | {:>{}} | {:>{}} | {:>{}} | {:>{}} | {:>{}} |\n", "scheme", kScheme,
             "weights MiB", kWeights, pp + " t/s (min/med/max)", kTps, "pp roofline", kPpRoof,
             tg + " t/s (min/med/max)", kTps, "MiB/token", kMiBTok, "tg roofline", kTgRoof);
  fmt::print(out, "| {:-<{}} | {:->{}}: | {:->{}}: | {:->{}}: | {:->{}}: | {:->{}}: | {:->{}}: |\n", "", kScheme, "",
             kWeights - 1, "", kTps - 1, "", kPpRoof - 1, "", kTps - 1, "", kMiBTok - 1, "", kTgRoof - 1);
  std::fflush(out);
}

void print_row(std::FILE* out, const BenchSetup& s, const BenchRow& r) {
  fmt::print(out, "| {:<{}} | {:>{}.1f} | {:>{}} | {:>{}} | {:>{}} | {:>{}.1f} | {:>{}} |\n", r.scheme, kScheme,
             r.weight_bytes / kMiB, kWeights, tps3(r.prefill_tps), kTps,
             percent(r.prefill_fraction, peak_name(r.peak)), kPpRoof, tps3(r.decode_tps), kTps,
             r.decode_bytes.total() / kMiB, kMiBTok, percent(r.decode_fraction, nullptr), kTgRoof);
  std::fflush(out);
}

void print_footer(std::FILE* out, const std::vector<BenchRow>& rows) {
  fmt::print(out, "\n");
  for (const BenchRow& r : rows)
    fmt::print(out, "{}: {}; KV cache {:g} bytes/element; loaded in {:.2f} s\n", r.scheme, r.linear,
               r.kv_element_bytes, r.load_seconds);
  for (const BenchRow& r : rows) {
    if (!r.tp) continue;
    const TpPrefillComm& t = *r.tp;
    fmt::print(out,
               "{}: {}\n  per prefill: all-reduces fp32 {}, int8-allgather {}, int8-rs-ag {}; {:.2f} MiB sent per "
               "rank; {:.1f} / {:.1f} / {:.1f} ms in all-reduce (min/med/max, rank 0)\n",
               r.scheme, t.setting, t.fp32, t.int8_allgather, t.int8_rs_ag, t.bytes / kMiB, 1e3 * t.seconds.min,
               1e3 * t.seconds.median, 1e3 * t.seconds.max);
  }
  for (const BenchRow& r : rows) {
    if (r.expert_tokens.empty()) continue;
    std::vector<double> b;
    double hottest = 0;  // the largest share of a layer's routed tokens one expert took
    for (const auto& layer : r.expert_tokens) {
      b.push_back(expert_balancedness(layer));
      int64_t sum = 0, max = 0;
      for (int64_t t : layer) sum += t, max = std::max(max, t);
      if (sum > 0) hottest = std::max(hottest, double(max) / double(sum));
    }
    const Stats s = summarize(b);
    fmt::print(out,
               "{}: MoE routing over the run, {} layers: balancedness (mean / max tokens per expert; 1 = even) "
               "{:.3f} / {:.3f} / {:.3f} (min/med/max over layers); hottest expert {:.1f} % of its layer's tokens\n",
               r.scheme, r.expert_tokens.size(), s.min, s.median, s.max, 100.0 * hottest);
  }
  for (const BenchRow& r : rows) {
    if (r.nextn_acceptance < 0) continue;
    const auto& p = r.plain_generate_tps;
    const auto& n = r.nextn_generate_tps;
    const auto& d = r.adaptive_generate_tps;
    const double base = p.median > 0 ? p.median : 1.0;
    fmt::print(out,
               "{}: greedy generation t/s (min/med/max): without NEXTN {:.2f} / {:.2f} / {:.2f}; NEXTN every step "
               "{:.2f} / {:.2f} / {:.2f} (x{:.2f}, acceptance {:.3f}); NEXTN adaptive {:.2f} / {:.2f} / {:.2f} "
               "(x{:.2f})\n",
               r.scheme, p.min, p.median, p.max, n.min, n.median, n.max, n.median / base, r.nextn_acceptance, d.min,
               d.median, d.max, d.median / base);
  }
  std::fflush(out);
}

nlohmann::json bench_json(const BenchSetup& s, const std::vector<BenchRow>& rows) {
  nlohmann::json peaks = nlohmann::json::object();
  for (const Peak& p : s.limits.peaks)
    peaks[peak_name(p.kind)] = {{"ops_per_s", p.measured() ? nlohmann::json(p.ops_per_s) : nlohmann::json(nullptr)},
                                {"how", p.how}};
  nlohmann::json out = {
      {"model_path", s.model_path},
      {"model", s.model},
      {"cpu", s.cpu_name},
      {"kernels", s.kernels},
      {"threads", s.threads},
      {"n_prompt", s.prompt},
      {"n_gen", s.gen},
      {"n_depth", s.depth},
      {"repetitions", s.reps},
      {"limits", {{"read_bytes_per_s", s.limits.read_bytes_per_s}, {"read_how", s.limits.read_how}, {"peaks", peaks}}},
      {"counted",
       {{"decode_bytes_per_token",
         "decoder-layer linears' weight_bytes (MoE: router + top_k experts) + lm_head weight_bytes + one embedding "
         "row + K+V of every attention layer over depth + (n+1)/2 positions + recurrent state read and written"},
        {"prefill_ops_per_token",
         "2*(decoder-layer linear params) + 4*layers*heads*head_dim*(depth + (p+1)/2) + 2*(lm_head params)/p"}}},
  };
  nlohmann::json jrows = nlohmann::json::array();
  for (const BenchRow& r : rows) {
    auto frac = [](double f) { return f > 0 ? nlohmann::json(f) : nlohmann::json(nullptr); };
    jrows.push_back({
        {"scheme", r.scheme},
        {"linear", r.linear},
        {"weight_bytes", r.weight_bytes},
        {"load_s", r.load_seconds},
        {"kv_element_bytes", r.kv_element_bytes},
        {"prefill",
         {{"test", test_name("pp", s.prompt, s.depth)},
          {"tokens_per_s", stats_json(r.prefill_tps)},
          {"ops_per_token",
           {{"linear", r.prefill_ops.linear},
            {"attention", r.prefill_ops.attention},
            {"lm_head", r.prefill_ops.lm_head},
            {"total", r.prefill_ops.total()}}},
          {"peak", peak_name(r.peak)},
          {"peak_ops_per_s", r.peak_ops_per_s},
          {"roofline_tokens_per_s", r.prefill_roofline_tps},
          {"roofline_fraction", frac(r.prefill_fraction)}}},
        {"decode",
         {{"test", test_name("tg", s.gen, s.depth)},
          {"tokens_per_s", stats_json(r.decode_tps)},
          {"bytes_per_token",
           {{"linear", r.decode_bytes.linear},
            {"lm_head", r.decode_bytes.lm_head},
            {"embedding", r.decode_bytes.embedding},
            {"kv", r.decode_bytes.kv},
            {"recurrent", r.decode_bytes.recurrent},
            {"kv_context", r.decode_bytes.kv_context},
            {"total", r.decode_bytes.total()}}},
          {"read_bytes_per_s", r.read_bytes_per_s},
          {"roofline_tokens_per_s", r.decode_roofline_tps},
          {"roofline_fraction", frac(r.decode_fraction)}}},
    });
    if (r.tp)
      jrows.back()["tensor_parallel"] = {
          {"setting", r.tp->setting},
          {"prefill_all_reduces",
           {{"fp32", r.tp->fp32}, {"int8_allgather", r.tp->int8_allgather}, {"int8_rs_ag", r.tp->int8_rs_ag}}},
          {"prefill_bytes_per_rank", r.tp->bytes},
          {"prefill_all_reduce_seconds", stats_json(r.tp->seconds)}};
    if (!r.expert_tokens.empty()) {
      nlohmann::json layers = nlohmann::json::array();
      for (const auto& layer : r.expert_tokens)
        layers.push_back({{"tokens_per_expert", layer}, {"balancedness", expert_balancedness(layer)}});
      jrows.back()["moe_expert_distribution"] = std::move(layers);
    }
    if (r.nextn_acceptance >= 0)
      jrows.back()["nextn"] = {{"generate_tokens_per_s", stats_json(r.nextn_generate_tps)},
                               {"plain_generate_tokens_per_s", stats_json(r.plain_generate_tps)},
                               {"adaptive_generate_tokens_per_s", stats_json(r.adaptive_generate_tps)},
                               {"acceptance_rate", r.nextn_acceptance}};
  }
  out["rows"] = std::move(jrows);
  return out;
}

}  // namespace lowbit
