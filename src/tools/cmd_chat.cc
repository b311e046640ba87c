// lowbit chat: a conversation through the model's own chat template. Each turn re-renders the
// whole conversation; the generator reuses the KV cache of the common prefix, so only the new
// turn is prefilled. `--message TEXT` (or piped stdin) gives a one-shot answer.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "core/error.h"
#include "tools/commands.h"
#include "tools/model_session.h"

namespace lowbit {

namespace {
struct ChatArgs {
  LoadOptions load;
  SamplingOptions sampling;
  std::string system, message;
  bool no_thinking = false;
};

void answer(ModelSession& s, const ChatArgs& a, nlohmann::json& messages) {
  auto prompt = s.tokenizer().encode(s.render_chat(messages, !a.no_thinking), false);
  auto req = s.make_request(std::move(prompt), a.sampling);
  auto r = s.generator().generate(req, [](std::string_view t) {
    std::fwrite(t.data(), 1, t.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  std::fflush(stdout);
  if (!a.load.quiet)
    std::fprintf(stderr, "[%lld new prompt tokens at %.1f tok/s, %lld tokens at %.1f tok/s, %s]\n",
                 (long long)(r.prompt_tokens - r.cached_prompt_tokens),
                 r.prefill_seconds > 0 ? double(r.prompt_tokens - r.cached_prompt_tokens) / r.prefill_seconds : 0.0,
                 (long long)r.decode_steps, r.decode_seconds > 0 ? double(r.decode_steps) / r.decode_seconds : 0.0,
                 r.finish_reason.c_str());
  messages.push_back({{"role", "assistant"}, {"content", r.text}});
}

int run(const ChatArgs& a, TpGroup* tp) {
  ModelSession s(a.load, tp);
  nlohmann::json messages = nlohmann::json::array();
  if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
  if (!a.message.empty()) {
    messages.push_back({{"role", "user"}, {"content", a.message}});
    answer(s, a, messages);
    return 0;
  }
  const bool interactive = ::isatty(STDIN_FILENO);
  if (interactive) std::fprintf(stderr, "Type a message; /reset clears the conversation, /exit or Ctrl-D quits.\n");
  std::string line;
  for (;;) {
    if (interactive) {
      std::printf("> ");
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages.erase(messages.begin() + (a.system.empty() ? 0 : 1), messages.end());
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    answer(s, a, messages);
  }
  return 0;
}
}  // namespace

CommandFn add_chat_command(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  add_load_options(app, a->load);
  add_sampling_options(app, a->sampling);
  app.add_option("--system", a->system, "System message");
  app.add_option("--message", a->message, "Answer this one message and exit");
  app.add_flag("--no-thinking", a->no_thinking, "Pass enable_thinking=false to the chat template");
  return [a] {
    return run_tensor_parallel(a->load.tp, a->load.threads, [&](TpGroup* tp) { return run(*a, tp); });
  };
}

}  // namespace lowbit
