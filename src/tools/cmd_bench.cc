// lowbit bench: llama-bench for lowbit. Measures this machine's limits (read bandwidth,
// compute peaks), then for each scheme loads the model, times prefill of -p tokens (one forward
// of the whole prompt) and decode of -n tokens (one forward per token) after -d cached tokens,
// over -r repetitions, and prints each against its roofline. Token ids are fixed random ids
// inside the tokenizer's range: nothing is sampled or decoded to text, so only the model runs.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/format.h"
#include "kernels/kernel_report.h"
#include "kernels/roofline.h"
#include "io/model_config.h"
#include "models/decoder.h"
#include "models/tensor_parallel.h"
#include "runtime/generator.h"
#include "tokenizer/tokenizer.h"
#include "tools/bench/bench_report.h"
#include "tools/commands.h"
#include "tools/model_session.h"

namespace lowbit {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  LoadOptions load;  // load.quantization: comma-separated list of schemes
  int64_t prompt = 512, gen = 128, depth = 0;
  int reps = 5;
  int64_t roofline_mib = 1024;
  bool json = false, no_warmup = false;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<std::string> parse_schemes(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    std::string s = list.substr(start, comma - start);
    if (!s.empty()) out.push_back(s);
    start = comma + 1;
  }
  if (out.empty()) out.push_back("none");
  for (const auto& s : out) {
    if (s == "none" || s == "bf16") continue;
    bool known = false;
    std::string names = "none, bf16";
    for (const auto& [name, what] : online_quantization_methods()) {
      known |= name == s;
      names += ", " + name;
    }
    if (!known) fail("--quantization: unknown scheme '{}' (supported: {})", s, names);
  }
  return out;
}

// Ids below both the model's vocabulary and the tokenizer's (Qwen3 pads its embedding past the
// tokenizer), so every id is one a real prompt could contain.
int64_t id_limit(const std::filesystem::path& dir, const ModelConfig& config) {
  int64_t limit = config.vocab_size;
  if (std::filesystem::exists(dir / "tokenizer.json"))
    limit = std::min<int64_t>(limit, int64_t(Tokenizer::from_dir(dir).vocab_size()));
  if (limit <= 0) fail("{}: empty vocabulary", dir.string());
  return limit;
}

std::vector<int32_t> random_ids(std::mt19937& rng, int64_t count, int64_t limit) {
  std::uniform_int_distribution<int32_t> pick(0, int32_t(limit - 1));
  std::vector<int32_t> ids(size_t(std::max<int64_t>(count, 0)));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

struct TokenSets {
  std::vector<int32_t> depth, prompt, gen;
};

// NEXTN: greedy generation of -n tokens after the -p prompt through the Generator, without the
// MTP head, drafting at every step, and adaptively, alternating runs so machine noise hits all alike.
void bench_nextn(const BenchArgs& a, DecoderModel& model, const Tokenizer& tokenizer, const TokenSets& ids,
                 ThreadPool& pool, BenchRow& row) {
  using S = Generator::Speculation;
  Generator plain(model, tokenizer, pool, 512, S::kOff), spec(model, tokenizer, pool, 512, S::kAlways),
      adaptive(model, tokenizer, pool, 512, S::kAdaptive);
  GenerationRequest req;
  req.prompt = ids.prompt.empty() ? std::vector<int32_t>{0} : ids.prompt;
  req.max_new_tokens = a.gen;
  req.ignore_eos = true;
  std::vector<double> p, n, ad;
  int64_t drafted = 0, accepted = 0;
  auto tps = [](const GenerationResult& r) {
    return r.decode_seconds > 0 ? double(r.output_ids.size() - 1) / r.decode_seconds : 0.0;
  };
  for (int r = 0; r < a.reps; ++r) {
    p.push_back(tps(plain.generate(req)));
    const GenerationResult s = spec.generate(req);
    n.push_back(tps(s));
    drafted += s.draft_tokens;
    accepted += s.accepted_draft_tokens;
    ad.push_back(tps(adaptive.generate(req)));
  }
  row.plain_generate_tps = summarize(p);
  row.nextn_generate_tps = summarize(n);
  row.adaptive_generate_tps = summarize(ad);
  row.nextn_acceptance = drafted > 0 ? double(accepted) / double(drafted) : 0.0;
}

BenchRow bench_scheme(const BenchArgs& a, const std::string& scheme, const TokenSets& ids, ThreadPool& pool,
                      const MachineLimits& limits, const Tokenizer* tokenizer, TpGroup* tp) {
  BenchRow row;
  row.scheme = scheme;
  const auto t_load = Clock::now();
  auto model = DecoderModel::load(a.load.model_path, {}, scheme == "none" || scheme == "bf16" ? "" : scheme,
                                  a.load.draft_head(), tp);
  row.load_seconds = seconds_since(t_load);
  row.weight_bytes = double(model->weight_bytes());
  model->for_each_linear([&](const std::string&, std::unique_ptr<LinearMethod>& m) {
    if (row.linear.empty()) row.linear = m->describe();
  });
  if (scheme == "bf16" && !model->config().quantization_config.is_null())
    fail("--quantization bf16: {} is already quantized; use 'none' to run it as stored", a.load.model_path.string());

  const int64_t capacity = a.depth + std::max<int64_t>({a.prompt, a.gen, 1});
  KvCache cache = model->make_cache(1, capacity);
  row.kv_element_bytes = kv_bytes_per_element(cache, *model);
  std::vector<float> logits;
  auto forward = [&](const std::vector<int32_t>& tokens, size_t begin, size_t count, int64_t start) {
    SequenceChunk chunk{0, start, std::span<const int32_t>(tokens.data() + begin, count), false, {}};
    model->forward(std::span<const SequenceChunk>(&chunk, 1), cache, pool, logits);
  };
  auto prefill = [&] { forward(ids.prompt, 0, ids.prompt.size(), a.depth); };
  auto decode = [&] {
    for (size_t i = 0; i < ids.gen.size(); ++i) forward(ids.gen, i, 1, a.depth + int64_t(i));
  };
  // Positions below the depth are never overwritten (prefill and decode write from `depth` on),
  // so the context is filled once, untimed.
  if (a.depth > 0) forward(ids.depth, 0, ids.depth.size(), 0);
  if (!a.no_warmup) {  // first-touch of activation buffers and weights, out of the timing
    if (a.prompt > 0) prefill();
    if (a.gen > 0) forward(ids.gen, 0, 1, a.depth);
  }
  std::vector<double> pp, tg, pp_reduce_seconds;
  const TensorParallel* tp_model = model->tensor_parallel();
  if (tp_model && a.prompt > 0) row.tp.emplace().setting = tp_model->describe();
  for (int r = 0; r < a.reps; ++r) {
    if (a.prompt > 0) {
      const TpCounters before = tp_model ? tp_model->counters() : TpCounters{};
      const auto t0 = Clock::now();
      prefill();
      pp.push_back(double(a.prompt) / seconds_since(t0));
      if (row.tp) {  // counters are cumulative since load: keep this prefill's share
        const TpCounters& after = tp_model->counters();
        row.tp->fp32 = after.fp32 - before.fp32;
        row.tp->int8_allgather = after.int8_allgather - before.int8_allgather;
        row.tp->int8_rs_ag = after.int8_rs_ag - before.int8_rs_ag;
        row.tp->bytes = after.bytes_sent - before.bytes_sent;
        pp_reduce_seconds.push_back(after.seconds - before.seconds);
      }
    }
    if (a.gen > 0) {
      const auto t0 = Clock::now();
      decode();
      tg.push_back(double(a.gen) / seconds_since(t0));
    }
  }
  row.prefill_tps = summarize(pp);
  if (row.tp) row.tp->seconds = summarize(pp_reduce_seconds);
  row.decode_tps = summarize(tg);
  row.prefill_ops = prefill_ops_per_token(*model, a.depth, a.prompt);
  row.decode_bytes = decode_bytes_per_token(*model, row.kv_element_bytes, a.depth, a.gen);
  row.peak = scheme_peak(scheme, *model, limits);
  for (auto& layer : model->expert_token_counts()) row.expert_tokens.push_back(std::move(layer.tokens));
  if (model->has_mtp() && a.gen > 1 && tokenizer) bench_nextn(a, *model, *tokenizer, ids, pool, row);
  return row;
}

int run(const BenchArgs& a, TpGroup* tp) {
  if (a.prompt < 0 || a.gen < 0 || a.depth < 0) fail("bench: -p, -n and -d must be ≥ 0");
  if (a.prompt == 0 && a.gen == 0) fail("bench: nothing to measure (-p 0 and -n 0)");
  if (a.reps < 1) fail("bench: -r must be ≥ 1");
  if (a.roofline_mib < 2) fail("bench: --roofline-mib must be ≥ 2");
  const std::vector<std::string> schemes = parse_schemes(a.load.quantization);
  const ModelConfig config = load_model_config(a.load.model_path);
  const CpuFeatures& cpu = cpu_features();
  ThreadPool pool(a.load.threads);
  auto note = [&](const std::string& what) {
    if (!a.load.quiet) fmt::print(stderr, "bench: {}\n", what);
  };

  BenchSetup setup;
  setup.model_path = a.load.model_path.string();
  setup.model = fmt::format("{}: {} layers, hidden {}, heads {}/{} x {}, intermediate {}, vocab {}",
                            config.architecture_name, config.num_hidden_layers, config.hidden_size,
                            config.num_attention_heads, config.num_key_value_heads, config.head_dim,
                            config.intermediate_size, config.vocab_size);
  setup.cpu_name = cpu_model_name();
  setup.kernels = kernel_report();
  setup.threads = pool.size();
  setup.prompt = a.prompt;
  setup.gen = a.gen;
  setup.depth = a.depth;
  setup.reps = a.reps;
  note("measuring read bandwidth and compute peaks");
  RooflineOptions ro;
  ro.buffer_bytes = size_t(a.roofline_mib) << 20;
  setup.limits = measure_machine_limits(pool, cpu, ro);

  std::mt19937 rng(20240515);
  const int64_t limit = id_limit(a.load.model_path, config);
  TokenSets ids{random_ids(rng, a.depth, limit), random_ids(rng, a.prompt, limit), random_ids(rng, a.gen, limit)};

  if (!a.json) {
    print_header(stdout, setup);
    print_table_head(stdout, setup);
  }
  std::optional<Tokenizer> tokenizer;  // NEXTN runs the Generator, which decodes text
  if (a.load.draft_head().load) tokenizer.emplace(Tokenizer::from_dir(a.load.model_path));
  std::vector<BenchRow> rows;
  double read_before = setup.limits.read_bytes_per_s;
  for (const std::string& scheme : schemes) {
    note(fmt::format("{}: loading and running {} repetitions", scheme, a.reps));
    BenchRow& row =
        rows.emplace_back(bench_scheme(a, scheme, ids, pool, setup.limits, tokenizer ? &*tokenizer : nullptr, tp));
    row.read_bytes_per_s = read_before;
    if (a.gen > 0 && read_before > 0) {
      // Probe again after the row and divide its decode by the mean of the probes around it:
      // a shared machine's bandwidth drifts over minutes (30-64 GB/s on the 2-core Zen4 VM), so
      // one probe at the start misstated later rows' fractions by up to 1.7x.
      const double read_after = measure_read_bandwidth(pool, cpu, ro.buffer_bytes, ro.read_passes);
      row.read_bytes_per_s = 0.5 * (read_before + read_after);
      read_before = read_after;
    }
    apply_rooflines(row, setup.limits);
    if (!a.json) print_row(stdout, setup, row);
  }
  if (a.json) {
    std::printf("%s\n", bench_json(setup, rows).dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    print_footer(stdout, rows);
  }
  return 0;
}

}  // namespace

CommandFn add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  add_load_options(app, a->load);
  if (auto* q = app.get_option_no_throw("--quantization"))
    q->description("Comma-separated schemes, one table row each: none or bf16 (the checkpoint as stored) or an "
                   "online method:\n  " +
                   online_quantization_help());
  app.add_option("--n-prompt,-p", a->prompt, "Prompt tokens per prefill (one forward); 0 skips prefill")
      ->capture_default_str();
  app.add_option("--n-gen,-n", a->gen, "Tokens to decode, one forward each; 0 skips decode")
      ->capture_default_str();
  app.add_option("--n-depth,-d", a->depth, "Tokens already in the KV cache before each test (untimed)")
      ->capture_default_str();
  app.add_option("--repetitions,-r", a->reps, "Timed repetitions per test (min/median/max reported)")
      ->capture_default_str();
  app.add_option("--roofline-mib", a->roofline_mib, "Read-bandwidth buffer in MiB (≥ 2; keep it far past the L3)")
      ->capture_default_str();
  app.add_flag("--no-warmup", a->no_warmup, "Skip the untimed warm-up prefill and decode step");
  app.add_flag("--json", a->json, "Print one JSON document instead of the table");
  return [a] {
    return run_tensor_parallel(a->load.tp, a->load.threads, [&](TpGroup* tp) { return run(*a, tp); });
  };
}

}  // namespace lowbit
