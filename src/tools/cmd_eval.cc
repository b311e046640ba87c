// lowbit eval ppl | kld: perplexity of a model on a text, and the KL divergence of a quantized
// model's next-token distributions from a float model's, as llama.cpp's
// `llama-perplexity --kl-divergence`. Windows and scoring: runtime/eval_text.h; math and the
// compact base format: runtime/kl_divergence.h. Logits are streamed one window at a time:
// memory is two windows' scored logits (ctx/2 × vocab floats each), whatever the text length.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "models/decoder.h"
#include "runtime/eval_text.h"
#include "runtime/kl_divergence.h"
#include "tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/model_session.h"
#include "tools/progress_bar.h"

namespace lowbit {

namespace {

struct EvalArgs {
  std::filesystem::path model_path, base_model_path, base_file, save_base, text;
  std::string quantization;  // online quantization of --model-path only (never of the base)
  int64_t ctx = 512, max_tokens = 0;
  int threads = 0;
  bool json = false, quiet = false;
  TpCliOptions tp;
  TpGroup* tp_group = nullptr;  // set on rank 0 of a tensor-parallel run
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::unique_ptr<DecoderModel> load_model(const std::filesystem::path& dir, const EvalArgs& a,
                                         std::string_view quantization = {}) {
  const auto t0 = Clock::now();
  ProgressBar bar("loading", !a.quiet && ::isatty(STDERR_FILENO));
  auto m = DecoderModel::load(
      dir, [&](int64_t done, int64_t total) { bar.update(done, total, "layers"); }, quantization, {}, a.tp_group);
  bar.finish();
  if (!a.quiet)
    std::fprintf(stderr, "loaded %s in %.2f s: %s; %.1f MiB of weights\n", dir.c_str(), seconds_since(t0),
                 m->describe().c_str(), double(m->weight_bytes()) / (1 << 20));
  return m;
}

// The tokenizer's BOS when its add_special_tokens puts one first (llama.cpp puts BOS at the
// start of every window in that case).
std::optional<int32_t> window_bos(const Tokenizer& tok) {
  const auto bos = tok.bos_id();
  if (!bos) return std::nullopt;
  const auto with = tok.encode("a", true), without = tok.encode("a", false);
  if (with.size() > without.size() && with.front() == *bos) return bos;
  return std::nullopt;
}

EvalWindows make_windows(const EvalArgs& a, const std::filesystem::path& tokenizer_dir,
                         const std::filesystem::path* other_tokenizer_dir) {
  std::ifstream in(a.text, std::ios::binary);
  if (!in) fail("{}: cannot read", a.text.string());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Tokenizer tok = Tokenizer::from_dir(tokenizer_dir);
  std::vector<int32_t> ids = tok.encode(text, false);
  if (other_tokenizer_dir && Tokenizer::from_dir(*other_tokenizer_dir).encode(text, false) != ids)
    fail("{} and {} tokenize the text differently: KL divergence needs one vocabulary", tokenizer_dir.string(),
         other_tokenizer_dir->string());
  if (!a.quiet) std::fprintf(stderr, "%s: %zu bytes, %zu tokens\n", a.text.c_str(), text.size(), ids.size());
  return EvalWindows(std::move(ids), a.ctx, a.max_tokens, window_bos(tok));
}

// Calls fn(row) for each of n rows on the pool, one row per task.
template <class Fn>
void for_rows(ThreadPool& pool, int64_t n, Fn&& fn) {
  pool.parallel_for(n, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) fn(r);
  });
}

// A bar on a terminal; otherwise (logs, CI) a line at every tenth of the windows, since a
// full evaluation runs for minutes.
class Progress {
 public:
  Progress(bool enabled, int64_t total)
      : bar_("evaluating", enabled && ::isatty(STDERR_FILENO)),
        lines_(enabled && !::isatty(STDERR_FILENO)),
        total_(total),
        t0_(Clock::now()) {}
  void update(int64_t done) {
    bar_.update(done, total_, "windows");
    if (lines_ && (done * 10 / total_ != (done - 1) * 10 / total_))
      std::fprintf(stderr, "evaluated %lld/%lld windows in %.1f s\n", (long long)done, (long long)total_,
                   seconds_since(t0_));
  }
  ~Progress() { bar_.finish(); }

 private:
  ProgressBar bar_;
  bool lines_;
  int64_t total_;
  Clock::time_point t0_;
};

nlohmann::json ppl_json(const EvalStats::Ppl& p) {
  return {{"ppl", p.ppl}, {"ppl_stderr", p.ppl_stderr}, {"mean_nll", p.mean_nll}};
}

nlohmann::json run_info(const EvalArgs& a, const EvalWindows& w, int threads) {
  return {{"text", a.text.string()},
          {"ctx", w.ctx()},
          {"windows", w.count()},
          {"tokens_used", w.tokens_used()},
          {"scored_tokens", w.count() * w.scored_per_window()},
          {"threads", threads}};
}

int run_ppl(const EvalArgs& a) {
  ThreadPool pool(a.threads);
  const EvalWindows windows = make_windows(a, a.model_path, nullptr);
  const auto t_load = Clock::now();
  auto model = load_model(a.model_path, a, a.quantization);
  const double load_s = seconds_since(t_load);
  WindowRunner runner(*model, pool, windows.ctx());
  EvalStats stats;
  std::vector<double> nll(size_t(windows.scored_per_window()));
  const auto t0 = Clock::now();
  {
    Progress progress(!a.quiet, windows.count());
    for (int64_t w = 0; w < windows.count(); ++w) {
      const std::span<const float> rows = runner.run(windows, w);
      const int64_t v = runner.vocab();
      for_rows(pool, windows.scored_per_window(), [&](int64_t r) {
        nll[size_t(r)] = negative_log_likelihood(rows.subspan(size_t(r * v), size_t(v)), windows.target(w, r));
      });
      for (double x : nll) stats.add_nll(x);
      progress.update(w + 1);
    }
  }
  const double eval_s = seconds_since(t0);
  const auto s = stats.summary();
  if (a.json) {
    nlohmann::json out = run_info(a, windows, pool.size());
    out["command"] = "ppl";
    out["model"] = a.model_path.string();
    out.update(ppl_json(s.quant));
    out["timings"] = {{"load_s", load_s}, {"eval_s", eval_s}, {"tokens_per_s", double(windows.tokens_used()) / eval_s}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("perplexity of %s on %s\n", a.model_path.c_str(), a.text.c_str());
    std::printf("  %lld windows of %lld tokens, %lld scored tokens (second half of each window)\n",
                (long long)windows.count(), (long long)windows.ctx(), (long long)s.tokens);
    std::printf("  PPL = %.4f ± %.4f   (mean NLL %.6f nats)\n", s.quant.ppl, s.quant.ppl_stderr, s.quant.mean_nll);
    std::printf("  %.1f s, %.1f tokens/s, %d threads\n", eval_s, double(windows.tokens_used()) / eval_s, pool.size());
  }
  return 0;
}

int run_kld(const EvalArgs& a) {
  ThreadPool pool(a.threads);
  const bool have_quant = !a.model_path.empty();
  const auto& tok_dir = have_quant ? a.model_path : a.base_model_path;
  const bool two_models = have_quant && !a.base_model_path.empty();
  const EvalWindows windows = make_windows(a, tok_dir, two_models ? &a.base_model_path : nullptr);
  const int64_t n = windows.scored_per_window();

  // Base: a float model, or a file written earlier by --save-base.
  std::unique_ptr<DecoderModel> base_model, quant_model;
  std::unique_ptr<BaseFileReader> base_file;
  const auto t_load = Clock::now();
  if (!a.base_model_path.empty()) {
    base_model = load_model(a.base_model_path, a);
  } else {
    base_file = std::make_unique<BaseFileReader>(a.base_file);
    const auto& h = base_file->header();
    if (int64_t(h.ctx) != windows.ctx() || int64_t(h.windows) != windows.count())
      fail(
          "{} holds {} windows of {} tokens; this run has {} windows of {}: use the same --text, --ctx and "
          "--max-tokens",
          a.base_file.string(), h.windows, h.ctx, windows.count(), windows.ctx());
  }
  if (have_quant) quant_model = load_model(a.model_path, a, a.quantization);
  const double load_s = seconds_since(t_load);
  const int64_t vocab = base_model ? base_model->config().vocab_size : int64_t(base_file->header().vocab);
  if (quant_model && quant_model->config().vocab_size != vocab)
    fail("vocabulary sizes differ: base {}, quantized {}", vocab, quant_model->config().vocab_size);

  std::unique_ptr<BaseFileWriter> writer;
  if (!a.save_base.empty())
    writer = std::make_unique<BaseFileWriter>(a.save_base, BaseFileHeader{.vocab = uint32_t(vocab),
                                                                          .ctx = uint64_t(windows.ctx()),
                                                                          .windows = uint64_t(windows.count()),
                                                                          .scored_per_window = uint64_t(n)});
  std::optional<WindowRunner> base_runner, quant_runner;
  if (base_model) base_runner.emplace(*base_model, pool, windows.ctx());
  if (quant_model) quant_runner.emplace(*quant_model, pool, windows.ctx());

  EvalStats stats;
  std::vector<TokenComparison> cmp(static_cast<size_t>(n));
  std::vector<double> nll(static_cast<size_t>(n));
  std::vector<std::byte> compact;
  const size_t row_bytes = compact_row_bytes(vocab);
  double base_s = 0, quant_s = 0, stats_s = 0;
  const auto t0 = Clock::now();
  {
    Progress progress(!a.quiet, windows.count());
    for (int64_t w = 0; w < windows.count(); ++w) {
      auto t = Clock::now();
      std::span<const float> base_rows;
      if (base_runner) {
        base_rows = base_runner->run(windows, w);
      } else {
        base_file->read_window(compact);
      }
      base_s += seconds_since(t);
      t = Clock::now();
      if (writer) {
        compact.resize(size_t(n) * row_bytes);
        for_rows(pool, n, [&](int64_t r) {
          encode_compact_row(base_rows.subspan(size_t(r * vocab), size_t(vocab)), windows.target(w, r),
                             std::span(compact).subspan(size_t(r) * row_bytes, row_bytes));
        });
        writer->write_window(compact);
      }
      stats_s += seconds_since(t);
      if (!quant_runner) {  // --save-base alone: the base model's perplexity only
        for_rows(pool, n, [&](int64_t r) {
          nll[size_t(r)] =
              negative_log_likelihood(base_rows.subspan(size_t(r * vocab), size_t(vocab)), windows.target(w, r));
        });
        for (double x : nll) stats.add_nll(x);
        progress.update(w + 1);
        continue;
      }
      t = Clock::now();
      const std::span<const float> quant_rows = quant_runner->run(windows, w);
      quant_s += seconds_since(t);
      t = Clock::now();
      for_rows(pool, n, [&](int64_t r) {
        const auto q = quant_rows.subspan(size_t(r * vocab), size_t(vocab));
        cmp[size_t(r)] =
            base_runner ? compare_logits(base_rows.subspan(size_t(r * vocab), size_t(vocab)), q, windows.target(w, r))
                        : compare_compact(std::span(compact).subspan(size_t(r) * row_bytes, row_bytes), q,
                                          windows.target(w, r));
      });
      for (const auto& c : cmp) stats.add(c);
      stats_s += seconds_since(t);
      progress.update(w + 1);
    }
  }
  if (writer) writer->finish();
  const double eval_s = seconds_since(t0);
  const auto s = stats.summary();
  const std::string base_name = base_model ? a.base_model_path.string() : a.base_file.string();
  if (a.json) {
    nlohmann::json out = run_info(a, windows, pool.size());
    out["command"] = "kld";
    out["base"] = base_name;
    if (!a.save_base.empty()) out["saved_base"] = a.save_base.string();
    out["timings"] = {{"load_s", load_s},   {"eval_s", eval_s},
                      {"base_s", base_s},   {"quant_s", quant_s},
                      {"stats_s", stats_s}, {"tokens_per_s", double(windows.tokens_used()) / eval_s}};
    if (!quant_model) {
      out["ppl_base"] = ppl_json(s.quant);
    } else {
      out["model"] = a.model_path.string();
      out["ppl_base"] = ppl_json(s.base);
      out["ppl_quant"] = ppl_json(s.quant);
      out["delta_ppl"] = s.quant.ppl - s.base.ppl;
      out["kl"] = {
          {"mean", s.kl_mean}, {"stderr", s.kl_stderr}, {"median", s.kl_median}, {"p99", s.kl_p99}, {"max", s.kl_max}};
      out["same_top"] = s.same_top;
      out["delta_p"] = {{"mean", s.delta_p_mean}, {"rms", s.delta_p_rms}};
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("KL divergence on %s: %lld windows of %lld tokens, %lld scored tokens\n", a.text.c_str(),
              (long long)windows.count(), (long long)windows.ctx(), (long long)s.tokens);
  std::printf("  base:      %s\n", base_name.c_str());
  if (!quant_model) {
    std::printf("  PPL(base)  %.4f ± %.4f\n  base log-probs written to %s\n", s.quant.ppl, s.quant.ppl_stderr,
                a.save_base.c_str());
  } else {
    std::printf("  quantized: %s\n\n", a.model_path.c_str());
    std::printf("  %-18s %14.4f ± %.4f\n", "PPL(base)", s.base.ppl, s.base.ppl_stderr);
    std::printf("  %-18s %14.4f ± %.4f\n", "PPL(quant)", s.quant.ppl, s.quant.ppl_stderr);
    std::printf("  %-18s %14.4f  (%+.3f%%)\n", "ΔPPL", s.quant.ppl - s.base.ppl,
                100.0 * (s.quant.ppl / s.base.ppl - 1.0));
    std::printf("  %-18s %14.6f ± %.6f nats\n", "KLD mean", s.kl_mean, s.kl_stderr);
    std::printf("  %-18s %14.6f\n  %-18s %14.6f\n  %-18s %14.6f\n", "KLD median", s.kl_median, "KLD p99", s.kl_p99,
                "KLD max", s.kl_max);
    std::printf("  %-18s %13.3f %%\n", "same top", 100.0 * s.same_top);
    std::printf("  %-18s %+13.4f %%  (rms %.4f %%)\n", "Δp mean", 100.0 * s.delta_p_mean, 100.0 * s.delta_p_rms);
  }
  std::printf("\n  %.1f s (base %.1f s, quantized %.1f s, statistics %.1f s), %d threads\n", eval_s, base_s, quant_s,
              stats_s, pool.size());
  return 0;
}

void add_common_options(CLI::App& cmd, EvalArgs& a) {
  cmd.add_option("--text", a.text, "UTF-8 text file to evaluate on (e.g. data/eval/austen-pride-and-prejudice.txt)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd.add_option("--ctx,-c", a.ctx, "Window size in tokens; the second half of each window is scored")
      ->check(CLI::Range(int64_t(4), int64_t(1) << 20));
  cmd.add_option("--max-tokens", a.max_tokens, "Use only the first N tokens of the text (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--threads,-t", a.threads, "Worker threads (default: all hardware threads)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--quantization", a.quantization, online_quantization_help() + "\n(kld: applies to --model-path only)");
  cmd.add_flag("--json", a.json, "Print one JSON object instead of a table");
  cmd.add_flag("--quiet,-q", a.quiet, "No load or progress lines on stderr");
  add_tp_options(cmd, a.tp);
}

}  // namespace

CommandFn add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  app.require_subcommand(1);
  CLI::App* ppl = app.add_subcommand("ppl", "Perplexity of a model on a text");
  ppl->add_option("--model-path,-m", a->model_path, "Model folder")->required()->check(CLI::ExistingDirectory);
  add_common_options(*ppl, *a);

  CLI::App* kld = app.add_subcommand("kld", "KL divergence of a quantized model from a float (base) model");
  auto* quant =
      kld->add_option("--model-path,-m", a->model_path, "Quantized model folder")->check(CLI::ExistingDirectory);
  auto* base_model = kld->add_option("--base-model-path", a->base_model_path, "Float (base) model folder")
                         ->check(CLI::ExistingDirectory);
  auto* base_file = kld->add_option("--base", a->base_file, "Base log-probs written earlier by --save-base")
                        ->check(CLI::ExistingFile);
  auto* save =
      kld->add_option("--save-base", a->save_base,
                      "Write the base model's log-probs (≈2 bytes × vocab per scored token) for later --base runs");
  base_model->excludes(base_file);
  save->needs(base_model);
  add_common_options(*kld, *a);
  kld->callback([a, quant, base_model, base_file, save] {
    if (base_model->count() + base_file->count() == 0)
      throw CLI::ValidationError("kld", "one of --base-model-path or --base is required");
    if (quant->count() == 0 && save->count() == 0)
      throw CLI::ValidationError("kld", "--model-path is required (unless only writing --save-base)");
    if (base_file->count() && quant->count() == 0) throw CLI::ValidationError("kld", "--base needs --model-path");
  });
  return [a, ppl] {
    return run_tensor_parallel(a->tp, a->threads, [&](TpGroup* tp) {
      a->tp_group = tp;
      return ppl->parsed() ? run_ppl(*a) : run_kld(*a);
    });
  };
}

}  // namespace lowbit
