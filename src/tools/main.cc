// lowbit: one binary, one subcommand per job.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <map>

#include "core/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"lowbit: quantized Qwen3-family inference on CPU"};
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
  CLI11_PARSE(app, argc, argv);
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
