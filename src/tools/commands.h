// Each subcommand registers its options on the app and returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace lowbit {

using CommandFn = std::function<int()>;

CommandFn add_generate_command(CLI::App& app);
CommandFn add_chat_command(CLI::App& app);
CommandFn add_tokenize_command(CLI::App& app);
CommandFn add_eval_command(CLI::App& app);
CommandFn add_quantize_command(CLI::App& app);
CommandFn add_bench_command(CLI::App& app);
CommandFn add_serve_command(CLI::App& app);
CommandFn add_bench_serving_command(CLI::App& app);

}  // namespace lowbit
