// lowbit quantize: converts a float Hugging Face checkpoint (Qwen3 / Llama dense) into an
// msmodelslim, compressed-tensors or AWQ folder, written the way the upstream tool writes
// it, and reports each layer's quantization error. The work is in src/quantize/.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "core/error.h"
#include "quantize/quantize_model.h"
#include "tools/commands.h"
#include "tools/progress_bar.h"

namespace lowbit {

namespace {

struct QuantizeArgs {
  quantize::QuantizeOptions o;
  std::string format, scheme, algorithm = "rtn", smooth;
  bool act_order = false, static_groups = false, gptq_basic = false, awq_no_clip = false;
  std::optional<int64_t> group_size;
  std::optional<double> target_kld, target_bits;
  std::string search_schemes;
  int64_t search_tokens = 512;
  bool search_tokens_given = false;
  std::filesystem::path json;
  bool quiet = false;
};

int run(QuantizeArgs& a) {
  a.o.plan.format = quantize::parse_format(a.format);
  const bool search = a.target_kld || a.target_bits;
  if (search) {  // the flag combinations were checked at parse time (check_flags)
    a.o.search = quantize::SearchOptions{};
    a.o.search->target_kld = a.target_kld;
    a.o.search->target_bits = a.target_bits;
    a.o.search->schemes = a.search_schemes;
    a.o.search->group_size = a.group_size;
    a.o.search->tokens = a.search_tokens;
    quantize::check_search_options(*a.o.search);
    // Validated before any work, with the format's own names.
    quantize::search_candidates(a.o.plan.format, a.search_schemes, a.group_size);
    a.scheme = "FLOAT";  // placeholder: the search decides every "--scheme" layer
  }
  a.o.plan.scheme = a.scheme;
  a.o.plan.group_size = a.group_size;
  if (a.algorithm != "rtn" && a.algorithm != "gptq" && a.algorithm != "awq")
    fail("--algorithm '{}' is not known (valid: rtn, gptq, awq)", a.algorithm);
  a.o.algorithm = a.algorithm == "gptq"  ? quantize::Algorithm::Gptq
                  : a.algorithm == "awq" ? quantize::Algorithm::Awq
                                         : quantize::Algorithm::Rtn;
  if (a.awq_no_clip && a.o.algorithm != quantize::Algorithm::Awq) fail("--awq-no-clip applies to --algorithm awq only");
  a.o.awq.clip = !a.awq_no_clip;
  if (!a.smooth.empty()) a.o.smooth = quantize::parse_smooth(a.smooth);
  const bool gptq_flags = a.act_order || a.static_groups || a.o.gptq.scale_search || a.gptq_basic;
  if (gptq_flags && a.o.algorithm != quantize::Algorithm::Gptq)
    fail("--act-order, --gptq-static-groups, --gptq-scale-search and --gptq-basic apply to --algorithm gptq only");
  if (a.gptq_basic && (a.act_order || a.static_groups || a.o.gptq.scale_search))
    fail("--gptq-basic is GPTQ without --act-order, --gptq-static-groups and --gptq-scale-search: give one or the other");
  // Without any of these flags GPTQ runs its best measured setting, which needs no g_idx and so
  // loads everywhere; --gptq-basic is llm-compressor's plain column-order GPTQ.
  if (a.o.algorithm == quantize::Algorithm::Gptq && !gptq_flags)
    a.act_order = a.static_groups = a.o.gptq.scale_search = true;
  a.o.gptq.act_order = a.act_order ? (a.static_groups ? quantize::ActOrder::Static : quantize::ActOrder::Group)
                                   : quantize::ActOrder::None;
  a.o.gptq.static_groups = a.static_groups;
  std::vector<quantize::GptqLayerStats> gptq_stats;
  a.o.on_gptq_layer = [&](const quantize::GptqLayerStats& s) { gptq_stats.push_back(s); };
  std::unique_ptr<ProgressBar> bar;
  std::string stage;
  const bool tty = !a.quiet && ::isatty(STDERR_FILENO);
  a.o.progress = [&](const char* s, int64_t done, int64_t total) {
    if (stage != s) {
      if (bar) bar->finish();
      stage = s;
      bar = std::make_unique<ProgressBar>(stage, tty);
    }
    bar->update(done, total, stage == "calibrating"                    ? "tok"
                             : stage == "smoothing" || stage == "awq" ? "groups"
                             : stage == "searching"                   ? "passes"
                                                                      : "layers");
  };
  std::optional<nlohmann::ordered_json> search_json;
  a.o.on_search = [&](const quantize::SchemeSearchReport& r) {
    if (bar) bar->finish();
    bar.reset();
    stage.clear();
    if (!a.quiet) std::fputs(quantize::format_search_report(r).c_str(), stdout);
    else
      for (const std::string& n : r.notes)
        if (n.starts_with("warning")) std::fprintf(stderr, "%s\n", n.c_str());
    search_json = quantize::search_report_json(r);
  };
  const quantize::QuantReport report = quantize::quantize_model(a.o);
  if (bar) bar->finish();
  if (!a.quiet) {
    if (!gptq_stats.empty()) {
      size_t width = 5;
      for (const auto& g : gptq_stats) width = std::max(width, g.name.size());
      std::printf("%-*s  %11s %7s %5s\n", int(width), "layer", "gptq loss", "forced", "dead");
      for (const auto& g : gptq_stats)
        std::printf("%-*s  %11.4e %7lld %5lld\n", int(width), g.name.c_str(), g.loss, (long long)g.forced,
                    (long long)g.dead_columns);
    }
    std::fputs(quantize::format_report(report).c_str(), stdout);
    std::printf("wrote %s (%s) in %.1f s\n", report.output.c_str(), report.format.c_str(), report.seconds);
  }
  if (!a.json.empty()) {
    std::ofstream out(a.json);
    nlohmann::ordered_json j = quantize::report_json(report);
    if (!gptq_stats.empty()) {
      nlohmann::ordered_json layers = nlohmann::ordered_json::array();
      for (const auto& g : gptq_stats)
        layers.push_back({{"name", g.name},
                          {"loss", g.loss},
                          {"forced_codes", g.forced},
                          {"dead_columns", g.dead_columns},
                          {"writer_mismatches", g.writer_mismatches}});
      j["gptq"] = {{"damp", a.o.gptq.damp},
                   {"block", a.o.gptq.block},
                   {"act_order", a.act_order},
                   {"static_groups", a.static_groups},
                   {"scale_search", a.o.gptq.scale_search},
                   {"layers", layers}};
    }
    if (search_json) j["scheme_search"] = *search_json;
    out << j.dump(2) << "\n";
    if (!out) fail("--json {}: write failed", a.json.string());
  }
  return 0;
}

// Combinations of flags that cannot work, as usage errors (exit 2) before anything is read.
void check_flags(const QuantizeArgs& a) {
  auto usage = [](const std::string& m) { throw CLI::ValidationError("quantize", m); };
  if (a.target_kld && a.target_bits) usage("--target-kld and --target-bits are exclusive: give one target");
  const bool search = a.target_kld || a.target_bits;
  const std::string flag = a.target_kld ? "--target-kld" : "--target-bits";
  if (search && !a.scheme.empty())
    usage(fmt::format("{} chooses the scheme of every layer: drop --scheme '{}' (--search-schemes sets the "
                      "candidates; --override / --ignore still fix layers)",
                      flag, a.scheme));
  if (search && a.o.calib_text.empty() && a.o.calib_ids.empty())
    usage(fmt::format("{} measures each layer's KL divergence on calibration data: pass --calib FILE (text) or "
                      "--calib-ids FILE (JSON token ids)",
                      flag));
  if (search && !a.smooth.empty())
    usage(fmt::format("{} with --smooth: the search's candidates have no static activation scales to smooth", flag));
  if (!search && a.scheme.empty()) usage("--scheme is required (or --target-kld / --target-bits to choose it per layer)");
  if (!search && (!a.search_schemes.empty() || a.search_tokens_given))
    usage("--search-schemes and --search-tokens apply to --target-kld / --target-bits only");
}

}  // namespace

CommandFn add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  std::string schemes;
  for (auto f : {quantize::OutFormat::MsModelSlim, quantize::OutFormat::CompressedTensors, quantize::OutFormat::Awq})
    schemes += fmt::format("\n  {}: {}", quantize::format_name(f), fmt::join(quantize::scheme_names(f), ", "));
  app.footer(
      "Schemes by format (upstream spellings):" + schemes +
      "\nLayers: q/k/v/o/gate/up/down of every layer; embeddings, norms and lm_head stay float (lm_head only via an "
      "--override whose pattern names it). Regexes match the layer prefix (e.g. model.layers.3.mlp.down_proj) from "
      "its start, as Python re.match; --ignore wins over --override, the first matching --override wins over "
      "--scheme. q/k/v and gate/up must end up with one scheme.\n"
      "Static schemes (msmodelslim W8A8, compressed-tensors W8A8_STATIC*, FP8) need --calib; with calibration the "
      "report adds each layer's output error on sampled calibration rows.\n"
      "GPTQ (--algorithm gptq): integer-weight schemes (W4A16*, W8A8*, W4A4/W4A8 weights); layers are quantized in "
      "order, each from calibration inputs that went through the already-quantized layers before it. Measured on "
      "SmolLM2-135M W4A16 g32 (KLD vs float): RTN 0.35, llm-compressor GPTQ 0.18, lowbit --gptq-basic 0.21, "
      "lowbit's default (= --act-order --gptq-static-groups --gptq-scale-search) 0.078 (no g_idx: loads "
      "everywhere). Any of those flags given: exactly the flags given.\n"
      "SmoothQuant (--smooth auto|ALPHA): int8 static-activation layers (msmodelslim W8A8, compressed-tensors "
      "W8A8_STATIC*) get s_j = max|X_j|^a / max|W_j|^(1-a) per input channel, folded into the RMSNorm before q/k/v "
      "and gate/up, into up_proj's rows before down_proj and v_proj's rows before o_proj (one s per KV head under "
      "GQA); no extra op at inference, smoothed norms are written F32. auto searches a in 0.2..0.9 (or off) per "
      "group on the calibration rows. SmolLM2-135M msmodelslim W8A8, KLD vs float: 0.57 unsmoothed, 0.040 auto.\n"
      "AWQ (--algorithm awq): integer-weight schemes with unscaled or per-token activations (awq W4A16, "
      "compressed-tensors W4A16*, W8A8, msmodelslim W8A8/W4A8/W4A4_DYNAMIC) get per-input-channel scales searched "
      "on the calibration rows (AutoAWQ's grid: s = mean|x|^r, or over the weights' mean^(1-r), r in 0..0.95) with "
      "the same folds as SmoothQuant, then each weight group's range is clipped (1 to 0.55 x max) where that lowers "
      "its output error. SmolLM2-135M W4A16 g32, KLD vs float: RTN 0.26, lowbit AWQ 0.089 (awq format) / 0.088 "
      "(compressed-tensors asym), llm-compressor's AWQModifier 0.091. Without --algorithm awq the awq format holds "
      "plain round-to-nearest (or GPTQ) codes.\n"
      "Scheme search (--target-kld X or --target-bits B, needs --calib): each unit (q/k/v, o, gate/up, down of a "
      "layer) is quantized alone with each candidate (--search-schemes) and its KL divergence from the float model "
      "measured on the first --search-tokens calibration tokens (eval kld's windows); an exact knapsack picks the "
      "fewest bytes within X (or the least KLD within B bits/weight), the mixture is measured and re-chosen until it "
      "meets X; the per-unit table is printed. lm_head, --ignore and --override layers stay as given. "
      "SmolLM2-135M compressed-tensors --target-kld 0.05 (512 tokens, 275 passes, 4.4 min on 2 shared cores): "
      "25 x W4A16 g32, 2 x W4A16 g128, 92 x W8A8, 1 x FLOAT = 7.23 bits/weight (91.6 MiB of linear weights; "
      "uniform W8A8 101.6 MiB), KLD 0.050 on the calibration window, 0.047 by eval kld on the book's first 8192 "
      "tokens (uniform W8A8 0.026).");
  app.add_option("--model-path,-m", a->o.input, "Float Hugging Face model folder")->required()->check(CLI::ExistingDirectory);
  app.add_option("--output,-o", a->o.output, "Output folder (created)")->required();
  app.add_option("--format", a->format, "msmodelslim | compressed-tensors | awq")->required();
  app.add_option("--scheme", a->scheme,
                 "Scheme for every linear layer not matched by --override/--ignore (required unless --target-kld / "
                 "--target-bits)");
  app.add_option("--target-kld", a->target_kld,
                 "Choose each layer's scheme (fused q/k/v and gate/up together) for the fewest bytes whose KL "
                 "divergence from the float model, measured on the calibration tokens, is at most X; needs --calib")
      ->check(CLI::PositiveNumber);
  app.add_option("--target-bits", a->target_bits,
                 "Choose each layer's scheme for the least KL divergence within B bits per weight on average "
                 "(scales included); needs --calib")
      ->check(CLI::PositiveNumber);
  app.add_option("--search-schemes", a->search_schemes,
                 "Candidates of --target-kld/--target-bits, 'SCHEME[:GROUP],...' (FLOAT always added); default: "
                 "compressed-tensors W4A16:128,W4A16:32,W8A8; msmodelslim W4A8_DYNAMIC,W8A8_DYNAMIC; awq W4A16");
  app.add_option("--search-tokens", a->search_tokens,
                 "Calibration tokens the search measures KL divergence on (windows of 512, second half scored)")
      ->capture_default_str()
      ->each([a](const std::string&) { a->search_tokens_given = true; });
  app.add_option("--override", a->o.plan.overrides, "'REGEX=SCHEME' for matching layers (repeatable; SCHEME may be FLOAT)");
  app.add_option("--ignore", a->o.plan.ignores, "REGEX: matching layers stay float (repeatable)");
  app.add_option("--group-size", a->group_size,
                 "Group size along K: compressed-tensors W4A16* (default 128, 0 = per channel), awq (default 128), "
                 "msmodelslim W4A8_DYNAMIC (per-group when given)");
  app.add_option("--calib", a->o.calib_text, "Calibration text file (tokenized with the model's tokenizer)")
      ->check(CLI::ExistingFile);
  app.add_option("--calib-ids", a->o.calib_ids, "Calibration token ids as a JSON array (instead of --calib)")
      ->check(CLI::ExistingFile);
  app.add_option("--calib-tokens", a->o.calib_tokens, "Use the first N calibration tokens")->capture_default_str();
  app.add_option("--calib-seq-len", a->o.calib_seq_len, "Tokens per calibration sequence")->capture_default_str();
  app.add_option("--calib-rows", a->o.calib_rows, "Input rows sampled per layer for the output error")
      ->capture_default_str();
  app.add_option("--smooth", a->smooth,
                 "SmoothQuant before quantizing: auto (search the migration strength per group) or ALPHA in [0, 1]; "
                 "int8 static-activation schemes, needs --calib, not with --algorithm gptq");
  app.add_option("--algorithm", a->algorithm,
                 "rtn (round to nearest) | gptq (Hessian-aware rounding from calibration data; needs --calib) | awq "
                 "(activation-aware per-channel scales and weight clipping, searched on calibration data; needs "
                 "--calib)")
      ->capture_default_str();
  app.add_flag("--awq-no-clip", a->awq_no_clip, "AWQ: scale search only, no per-group clip search");
  app.add_option("--gptq-damp", a->o.gptq.damp, "GPTQ: damping added to diag(H), as a fraction of its mean")
      ->capture_default_str();
  app.add_option("--gptq-block", a->o.gptq.block, "GPTQ: columns per lazy-update block")->capture_default_str();
  app.add_flag("--act-order", a->act_order,
               "GPTQ: quantize columns in descending diag(H); group-wise layers then need g_idx "
               "(compressed-tensors W4A16 only) unless --gptq-static-groups");
  app.add_flag("--gptq-static-groups", a->static_groups,
               "GPTQ: fix every group's scale from the original weights before GPTQ (llm-compressor, AutoGPTQ "
               "static_groups) instead of at the group's first column; with --act-order no g_idx is needed");
  app.add_flag("--gptq-basic", a->gptq_basic,
               "GPTQ in column order, group scales from the updated weights, min-max ranges (llm-compressor's "
               "plain GPTQ) instead of the default --act-order --gptq-static-groups --gptq-scale-search");
  app.add_flag("--gptq-scale-search", a->o.gptq.scale_search,
               "GPTQ: shrink each group's range (x1 to x0.7) to the one with the least diag(H)-weighted rounding "
               "error, instead of min-max");
  app.add_option("--gptq-dump", a->o.gptq_dump, "Write each GPTQ layer's weight, Hessian and codes here (tests)")
      ->group("");
  app.add_option("--threads", a->o.threads, "Worker threads (default: all)");
  app.add_option("--json", a->json, "Write the error report as JSON to this file");
  app.add_flag("--quiet,-q", a->quiet, "No progress bar or report on the terminal");
  app.callback([a] { check_flags(*a); });
  return [a] { return run(*a); };
}

}  // namespace lowbit
