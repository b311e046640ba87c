// lowbit quantize: converts a float Hugging Face checkpoint (Qwen3 / Llama dense) into an
// msmodelslim, compressed-tensors or AWQ folder, written the way the upstream tool writes
// it, and reports each layer's quantization error. The work is in src/quantize/.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "core/error.h"
#include "quantize/quantize_model.h"
#include "tools/commands.h"
#include "tools/progress_bar.h"

namespace lowbit {

namespace {

struct QuantizeArgs {
  quantize::QuantizeOptions o;
  std::string format, scheme;
  std::optional<int64_t> group_size;
  std::filesystem::path json;
  bool quiet = false;
};

int run(QuantizeArgs& a) {
  a.o.plan.format = quantize::parse_format(a.format);
  a.o.plan.scheme = a.scheme;
  a.o.plan.group_size = a.group_size;
  std::unique_ptr<ProgressBar> bar;
  std::string stage;
  const bool tty = !a.quiet && ::isatty(STDERR_FILENO);
  a.o.progress = [&](const char* s, int64_t done, int64_t total) {
    if (stage != s) {
      if (bar) bar->finish();
      stage = s;
      bar = std::make_unique<ProgressBar>(stage, tty);
    }
    bar->update(done, total, stage == "calibrating" ? "tok" : "layers");
  };
  const quantize::QuantReport report = quantize::quantize_model(a.o);
  if (bar) bar->finish();
  if (!a.quiet) {
    std::fputs(quantize::format_report(report).c_str(), stdout);
    std::printf("wrote %s (%s) in %.1f s\n", report.output.c_str(), report.format.c_str(), report.seconds);
  }
  if (!a.json.empty()) {
    std::ofstream out(a.json);
    out << quantize::report_json(report).dump(2) << "\n";
    if (!out) fail("--json {}: write failed", a.json.string());
  }
  return 0;
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
      "AWQ: weights are plain round-to-nearest in AWQ's GEMM layout; no activation-aware scale search is done.");
  app.add_option("--model-path,-m", a->o.input, "Float Hugging Face model folder")->required()->check(CLI::ExistingDirectory);
  app.add_option("--output,-o", a->o.output, "Output folder (created)")->required();
  app.add_option("--format", a->format, "msmodelslim | compressed-tensors | awq")->required();
  app.add_option("--scheme", a->scheme, "Scheme for every linear layer not matched by --override/--ignore")->required();
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
  app.add_option("--threads", a->o.threads, "Worker threads (default: all)");
  app.add_option("--json", a->json, "Write the error report as JSON to this file");
  app.add_flag("--quiet,-q", a->quiet, "No progress bar or report on the terminal");
  return [a] { return run(*a); };
}

}  // namespace lowbit
