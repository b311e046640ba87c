// lowbit: one binary, one subcommand per job.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/runtime_options.h"
#include "kernels/kernel_report.h"
#include "tools/commands.h"

namespace {

constexpr const char* kVersion = "0.1.0";

// `lowbit --version`: the version, the compiler, and the kernel path this CPU gets (with why
// each faster path is not in use), since that decides every speed figure.
std::string version_text() {
  std::string s = fmt::format("lowbit {} (C++{}, {} {})", kVersion, __cplusplus / 100 % 100,
#if defined(__clang__)
                              "clang", __clang_version__
#elif defined(__GNUC__)
                              "gcc", __VERSION__
#else
                              "unknown compiler", ""
#endif
  );
  try {
    s += "\n" + lowbit::kernel_report();
  } catch (const std::exception& e) {
    s += fmt::format("\nkernels: unknown ({})", e.what());
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  // LOWBIT_* numeric-policy variables are read here, once, so a bad one is a clear error.
  try {
    lowbit::runtime_options();
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  CLI::App app{"lowbit: quantized Qwen3-family inference on CPU"};
  app.set_version_flag("--version", version_text, "Print the version and the CPU kernel path in use, then exit");
  app.require_subcommand(1);
  std::map<CLI::App*, lowbit::CommandFn> commands;
  auto add = [&](lowbit::CommandFn (*adder)(CLI::App&), const char* name, const char* help) {
    CLI::App* sub = app.add_subcommand(name, help);
    commands[sub] = adder(*sub);
  };
  add(lowbit::add_generate_command, "generate", "Generate text from a prompt, a chat or token ids");
  add(lowbit::add_chat_command, "chat", "Interactive chat through the model's chat template");
  add(lowbit::add_tokenize_command, "tokenize", "Print token ids of stdin text, or render a chat");
  add(lowbit::add_eval_command, "eval", "Perplexity (ppl) and KL divergence from a base model (kld) on a text");
  add(lowbit::add_quantize_command, "quantize",
      "Convert a float checkpoint to msmodelslim, compressed-tensors or AWQ, with an error report");
  add(lowbit::add_bench_command, "bench",
      "Prefill/decode tokens/s per scheme against this machine's measured bandwidth and compute rooflines");
  add(lowbit::add_bench_serving_command, "bench-serving",
      "Load-test an OpenAI-compatible server: throughput, TTFT, TPOT, ITL (as SGLang's bench_serving)");
  add(lowbit::add_serve_command, "serve", "OpenAI-compatible HTTP server (SGLang flags): chat, completions, streaming, metrics");
  // A bad flag is a usage error: exit 2, as for the commands' own flag checks.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    for (auto* sub : app.get_subcommands()) return commands.at(sub)();
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
